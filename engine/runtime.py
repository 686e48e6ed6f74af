"""The Kervan runtime: settings, database, plugins, resolved model and record service.

One object per process (web worker, job worker, command).  It holds no state another
process needs: the model is resolved from files plus the database's layers (installed
packs, admin overrides) and re-resolved by `refresh()` when their version changes.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import sqlalchemy as sa

from .config import Settings
from .definitions.layers import Layer, layer_from_overlay_text
from .definitions.model import Model
from .definitions.problems import MetadataError
from .definitions.resolve import try_resolve
from .layerstate import LayerState, current_version, read_state
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
        self._state = LayerState()

    def metadata_directories(self, state: LayerState | None = None) -> list[Path]:
        """File layers in merge order: base, KERVAN_METADATA, plugins, installed packs."""
        state = state or self._state
        extra = [p for paths in self.pm.hook.metadata_layers(kervan=self) for p in paths or []]
        packs = [self.settings.packs / key for key in state.packs]
        return [*self.settings.metadata_directories, *extra, *packs]

    def admin_layers(self, state: LayerState | None = None) -> tuple[list[Layer], list]:
        """The studio's revisions (admin overrides), applied after every file layer."""
        state = state or self._state
        layers, problems = [], []
        for revision_id, text in state.fragments:
            layer, found = layer_from_overlay_text(text, f"admin/revision-{revision_id}")
            layers.append(layer)
            problems.extend(found)
        return layers, problems

    def resolve(self, state: LayerState | None = None, extra_dirs=(), extra_layers=(),
                without_packs=()) -> tuple[Model | None, list]:
        """Resolve every layer (optionally with a candidate change) without raising."""
        state = state or self._state
        if without_packs:
            state = LayerState(state.version, tuple(p for p in state.packs
                                                    if p not in without_packs), state.fragments)
        admin, problems = self.admin_layers(state)
        if problems:
            return None, problems
        return try_resolve([*self.metadata_directories(state), *extra_dirs], self.field_types,
                           [*admin, *extra_layers])

    def check_metadata(self):
        """Resolve every layer, the database's too when it is reachable: (model, problems)."""
        self._state = self._read_state()
        return self.resolve()

    def _read_state(self) -> LayerState:
        try:
            return read_state(self.db)
        except sa.exc.DBAPIError:
            return LayerState()

    def refresh(self) -> None:
        """Re-resolve when another process changed packs or admin overrides."""
        if self._model is not None and current_version(self.db) == self._state.version:
            return
        self._state = self._read_state()
        model, problems = self.resolve()
        if problems:
            raise MetadataError(problems)
        self.set_model(model)

    @property
    def model(self) -> Model:
        if self._model is None:
            self.refresh()
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
    def studio(self):
        from .studio import Studio

        return Studio(self)

    @cached_property
    def packs(self):
        from .packs import Packs

        return Packs(self)

    @cached_property
    def users(self):
        from .security.users import Users

        return Users(self)

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.dispose()
