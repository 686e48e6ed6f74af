"""Resolve metadata: read layers, merge, check JSON Schema and semantics, build the model."""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from importlib import resources
from pathlib import Path

import jsonschema

from engine.fields.base import FieldValueError
from engine.fields.registry import FieldTypeRegistry
from engine.query.conditions import check_condition
from engine.query.params import RESERVED_WORDS

from .layers import Layer, merge_layers, read_layer
from .model import (
    DEFAULT_TOKENS,
    LANGUAGES,
    SYSTEM_FIELDS,
    Entity,
    Field,
    Model,
    Option,
    Rule,
    Series,
    humanise,
)
from .problems import MetadataError, Problem
from .yamlsource import Origin, plain

COMMON_FIELD_PROPERTIES = {
    "type", "label", "help", "required", "required_if", "unique", "default", "read_only",
    "hidden", "filterable", "sortable", "searchable", "rollup",
}
RESERVED_ENTITY_PREFIXES = ("kv_", "sqlite_", "pg_", "alembic")
#: Field keys the engine keeps for columns of its own (PostgreSQL's `kv_search`).
RESERVED_FIELD_PREFIX = "kv_"
#: Entity keys that would collide with the web application's own URLs.
RESERVED_ENTITY_KEYS = {"login", "logout", "password", "api", "static", "bootstrap", "search",
                        "calendar", "files", "admin", "studio", "me", "lookup", "health"}
SERIES_TOKEN_RE = re.compile(r"{([^{}]*)}")
SERIES_DATE_TOKENS = {"YYYY", "YY", "MM", "DD"}


@cache
def metadata_schema() -> dict:
    """The JSON Schema shipped with the engine for merged metadata."""
    text = resources.files("engine.definitions").joinpath("schemas/metadata.schema.json")
    return json.loads(text.read_text(encoding="utf-8"))


def resolve_metadata(directories: list[Path], registry: FieldTypeRegistry,
                     extra_layers: list[Layer] | None = None) -> Model:
    """Resolve metadata directories (base first) into a Model, or raise MetadataError."""
    model, problems = try_resolve(directories, registry, extra_layers)
    if problems:
        raise MetadataError(problems)
    return model


def try_resolve(directories: list[Path], registry: FieldTypeRegistry,
                extra_layers: list[Layer] | None = None) -> tuple[Model | None, list[Problem]]:
    """Resolve and return (model, problems); the model is None when anything is wrong."""
    layers: list[Layer] = []
    problems: list[Problem] = []
    for directory in directories:
        layer, found = read_layer(directory)
        layers.append(layer)
        problems.extend(found)
    layers.extend(extra_layers or [])
    merged, found = merge_layers(layers)
    problems.extend(found)
    if problems:
        return None, problems
    problems.extend(schema_problems(merged))
    if problems:
        return None, problems
    model, found = build_model(merged, registry, [layer.name for layer in layers])
    problems.extend(found)
    return (None if problems else model), problems


def _path_key(path) -> str:
    parts = [str(p) for p in path]
    if parts and parts[0] == "entities":
        parts = parts[1:]
    return ".".join(parts) or "metadata"


def _origin_at(root, path) -> Origin | None:
    node, origin = root, getattr(root, "origin", None)
    for part in path:
        if isinstance(node, dict) and part in node:
            origin = node.origin_of(part) if hasattr(node, "origin_of") else origin
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            origin = node.origin_of(part) if hasattr(node, "origin_of") else origin
            node = node[part]
        else:
            break
    return origin


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(metadata_schema())


def schema_problems(merged: dict) -> list[Problem]:
    """Check merged metadata against the JSON Schema; one problem per error."""
    validator = _validator()
    problems = []
    for error in sorted(validator.iter_errors(merged), key=lambda e: list(map(str, e.path))):
        error = _most_specific(error)
        path = list(error.absolute_path)
        message = _friendly(error)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(error.schema.get("properties", {}))
            for extra in [k for k in error.instance if k not in allowed]:
                problems.append(Problem(_origin_at(merged, path + [extra]),
                                        _path_key(path + [extra]),
                                        f"unknown property {extra!r}; allowed: "
                                        f"{', '.join(sorted(allowed))}"))
            continue
        problems.append(Problem(_origin_at(merged, path), _path_key(path), message))
    return problems


