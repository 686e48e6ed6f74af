"""The contract every field type fulfils."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from engine.definitions.model import Field


class FieldValueError(ValueError):
    """A value that does not fit its field; the message is shown to the user."""


@dataclass(frozen=True)
class StorageColumn:
    """One database column a field occupies.

    ``signature`` is a stable description of the storage (``string:255``,
    ``decimal:18:2``) that schema sync compares to decide whether a change
    widens the column (safe) or could lose data (refused by default).
    """

    name: str
    type: sa.types.TypeEngine
    signature: str
    index: bool = False
    unique: bool = False


class FieldType(ABC):
    """Base class: a field type stores, coerces and serialises values.

    Field types are registered through the ``register_field_types`` plugin hook,
    so a plugin can add one without touching the engine.
    """

    name: str = ""
    #: whether the field has a column of its own (child tables do not)
    stored: bool = True
    #: whether values can be compared with lt/gt and sorted
    ordered: bool = False
    #: whether values are text that `contains`/`startswith` apply to
    textual: bool = False
    #: properties this type understands beyond the common ones
    properties: frozenset[str] = frozenset()
    #: properties this type needs
    required_properties: frozenset[str] = frozenset()

    @abstractmethod
    def columns(self, field: Field) -> list[StorageColumn]:
        """The columns this field needs; the first is its main column."""

    def coerce(self, field: Field, value: Any) -> Any:
        """Turn user input into the Python value stored; raise FieldValueError."""
        return value

    def is_empty(self, value: Any) -> bool:
        """Whether a value counts as missing for required rules."""
        return value is None or value == "" or value == [] or value == {}

    def to_storage(self, field: Field, value: Any) -> dict[str, Any]:
        """Column values for a coerced value."""
        return {field.key: value}

    def from_storage(self, field: Field, row: Any) -> Any:
        """Build the Python value from a result row (mapping of columns)."""
        return row.get(field.key)

    def to_json(self, field: Field, value: Any) -> Any:
        """A JSON-friendly form of the Python value."""
        return value

    def check_definition(self, field: Field) -> list[str]:
        """Problems with a field's declaration, beyond what JSON Schema checks."""
        return []

    def json_schema(self, field: Field) -> dict:
        """JSON Schema of the value in the API (OpenAPI 3.1)."""
        return {"type": ["string", "null"]}

    def sort_column(self, field: Field) -> str | None:
        """The column to sort by, or None when this type cannot be sorted."""
        return field.key if self.ordered or self.textual else None
