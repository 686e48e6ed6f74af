"""The plugin manager: the engine's own defaults are plugins too."""

from __future__ import annotations

import importlib

import pluggy

from . import hookspecs
from .hookspecs import hookimpl


class DefaultFieldTypes:
    """Registers the built-in field types."""

    @hookimpl
    def register_field_types(self):
        from .fields.builtin import BUILTIN_TYPES

        return BUILTIN_TYPES


def make_plugin_manager(extra: list[str] | None = None) -> pluggy.PluginManager:
    """A plugin manager with the engine defaults, setuptools entry points and named modules."""
    pm = pluggy.PluginManager("kervan")
    pm.add_hookspecs(hookspecs)
    pm.register(DefaultFieldTypes(), name="kervan.field_types")
    from .documents.plugin import DocumentTotals, Rollups

    pm.register(DocumentTotals(), name="kervan.documents")
    pm.register(Rollups(), name="kervan.rollups")
    pm.load_setuptools_entrypoints("kervan")
    for name in extra or []:
        pm.register(importlib.import_module(name), name=name)
    return pm


def field_type_registry(pm: pluggy.PluginManager):
    """Collect every registered field type."""
    from .fields.builtin import ALIASES
    from .fields.registry import FieldTypeRegistry

    registry = FieldTypeRegistry()
    for types in pm.hook.register_field_types():
        for field_type in types or []:
            registry.register(field_type)
    for alias, name in ALIASES.items():
        registry.alias(alias, name)
    return registry