def _most_specific(error):
    if error.validator in ("oneOf", "anyOf") and error.context:
        deepest = max(error.context, key=lambda e: (len(e.absolute_path), -len(e.schema_path)))
        return _most_specific(deepest)
    return error


def _friendly(error) -> str:
    v = error.validator
    if v == "required":
        return error.message.replace("is a required property", "is required")
    if v == "pattern" and isinstance(error.instance, str):
        return (f"{error.instance!r} is not a valid key (lower-case letters, digits and "
                f"single underscores, starting with a letter)"
                if "a-z" in error.validator_value else
                f"{error.instance!r} does not match {error.validator_value}")
    if v == "enum":
        return f"{error.instance!r} must be one of {', '.join(map(str, error.validator_value))}"
    if v == "type":
        return f"expected {error.validator_value}, got {type(error.instance).__name__}"
    return error.message


def _labels(value, key: str) -> dict[str, str]:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, str):
        return {"en": value}
    return {"en": humanise(key)}


def _options(raw) -> list[Option]:
    options = []
    for index, item in enumerate(raw or []):
        if isinstance(item, str):
            options.append(Option(key=item, label={"en": humanise(item)}, order=index))
        else:
            options.append(Option(key=item["key"], label=_labels(item.get("label"), item["key"]),
                                  color=item.get("color"), category=item.get("category"),
                                  probability=item.get("probability"),
                                  order=item.get("order", index)))
    return options


def _build_field(key: str, raw: dict, registry: FieldTypeRegistry, origin) -> Field:
    type_name = registry.resolve_name(raw["type"]) or raw["type"]
    field_type = registry.get(type_name) if registry.resolve_name(raw["type"]) else None
    return Field(
        key=key, type=type_name, field_type=field_type,
        label=_labels(raw.get("label"), key), spec=plain(raw),
        required=bool(raw.get("required", False)), required_if=plain(raw.get("required_if")),
        unique=bool(raw.get("unique", False)), default=plain(raw.get("default")),
        read_only=bool(raw.get("read_only", False)), hidden=bool(raw.get("hidden", False)),
        filterable=bool(raw.get("filterable", False)), sortable=bool(raw.get("sortable", False)),
        searchable=bool(raw.get("searchable", False)), options=_options(raw.get("options")),
        origin=origin,
    )


def _system_fields(registry: FieldTypeRegistry) -> dict[str, Field]:
    fields = {}
    for key, (type_name, label) in SYSTEM_FIELDS.items():
        fields[key] = Field(key=key, type=type_name, field_type=registry.get(type_name),
                            label=dict(label), system=True,
                            read_only=key not in ("owner", "team"),
                            filterable=key in ("created_at", "updated_at", "owner", "team"),
                            sortable=key in ("id", "created_at", "updated_at"))
    return fields


