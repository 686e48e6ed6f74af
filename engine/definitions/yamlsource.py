"""YAML loading that remembers where every key came from (file and line)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Origin:
    """Where a value was declared."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class SourceMap(dict):
    """A dict that knows the origin of itself and of each of its keys."""

    origin: Origin | None
    key_origins: dict

    def __init__(self, *args, origin: Origin | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.origin = origin
        self.key_origins = {}

    def origin_of(self, key) -> Origin | None:
        return self.key_origins.get(key, self.origin)


class SourceList(list):
    """A list that knows its origin and the origin of each item."""

    origin: Origin | None
    item_origins: list

    def __init__(self, *args, origin: Origin | None = None):
        super().__init__(*args)
        self.origin = origin
        self.item_origins = []

    def origin_of(self, index: int) -> Origin | None:
        if 0 <= index < len(self.item_origins):
            return self.item_origins[index]
        return self.origin


class YamlProblem(Exception):
    """A YAML file that cannot be read; carries file and line."""

    def __init__(self, origin: Origin, message: str):
        super().__init__(f"{origin}: {message}")
        self.origin = origin
        self.message = message


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """SafeLoader (libyaml when present) building SourceMap/SourceList, refusing duplicate keys."""


def _origin(loader: _Loader, node: yaml.Node) -> Origin:
    return Origin(loader.name, node.start_mark.line + 1)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> SourceMap:
    loader.flatten_mapping(node)
    result = SourceMap(origin=_origin(loader, node))
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise YamlProblem(_origin(loader, key_node), "mapping keys must be plain scalars")
        if key in result:
            raise YamlProblem(_origin(loader, key_node), f"duplicate key {key!r}")
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_origins[key] = _origin(loader, key_node)
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> SourceList:
    result = SourceList(origin=_origin(loader, node))
    for child in node.value:
        result.append(loader.construct_object(child, deep=True))
        result.item_origins.append(_origin(loader, child))
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml_text(text: str, name: str):
    """Parse YAML text; errors become YamlProblem with the file and line."""
    loader = _Loader(text)
    loader.name = name
    try:
        return loader.get_single_data()
    except YamlProblem:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise YamlProblem(Origin(name, line), f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(Origin(name, 1), f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()


_FILE_CACHE: dict[tuple, object] = {}


def load_yaml_file(path: Path, display_name: str | None = None):
    """Read and parse one YAML file (parsed files are reused while unchanged on disk).

    Callers never mutate parsed documents: merging copies what it changes.
    """
    name = display_name or str(path)
    stat = path.stat()
    key = (str(path.resolve()), name, stat.st_mtime_ns, stat.st_size)
    if key not in _FILE_CACHE:
        _FILE_CACHE[key] = _read_yaml_file(path, name)
    return _FILE_CACHE[key]


def _read_yaml_file(path: Path, name: str):
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise YamlProblem(Origin(name, 1), "file is not UTF-8 text") from None
    return load_yaml_text(text, name)


def plain(value):
    """Strip source tracking: nested SourceMap/SourceList become dict/list."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
