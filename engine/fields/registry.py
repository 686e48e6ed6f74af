"""The registry of field types available to metadata."""

from __future__ import annotations

from .base import FieldType


class FieldTypeRegistry:
    """Field types by name, filled from the `register_field_types` hook."""

    def __init__(self):
        self._types: dict[str, FieldType] = {}
        self._aliases: dict[str, str] = {}

    def register(self, field_type: type[FieldType] | FieldType) -> None:
        instance = field_type() if isinstance(field_type, type) else field_type
        if not instance.name:
            raise ValueError(f"field type {instance!r} has no name")
        self._types[instance.name] = instance

    def alias(self, alias: str, name: str) -> None:
        self._aliases[alias] = name

    def resolve_name(self, name: str) -> str | None:
        name = self._aliases.get(name, name)
        return name if name in self._types else None

    def get(self, name: str) -> FieldType:
        resolved = self.resolve_name(name)
        if resolved is None:
            raise KeyError(name)
        return self._types[resolved]

    def names(self) -> list[str]:
        return sorted(set(self._types) | set(self._aliases))