def build_model(merged: dict, registry: FieldTypeRegistry,
                layer_names: list[str]) -> tuple[Model, list[Problem]]:
    """Turn schema-valid merged documents into a Model and check its semantics."""
    problems: list[Problem] = []
    entities: dict[str, Entity] = {}
    raw_entities = merged.get("entities", {})
    for key, raw in raw_entities.items():
        origin = raw_entities.origin_of(key)
        fields = _system_fields(registry)
        raw_fields = raw["fields"]
        for fkey, fraw in raw_fields.items():
            forigin = raw_fields.origin_of(fkey)
            if fkey in SYSTEM_FIELDS:
                problems.append(Problem(forigin, f"{key}.fields.{fkey}",
                                        f"{fkey!r} is a system field every entity already has"))
                continue
            if fkey.startswith(RESERVED_FIELD_PREFIX):
                problems.append(Problem(forigin, f"{key}.fields.{fkey}",
                                        f"{fkey!r}: names starting with "
                                        f"{RESERVED_FIELD_PREFIX!r} are the engine's own "
                                        f"columns (the search document); name the field "
                                        f"otherwise"))
                continue
            if fkey in RESERVED_WORDS:
                problems.append(Problem(forigin, f"{key}.fields.{fkey}",
                                        f"{fkey!r} is a word of every list's address (q "
                                        f"searches, lang picks the language); name the field "
                                        f"otherwise"))
                continue
            if registry.resolve_name(fraw["type"]) is None:
                problems.append(Problem(fraw.origin_of("type"), f"{key}.fields.{fkey}.type",
                                        f"unknown field type {fraw['type']!r}; known types: "
                                        f"{', '.join(registry.names())}"))
                continue
            fields[fkey] = _build_field(fkey, fraw, registry, forigin)
        entity = Entity(
            key=key, label=dict(raw["label"]), plural=dict(raw.get("plural") or raw["label"]),
            fields=fields, description=_labels(raw["description"], key)
            if raw.get("description") else None,
            title=raw.get("title"), module=raw.get("module"), icon=raw.get("icon"),
            order=raw.get("order", 100), child_of=raw.get("child_of"),
            singleton=bool(raw.get("singleton", False)), delete_policy=raw.get("delete", "allowed"),
            stage_field=raw.get("stage_field"), pipeline=raw.get("pipeline"),
            rules=[Rule(one_of_required=list(r["one_of_required"]), when=plain(r.get("when")),
                        message=plain(r.get("message"))) for r in raw.get("rules", [])],
            list_spec=plain(raw.get("list") or {}), form_spec=plain(raw.get("form") or {}),
            detail_spec=plain(raw.get("detail") or {}),
            calendar_spec=plain(raw.get("calendar") or {}),
            totals_spec=plain(raw.get("totals") or {}),
            print_spec=plain(raw.get("print") or {}),
            search_fields=list((raw.get("search") or {}).get("fields") or
                               [k for k, f in fields.items() if f.searchable]),
            origin=origin,
        )
        entities[key] = entity
    series: dict[str, Series] = {}
    raw_series = merged.get("series", {})
    for key, raw in raw_series.items():
        item = Series(key=key, entity=raw["entity"], field=raw["field"], pattern=raw["pattern"],
                      reset=raw.get("reset", "yearly"), start=raw.get("start", 1),
                      origin=raw_series.origin_of(key))
        series[key] = item
        if item.entity in entities:
            entities[item.entity].series.append(item)
    documents = {kind: plain(doc) for kind, doc in merged.items()}
    fingerprint = hashlib.sha256(
        json.dumps(documents, sort_keys=True, default=str).encode()).hexdigest()[:16]
    model = Model(entities=entities, series=series, documents=documents,
                  fingerprint=fingerprint, layers=layer_names)
    problems.extend(semantic_problems(model, merged))
    return model, problems


