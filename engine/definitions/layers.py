"""Reading metadata directories (layers) and merging them per key.

A layer is a directory whose YAML files are grouped by *kind*: either
``<kind>/<anything>.yaml`` or ``<kind>.yaml`` at the top.  Each file is a
mapping of stable keys to definitions.  Later layers are merged over earlier
ones per key; overlays use ``_delete: true`` to remove a key, ``_replace: true`` to
replace a definition instead of merging into it, and
``{_append: [...], _remove: [...]}`` to edit a list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .problems import Problem
from .yamlsource import Origin, SourceList, SourceMap, YamlProblem, load_yaml_file, load_yaml_text

KINDS = ("entities", "series", "pipelines", "roles", "dashboards", "reports", "templates",
         "conversions", "lifecycles")

UNKNOWN_KIND = f"unknown metadata kind; expected one of {', '.join(KINDS)}"

#: Files and folders in a layer directory that are not metadata.
IGNORED_NAMES = {"pack.yaml", "demo", "README.md", "templates_files"}


@dataclass
class Layer:
    """One metadata source: the base directory, a pack, or the admin overrides."""

    name: str
    documents: dict[str, SourceMap] = field(default_factory=dict)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def read_layer(directory: Path, name: str | None = None) -> tuple[Layer, list[Problem]]:
    """Load every YAML file of a layer directory, grouped by kind."""
    layer = Layer(name=name or _display(directory))
    problems: list[Problem] = []
    if not directory.is_dir():
        problems.append(Problem(Origin(_display(directory), 1), layer.name,
                                "metadata directory does not exist"))
        return layer, problems
    files: list[tuple[str, Path]] = []
    for path in sorted(directory.iterdir()):
        if path.name in IGNORED_NAMES or path.name.startswith("."):
            continue
        if path.is_dir():
            if path.name not in KINDS:
                continue  # packs may carry other folders (demo data, templates)
            files.extend((path.name, p) for p in sorted(path.rglob("*.y*ml")))
        elif path.suffix in (".yaml", ".yml"):
            if path.stem not in KINDS:
                problems.append(Problem(Origin(_display(path), 1), path.stem, UNKNOWN_KIND))
                continue
            files.append((path.stem, path))
    for kind, path in files:
        try:
            data = load_yaml_file(path, _display(path))
        except YamlProblem as exc:
            problems.append(Problem(exc.origin, kind, exc.message))
            continue
        problems.extend(_add_document(layer, kind, data, Origin(_display(path), 1)))
    return layer, problems


def layer_from_text(kind_texts: dict[str, str], name: str) -> tuple[Layer, list[Problem]]:
    """Build a layer from YAML texts keyed by kind (used for database overrides)."""
    layer = Layer(name=name)
    problems: list[Problem] = []
    for kind, text in kind_texts.items():
        display = f"{name}/{kind}.yaml"
        try:
            data = load_yaml_text(text, display)
        except YamlProblem as exc:
            problems.append(Problem(exc.origin, kind, exc.message))
            continue
        problems.extend(_add_document(layer, kind, data, Origin(display, 1)))
    return layer, problems


def layer_from_overlay_text(text: str, name: str) -> tuple[Layer, list[Problem]]:
    """Build a layer from one YAML document whose top-level keys are kinds."""
    layer = Layer(name=name)
    display = f"{name}.yaml"
    try:
        data = load_yaml_text(text, display)
    except YamlProblem as exc:
        return layer, [Problem(exc.origin, name, exc.message)]
    if data is None:
        return layer, []
    if not isinstance(data, dict):
        return layer, [Problem(Origin(display, 1), name, "an overlay must be a mapping of kinds")]
    problems: list[Problem] = []
    for kind, body in data.items():
        origin = data.origin_of(kind)
        if kind not in KINDS:
            problems.append(Problem(origin, str(kind), UNKNOWN_KIND))
            continue
        problems.extend(_add_document(layer, kind, body, origin))
    return layer, problems


def _add_document(layer: Layer, kind: str, data, origin: Origin) -> list[Problem]:
    if data is None:
        return []
    if not isinstance(data, dict):
        return [Problem(getattr(data, "origin", origin), kind,
                        "expected a mapping of keys to definitions")]
    target = layer.documents.setdefault(kind, SourceMap(origin=origin))
    problems = []
    for key, value in data.items():
        where = data.origin_of(key)
        if key in target:
            first = target.origin_of(key)
            problems.append(Problem(where, f"{kind}.{key}",
                                    f"defined twice in one layer (also at {first})"))
            continue
        target[key] = value
        target.key_origins[key] = where
    return problems


def merge_layers(layers: list[Layer]) -> tuple[dict[str, SourceMap], list[Problem]]:
    """Merge layers in order; later layers win per key."""
    merged: dict[str, SourceMap] = {}
    problems: list[Problem] = []
    for layer in layers:
        for kind, doc in layer.documents.items():
            base = merged.setdefault(kind, SourceMap(origin=doc.origin))
            _merge_map(base, doc, kind, problems)
    return merged, problems


def _is_directive(value) -> bool:
    return isinstance(value, dict) and bool(value) and all(
        k in ("_append", "_remove") for k in value)


def _merge_map(base: SourceMap, overlay: SourceMap, path: str, problems: list[Problem]) -> None:
    for key, value in overlay.items():
        where = overlay.origin_of(key)
        key_path = f"{path}.{key}"
        if isinstance(value, dict) and value.get("_delete") is True:
            if key in base:
                del base[key]
                base.key_origins.pop(key, None)
            continue
        if isinstance(value, dict) and value.get("_replace") is True:
            replacement = SourceMap(origin=getattr(value, "origin", where))
            for k, v in value.items():
                if k != "_replace":
                    replacement[k] = v
                    replacement.key_origins[k] = value.origin_of(k)
            base[key] = _clean(replacement)
            base.key_origins[key] = where
            continue
        if key not in base:
            if _is_directive(value):
                value = _apply_list_directive(SourceList(origin=where), value, key_path, problems)
            elif isinstance(value, dict):  # list edits may sit at any depth of a new key
                fresh = SourceMap(origin=getattr(value, "origin", where))
                _merge_map(fresh, value if isinstance(value, SourceMap)
                           else SourceMap(value, origin=where), key_path, problems)
                value = fresh
            base[key] = _clean(value)
            base.key_origins[key] = where
            continue
        current = base[key]
        if isinstance(current, dict) and isinstance(value, dict) and not _is_directive(value):
            if not isinstance(current, SourceMap):
                current = SourceMap(current, origin=where)
                base[key] = current
            _merge_map(current, value, key_path, problems)
        elif _is_directive(value):
            if not isinstance(current, list):
                problems.append(Problem(where, key_path,
                                        "_append/_remove can only edit a list"))
                continue
            base[key] = _apply_list_directive(current, value, key_path, problems)
        else:
            base[key] = _clean(value)
        base.key_origins[key] = where


def _item_identity(item):
    if isinstance(item, dict) and "key" in item:
        return ("key", item["key"])
    return ("value", repr(item))


def _apply_list_directive(current: list, directive: dict, path: str,
                          problems: list[Problem]) -> SourceList:
    result = SourceList(current, origin=getattr(current, "origin", None))
    result.item_origins = list(getattr(current, "item_origins", []))
    for removed in directive.get("_remove") or []:
        ident = _item_identity(removed) if isinstance(removed, dict) else ("value", repr(removed))
        matches = [i for i, item in enumerate(result)
                   if _item_identity(item) == ident
                   or (isinstance(item, dict) and not isinstance(removed, dict)
                       and item.get("key") == removed)]
        for i in reversed(matches):
            del result[i]
            if i < len(result.item_origins):
                del result.item_origins[i]
    appended = directive.get("_append") or []
    if not isinstance(appended, list):
        problems.append(Problem(getattr(directive, "origin", None), path,
                                "_append must be a list"))
        return result
    for index, item in enumerate(appended):
        ident = _item_identity(item)
        existing = [i for i, old in enumerate(result) if _item_identity(old) == ident]
        origin = appended.origin_of(index) if isinstance(appended, SourceList) else None
        if existing:
            result[existing[0]] = _clean(item)
        else:
            result.append(_clean(item))
            result.item_origins.append(origin)
    return result


def _clean(value):
    """Drop overlay-only markers from a value that becomes part of the model."""
    if isinstance(value, SourceMap):
        out = SourceMap(origin=value.origin)
        for k, v in value.items():
            if isinstance(v, dict) and v.get("_delete") is True:
                continue
            out[k] = _clean(v)
            out.key_origins[k] = value.origin_of(k)
        return out
    return value
