"""The resolved model: every layer merged, checked and turned into objects."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from engine.fields.base import FieldType

from .yamlsource import Origin

LANGUAGES = ("en", "tr", "fa")

#: Columns every entity table has, in order, with the field type that describes them.
SYSTEM_FIELDS: dict[str, tuple[str, dict[str, str]]] = {
    "id": ("integer", {"en": "ID", "tr": "No", "fa": "شناسه"}),
    "created_at": ("datetime", {"en": "Created", "tr": "Oluşturulma", "fa": "ایجاد"}),
    "created_by": ("user", {"en": "Created by", "tr": "Oluşturan", "fa": "ایجادکننده"}),
    "updated_at": ("datetime", {"en": "Modified", "tr": "Güncellenme", "fa": "ویرایش"}),
    "updated_by": ("user", {"en": "Modified by", "tr": "Güncelleyen", "fa": "ویرایش‌کننده"}),
    "owner": ("user", {"en": "Assigned to", "tr": "Sorumlu", "fa": "مسئول"}),
    "team": ("team", {"en": "Team", "tr": "Ekip", "fa": "تیم"}),
    "version": ("integer", {"en": "Version", "tr": "Sürüm", "fa": "نسخه"}),
    "archived_at": ("datetime", {"en": "Archived", "tr": "Arşivlenme", "fa": "بایگانی"}),
}

#: Values a `default:` may name instead of a literal.
DEFAULT_TOKENS = ("$today", "$now", "$user")


def humanise(key: str) -> str:
    return key.replace("_", " ").capitalize()


@dataclass
class Option:
    key: str
    label: dict[str, str]
    color: str | None = None
    category: str | None = None
    probability: float | None = None
    order: int = 0


@dataclass
class Field:
    """A field of an entity, with its type and rules."""

    key: str
    type: str
    field_type: FieldType
    label: dict[str, str]
    spec: dict[str, Any] = field(default_factory=dict)
    required: bool = False
    required_if: dict | None = None
    unique: bool = False
    default: Any = None
    read_only: bool = False
    hidden: bool = False
    filterable: bool = False
    sortable: bool = False
    searchable: bool = False
    options: list[Option] = field(default_factory=list)
    system: bool = False
    origin: Origin | None = None

    @functools.cached_property
    def option_keys(self) -> list[str]:
        return [o.key for o in self.options]

    @property
    def indexed(self) -> bool:
        return self.filterable or self.sortable

    @property
    def stored(self) -> bool:
        return self.field_type.stored

    @property
    def target(self) -> str | None:
        """The entity (or system table) a reference field points to."""
        if self.type == "link":
            return self.spec.get("target")
        return None

    def option(self, key: str) -> Option | None:
        return next((o for o in self.options if o.key == key), None)

    def label_in(self, language: str) -> str:
        return self.label.get(language) or self.label["en"]


@dataclass
class Rule:
    one_of_required: list[str]
    when: dict | None = None
    message: dict[str, str] | None = None


@dataclass
class Series:
    """A number series, e.g. quote numbers `T-{YYYY}-{####}` reset yearly."""

    key: str
    entity: str
    field: str
    pattern: str
    reset: str = "yearly"
    start: int = 1
    origin: Origin | None = None


@dataclass
class Entity:
    key: str
    label: dict[str, str]
    plural: dict[str, str]
    fields: dict[str, Field]
    description: dict[str, str] | None = None
    title: str | None = None
    module: str | None = None
    icon: str | None = None
    order: int = 100
    child_of: str | None = None
    singleton: bool = False
    delete_policy: str = "allowed"
    stage_field: str | None = None
    pipeline: str | None = None
    rules: list[Rule] = field(default_factory=list)
    list_spec: dict = field(default_factory=dict)
    form_spec: dict = field(default_factory=dict)
    detail_spec: dict = field(default_factory=dict)
    search_fields: list[str] = field(default_factory=list)
    calendar_spec: dict = field(default_factory=dict)
    totals_spec: dict = field(default_factory=dict)
    print_spec: dict = field(default_factory=dict)
    series: list[Series] = field(default_factory=list)
    origin: Origin | None = None

    @property
    def table_name(self) -> str:
        return self.key

    # A resolved entity's fields never change (an edit resolves a new model), so these
    # views are computed once: they are read for every row of every list and write.
    @functools.cached_property
    def user_fields(self) -> dict[str, Field]:
        return {k: f for k, f in self.fields.items() if not f.system}

    @functools.cached_property
    def stored_fields(self) -> dict[str, Field]:
        return {k: f for k, f in self.fields.items() if f.stored}

    @functools.cached_property
    def child_tables(self) -> dict[str, Field]:
        return {k: f for k, f in self.fields.items() if f.type == "child_table"}

    @functools.cached_property
    def plain_storage(self) -> frozenset[str]:
        """Stored fields kept in one column as they are (no `to_storage` of their own)."""
        return frozenset(k for k, f in self.fields.items() if f.stored and
                         type(f.field_type).to_storage is FieldType.to_storage)

    @functools.cached_property
    def plain_json(self) -> frozenset[str]:
        """Stored fields whose JSON form is their value (no `to_json` of their own)."""
        return frozenset(k for k, f in self.fields.items() if f.stored and
                         type(f.field_type).to_json is FieldType.to_json)

    @functools.cached_property
    def ruled_fields(self) -> list[Field]:
        """Fields a required or required-if rule applies to."""
        return [f for f in self.user_fields.values()
                if f.type != "child_table" and (f.required or f.required_if)]

    def series_for(self, field_key: str) -> Series | None:
        return next((s for s in self.series if s.field == field_key), None)

    def title_fields(self) -> list[str]:
        if not self.title:
            return []
        if "{" not in self.title:
            return [self.title]
        return re.findall(r"{([a-z0-9_]+)}", self.title)

    def label_in(self, language: str) -> str:
        return self.label.get(language) or self.label["en"]


@dataclass
class Model:
    """Everything the engine knows about the business, resolved from all layers."""

    entities: dict[str, Entity]
    series: dict[str, Series]
    documents: dict[str, dict]
    fingerprint: str
    layers: list[str] = field(default_factory=list)

    def entity(self, key: str) -> Entity:
        return self.entities[key]

    def links_to(self, target: str) -> list[tuple[Entity, Field]]:
        """Every (entity, link field) that points at the target entity."""
        return [(e, f) for e in self.entities.values() for f in e.fields.values()
                if f.type == "link" and f.target == target]