def semantic_problems(model: Model, merged: dict) -> list[Problem]:
    """Checks JSON Schema cannot express: links resolve, conditions name fields, and so on."""
    problems: list[Problem] = []
    raw_entities = merged.get("entities", {})

    def add(origin, key, message):
        problems.append(Problem(origin, key, message))

    for entity in model.entities.values():
        raw = raw_entities[entity.key]
        ek = entity.key
        if entity.key.startswith(RESERVED_ENTITY_PREFIXES):
            add(entity.origin, ek, "entity keys may not start with "
                + ", ".join(RESERVED_ENTITY_PREFIXES))
        if entity.key in RESERVED_ENTITY_KEYS:
            add(entity.origin, ek, f"{ek!r} is reserved for the application's own pages; "
                                   f"choose another key")
        for lang in LANGUAGES:
            if lang not in entity.label:
                pass  # English is required by the schema; other languages fall back to it
        for field in entity.user_fields.values():
            problems.extend(_field_problems(model, entity, field, raw["fields"][field.key]))
        for index, rule in enumerate(entity.rules):
            rorigin = raw["rules"].origin_of(index)
            for fkey in rule.one_of_required:
                if fkey not in entity.fields:
                    add(rorigin, f"{ek}.rules.{index}", f"unknown field {fkey!r}")
            if rule.when:
                for msg in check_condition(entity, rule.when):
                    add(rorigin, f"{ek}.rules.{index}.when", msg)
        for tkey in entity.title_fields():
            if tkey not in entity.fields:
                add(raw.origin_of("title"), f"{ek}.title", f"unknown field {tkey!r}")
        if entity.child_of and entity.child_of not in model.entities:
            add(raw.origin_of("child_of"), f"{ek}.child_of",
                f"parent entity {entity.child_of!r} does not exist")
        if entity.stage_field:
            stage = entity.fields.get(entity.stage_field)
            if stage is None or stage.type != "enum":
                add(raw.origin_of("stage_field"), f"{ek}.stage_field",
                    f"{entity.stage_field!r} must be an enum field of {ek}")
        problems.extend(_layout_problems(model, entity, raw))
        calendar = raw.get("calendar") or {}
        for prop in ("start", "end"):
            key = calendar.get(prop)
            if key and (key not in entity.fields
                        or entity.fields[key].type not in ("date", "datetime")):
                add(calendar.origin_of(prop), f"{ek}.calendar.{prop}",
                    f"{key!r} must be a date or datetime field of {ek}")
        problems.extend(_document_problems(model, entity, raw))
        lst = raw.get("list") or {}
        if lst.get("kanban") and not entity.stage_field:
            add(raw.origin_of("list"), f"{ek}.list.kanban", "a board needs a stage_field")
        total = lst.get("sum")
        if total and (total not in entity.fields or entity.fields[total].type not in (
                "money", "decimal", "integer")):
            add(raw.origin_of("list"), f"{ek}.list.sum",
                f"{total!r} must be a money, decimal or integer field of {ek}")
    raw_series = merged.get("series", {})
    for series in model.series.values():
        problems.extend(_series_problems(model, series, raw_series[series.key]))
    for board_key, board in merged.get("dashboards", {}).items():
        for index, widget in enumerate(board["widgets"]):
            where = board["widgets"].origin_of(index)
            entity = model.entities.get(widget["entity"])
            wkey = f"dashboards.{board_key}.widgets.{widget['key']}"
            if entity is None:
                problems.append(Problem(where, wkey, f"entity {widget['entity']!r} does not exist"))
                continue
            if widget.get("kind") == "sum" and widget.get("field") not in entity.fields:
                problems.append(Problem(where, wkey, "a sum widget needs a field of "
                                                     f"{entity.key}"))
            for name in widget.get("filter", {}):
                if name.partition("__")[0] not in entity.fields:
                    problems.append(Problem(where, wkey, f"filter names unknown field {name!r}"))
    from engine.workflow.checks import workflow_problems

    problems.extend(workflow_problems(model, merged))
    raw_roles = merged.get("roles", {})
    for role_key, role in raw_roles.items():
        for entity_key in role.get("entities", {}):
            if entity_key != "*" and entity_key not in model.entities:
                problems.append(Problem(role["entities"].origin_of(entity_key),
                                        f"roles.{role_key}.entities.{entity_key}",
                                        f"entity {entity_key!r} does not exist"))
        for ref in role.get("fields", {}):
            entity_key, _, field_key = ref.partition(".")
            entity = model.entities.get(entity_key)
            if entity is None or field_key not in entity.fields:
                problems.append(Problem(role["fields"].origin_of(ref),
                                        f"roles.{role_key}.fields.{ref}",
                                        f"field {ref!r} does not exist"))
    return problems


