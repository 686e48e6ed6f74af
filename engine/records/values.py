"""Turning input into checked values: coercion, defaults and the declared rules."""

from __future__ import annotations

import datetime as dt
from typing import Any

from engine.definitions.model import Entity, Field
from engine.fields.base import FieldValueError
from engine.query.conditions import evaluate

from .actor import Actor

#: System fields a caller may set; the others are managed by the engine.
ASSIGNABLE_SYSTEM_FIELDS = ("owner", "team")


def coerce_input(entity: Entity, values: dict, errors: dict[str, str],
                 prefix: str = "") -> dict[str, Any]:
    """Coerce every given value with its field type; unknown keys are errors."""
    out: dict[str, Any] = {}
    if not isinstance(values, dict):
        errors[prefix.rstrip(".") or "_record"] = "must be an object of field values"
        return out
    for key, raw in values.items():
        field = entity.fields.get(key)
        if field is None:
            errors[f"{prefix}{key}"] = f"{entity.key} has no field {key!r}"
            continue
        if field.system and key not in ASSIGNABLE_SYSTEM_FIELDS:
            if key in ("id", "version"):
                continue  # echoed back from a read; identity and version are handled apart
            errors[f"{prefix}{key}"] = "is set by the system and cannot be changed"
            continue
        try:
            out[key] = field.field_type.coerce(field, raw)
        except FieldValueError as exc:
            errors[f"{prefix}{key}"] = str(exc)
    return out


def default_value(field: Field, actor: Actor, now: dt.datetime, today: dt.date):
    if field.default == "$today":
        return today if field.type == "date" else now
    if field.default == "$now":
        return now if field.type == "datetime" else today
    if field.default == "$user":
        return actor.user_id
    return field.field_type.coerce(field, field.default)


def label(field: Field) -> str:
    return field.label.get("en") or field.key


def check_rules(entity: Entity, record: dict, errors: dict[str, str], prefix: str = "") -> None:
    """Required, required-if and one-of-required rules on the full record."""
    for field in entity.ruled_fields:
        if f"{prefix}{field.key}" in errors or not field.field_type.is_empty(
                record.get(field.key)):
            continue
        if field.required and not entity.series_for(field.key):
            errors[f"{prefix}{field.key}"] = "is required"
        elif field.required_if and evaluate(entity, field.required_if, record):
            when = describe(entity, field.required_if)
            errors[f"{prefix}{field.key}"] = f"is required when {when}"
    for rule in entity.rules:
        if rule.when and not evaluate(entity, rule.when, record):
            continue
        fields = [entity.fields[k] for k in rule.one_of_required]
        if all(f.field_type.is_empty(record.get(f.key)) for f in fields):
            names = " or ".join(label(f) for f in fields)
            message = rule.message.get("en") if rule.message else f"enter {names}"
            for f in fields:
                errors.setdefault(f"{prefix}{f.key}", message)


def describe(entity: Entity, condition: dict) -> str:
    """A condition in words, for error messages."""
    if "all" in condition:
        return " and ".join(describe(entity, c) for c in condition["all"])
    if "any" in condition:
        return " or ".join(describe(entity, c) for c in condition["any"])
    if "not" in condition:
        return f"not ({describe(entity, condition['not'])})"
    field = entity.fields[condition["field"]]
    op = condition.get("op", "eq")
    value = condition.get("value")
    words = {"eq": "is", "ne": "is not", "lt": "is less than", "lte": "is at most",
             "gt": "is more than", "gte": "is at least", "in": "is one of",
             "not_in": "is not one of", "contains": "contains", "startswith": "starts with",
             "isnull": "is empty", "empty": "is empty", "not_empty": "is filled in"}[op]
    if op in ("isnull", "empty", "not_empty"):
        return f"{label(field)} {words}"
    if isinstance(value, list):
        value = ", ".join(map(str, value))
    option = field.option(value) if isinstance(value, str) and field.options else None
    shown = option.label.get("en") if option else value
    return f"{label(field)} {words} {shown}"
