"""The Kervan runtime: settings, database, plugins, resolved model and record service.

One object per process (web worker, job worker, command), built by `Kervan.start`.
It holds no state another process needs: the model is resolved from files (and,
later, database overrides) and can be reloaded when its fingerprint changes.
"""

from __future__ import annotations

from functools import cached_property

import sqlalchemy as sa

from .config import Settings
from .definitions.model import Model
from .definitions.resolve import resolve_metadata, try_resolve
from .plugins import field_type_registry, make_plugin_manager
from .storage.database import make_engine
from .storage.tables import build_tables


class Kervan:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings.from_env()
        self.pm = make_plugin_manager(self.settings.plugins)
        self.field_types = field_type_registry(self.pm)
        self._model: Model | None = None
        self._tables: sa.MetaData | None = None
        self._permissions = None

    def metadata_directories(self):
        extra = [p for paths in self.pm.hook.metadata_layers(kervan=self) for p in paths or []]
        return [*self.settings.metadata_directories, *extra]

    def check_metadata(self):
        """Resolve without raising: (model or None, problems)."""
        return try_resolve(self.metadata_directories(), self.field_types)

    @property
    def model(self) -> Model:
        if self._model is None:
            self.set_model(resolve_metadata(self.metadata_directories(), self.field_types))
        return self._model

    def set_model(self, model: Model) -> None:
        self._model = model
        self._tables = build_tables(model)

    @property
    def tables(self) -> sa.MetaData:
        self.model  # noqa: B018 - resolves the model (and its tables) on first use
        return self._tables

    @cached_property
    def db(self) -> sa.Engine:
        return make_engine(self.settings.database_url)

    @property
    def permissions(self):
        """Permission answers for the current model (rebuilt when the model changes)."""
        from .security.permissions import Permissions

        model = self.model
        if self._permissions is None or self._permissions.model is not model:
            self._permissions = Permissions(model)
        return self._permissions

    @cached_property
    def records(self):
        from .records.service import RecordService

        return RecordService(self)

    @cached_property
    def workflow(self):
        from .workflow.engine import Workflow

        return Workflow(self)

    @cached_property
    def conversions(self):
        from .workflow.conversion import Conversions

        return Conversions(self)

    @cached_property
    def users(self):
        from .security.users import Users

        return Users(self)

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.dispose()