def _field_problems(model: Model, entity: Entity, field: Field, raw) -> list[Problem]:
    problems: list[Problem] = []
    key = f"{entity.key}.fields.{field.key}"
    ftype = field.field_type

    def add(prop, message):
        origin = raw.origin_of(prop) if prop else field.origin
        problems.append(Problem(origin, f"{key}.{prop}" if prop else key, message))

    allowed = COMMON_FIELD_PROPERTIES | ftype.properties
    for prop in raw:
        if prop not in allowed:
            add(prop, f"{prop!r} does not apply to {_article(field.type)} {field.type} field")
    for prop in ftype.required_properties:
        if prop not in raw:
            add(None, f"a {field.type} field needs {prop!r}")
    for message in ftype.check_definition(field):
        add(None, message)
    keys = field.option_keys
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        add("options", f"duplicate option keys: {', '.join(duplicates)}")
    if field.type == "link" and "target" in raw and field.target not in model.entities:
        add("target", f"links to entity {field.target!r}, which does not exist")
    if field.type == "child_table" and "entity" in raw:
        child = model.entities.get(raw["entity"])
        link_key = raw.get("link_field", entity.key)
        if child is None:
            add("entity", f"child entity {raw['entity']!r} does not exist")
        else:
            link = child.fields.get(link_key)
            if child.child_of != entity.key:
                add("entity", f"{child.key} must declare child_of: {entity.key}")
            if link is None or link.type != "link" or link.target != entity.key:
                add("link_field", f"{child.key}.{link_key} must be a link to {entity.key}")
    if field.unique and (not ftype.stored or field.type in ("tags", "text", "boolean")):
        add("unique", f"a {field.type} field cannot be unique")
    if field.required_if:
        for message in check_condition(entity, field.required_if):
            add("required_if", message)
    if field.default is not None and field.default not in DEFAULT_TOKENS:
        try:
            value = ftype.coerce(field, field.default)
            if value is None:
                add("default", "default is empty")
        except FieldValueError as exc:
            shown = "" if repr(field.default) in str(exc) else f"{field.default!r} "
            add("default", f"default {shown}{exc}")
    elif field.default == "$user" and field.type != "user":
        add("default", "$user is only a default for user fields")
    elif field.default in ("$today", "$now") and field.type not in ("date", "datetime"):
        add("default", f"{field.default} is only a default for date and datetime fields")
    return problems


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _field_ref_problems(entity: Entity, refs, origin, key: str, purpose: str) -> list[Problem]:
    problems = []
    for ref in refs:
        name = ref.lstrip("-")
        if name not in entity.fields:
            problems.append(Problem(origin, key, f"{purpose} names unknown field {name!r}"))
    return problems


def _layout_problems(model: Model, entity: Entity, raw) -> list[Problem]:
    problems: list[Problem] = []
    ek = entity.key
    lst = raw.get("list") or {}
    if lst:
        origin = raw.origin_of("list")
        problems += _field_ref_problems(entity, lst.get("columns", []), origin,
                                        f"{ek}.list.columns", "list column")
        problems += _field_ref_problems(entity, lst.get("filters", []), origin,
                                        f"{ek}.list.filters", "list filter")
        sort = lst.get("default_sort")
        if sort:
            problems += _field_ref_problems(entity, [sort], origin, f"{ek}.list.default_sort",
                                            "default sort")
            field = entity.fields.get(sort.lstrip("-"))
            if field and field.field_type.sort_column(field) is None:
                problems.append(Problem(origin, f"{ek}.list.default_sort",
                                        f"{field.key!r} ({field.type}) cannot be sorted"))
    form = raw.get("form") or {}
    for index, section in enumerate(form.get("sections", [])):
        problems += _field_ref_problems(entity, section["fields"], form.origin_of("sections"),
                                        f"{ek}.form.sections.{index}", "form section")
    detail = raw.get("detail") or {}
    problems += _field_ref_problems(entity, detail.get("header", []), raw.origin_of("detail"),
                                    f"{ek}.detail.header", "header")
    tabs = detail.get("tabs") or []
    for index, tab in enumerate(tabs):
        origin = tabs.origin_of(index) if hasattr(tabs, "origin_of") else None
        tkey = f"{ek}.detail.tabs.{tab['key']}"
        for section in tab.get("sections", []):
            problems += _field_ref_problems(entity, section, origin, tkey, "tab section")
        for rel in tab.get("related", []):
            problems += [Problem(origin, tkey, msg) for msg in related_problems(model, entity, rel)]
    return problems


def related_problems(model: Model, entity: Entity, ref: str) -> list[str]:
    """A related list is `entity` or `entity.link_field` pointing back at this entity."""
    other_key, _, link_key = ref.partition(".")
    other = model.entities.get(other_key)
    if other is None:
        return [f"related entity {other_key!r} does not exist"]
    if link_key:
        link = other.fields.get(link_key)
        if link is None or link.type != "link" or link.target != entity.key:
            return [f"{other_key}.{link_key} is not a link to {entity.key}"]
        return []
    links = [f for f in other.fields.values() if f.type == "link" and f.target == entity.key]
    if not links:
        return [f"{other_key} has no link field to {entity.key}"]
    if len(links) > 1:
        return [f"{other_key} links to {entity.key} through "
                f"{', '.join(f.key for f in links)}; name one as {other_key}.<field>"]
    return []


