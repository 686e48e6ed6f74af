"""Field types: how each kind of field is stored, checked and serialised."""

from .base import FieldType, FieldValueError, StorageColumn
from .registry import FieldTypeRegistry

__all__ = ["FieldType", "FieldValueError", "FieldTypeRegistry", "StorageColumn"]