def _series_problems(model: Model, series: Series, raw) -> list[Problem]:
    problems: list[Problem] = []
    key = f"series.{series.key}"

    def add(prop, message):
        problems.append(Problem(raw.origin_of(prop) if prop else series.origin, key, message))

    entity = model.entities.get(series.entity)
    if entity is None:
        add("entity", f"entity {series.entity!r} does not exist")
    else:
        field = entity.fields.get(series.field)
        if field is None:
            add("field", f"{series.entity} has no field {series.field!r}")
        elif field.type != "string":
            add("field", f"{series.entity}.{series.field} must be a string field to hold numbers")
        others = [s.key for s in entity.series if s.field == series.field and s is not series]
        if others:
            add("field", f"{series.entity}.{series.field} is already numbered by {others[0]}")
    for message in pattern_problems(series.pattern, series.reset):
        add("pattern", message)
    return problems


def pattern_problems(pattern: str, reset: str) -> list[str]:
    """Check a number series pattern such as `T-{YYYY}-{####}`."""
    tokens = SERIES_TOKEN_RE.findall(pattern)
    stripped = SERIES_TOKEN_RE.sub("", pattern)
    problems = []
    if "{" in stripped or "}" in stripped:
        problems.append(f"pattern {pattern!r} has an unbalanced brace")
    counters = [t for t in tokens if t and set(t) == {"#"}]
    unknown = [t for t in tokens if t not in SERIES_DATE_TOKENS and t not in counters]
    if unknown:
        problems.append(f"pattern {pattern!r} has unknown tokens: "
                        f"{', '.join('{' + t + '}' for t in unknown)}; use {{YYYY}}, {{YY}}, "
                        f"{{MM}}, {{DD}} and one counter such as {{####}}")
    if len(counters) != 1:
        problems.append(f"pattern {pattern!r} needs exactly one counter such as {{####}}")
    has_year = "YYYY" in tokens or "YY" in tokens
    if reset == "yearly" and not has_year:
        problems.append("a yearly series needs {YYYY} or {YY} in its pattern, or numbers repeat")
    if reset == "monthly" and not (has_year and "MM" in tokens):
        problems.append("a monthly series needs the year and {MM} in its pattern")
    return problems


def _document_problems(model: Model, entity: Entity, raw) -> list[Problem]:
    """`totals:` names a child table and fields that exist; rollups point at real links."""
    problems = []
    spec = entity.totals_spec
    origin = raw.origin_of("totals") if spec else None
    if spec:
        lines = entity.fields.get(spec["lines"])
        if lines is None or lines.type != "child_table":
            problems.append(Problem(origin, f"{entity.key}.totals.lines",
                                    f"{spec['lines']!r} must be a child table of {entity.key}"))
        else:
            child = model.entities.get(lines.spec["entity"])
            for key in ("quantity", "price", "discount", "vat_rate", "line_total"):
                name = spec.get(key)
                if name and child and name not in child.fields:
                    problems.append(Problem(origin, f"{entity.key}.totals.{key}",
                                            f"{child.key} has no field {name!r}"))
        for key in ("currency", "document_discount", "subtotal", "discount_total", "vat_total",
                    "grand_total", "paid", "balance"):
            name = spec.get(key)
            if name and name not in entity.fields:
                problems.append(Problem(origin, f"{entity.key}.totals.{key}",
                                        f"{entity.key} has no field {name!r}"))
    for fkey, field in entity.user_fields.items():
        rollup = field.spec.get("rollup")
        if not rollup:
            continue
        other = model.entities.get(rollup["entity"])
        link = other.fields.get(rollup["link"]) if other else None
        if other is None or link is None or link.target != entity.key \
                or rollup["sum"] not in other.fields:
            problems.append(Problem(field.origin, f"{entity.key}.fields.{fkey}.rollup",
                                    f"{rollup['entity']}.{rollup['link']} must link to "
                                    f"{entity.key} and {rollup['entity']} must have "
                                    f"{rollup['sum']!r}"))
    return problems
