"""The declarative condition language shared by rules, filters, guards and permissions.

A condition is ``{field, op, value}`` or a group ``{all: [...]}``, ``{any: [...]}``,
``{not: {...}}``.  It is checked against the model once, then either evaluated on a
record in Python or compiled into a SQLAlchemy expression.  Nothing is ever eval'd.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.fields.base import FieldValueError
from engine.i18n.text import escape_like, like_folded

if TYPE_CHECKING:
    from engine.definitions.model import Entity, Field

OPS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "contains", "startswith",
       "isnull", "empty", "not_empty")
ORDER_OPS = {"lt", "lte", "gt", "gte"}
TEXT_OPS = {"contains", "startswith"}
LIST_OPS = {"in", "not_in"}
UNARY_OPS = {"isnull", "empty", "not_empty"}


def condition_fields(condition: dict) -> list[str]:
    """Every field key a condition mentions."""
    if "field" in condition:
        return [condition["field"]]
    for group in ("all", "any"):
        if group in condition:
            return [f for part in condition[group] for f in condition_fields(part)]
    if "not" in condition:
        return condition_fields(condition["not"])
    return []


def check_condition(entity: Entity, condition: dict) -> list[str]:
    """Problems with a condition against an entity's fields (empty when sound)."""
    problems: list[str] = []
    if "field" in condition:
        key, op = condition["field"], condition.get("op", "eq")
        field = entity.fields.get(key)
        if field is None:
            return [f"condition names unknown field {key!r} of {entity.key}"]
        ftype = field.field_type
        if op in ORDER_OPS and not ftype.ordered:
            problems.append(f"{key!r} ({field.type}) cannot be compared with {op}")
        if op in TEXT_OPS and not (ftype.textual or field.type == "tags"):
            problems.append(f"{key!r} ({field.type}) is not text; {op} does not apply")
        if op in UNARY_OPS:
            return problems
        value = condition.get("value")
        values = value if op in LIST_OPS else [value]
        if op in LIST_OPS and not isinstance(value, list):
            return problems + [f"{op} needs a list value"]
        if op in TEXT_OPS:
            if not isinstance(value, str):
                problems.append(f"{op} needs a text value")
            return problems
        for item in values:
            try:
                _coerce_operand(field, item)
            except FieldValueError as exc:
                problems.append(f"value {item!r} for {key!r} {exc}")
        return problems
    for group in ("all", "any"):
        if group in condition:
            for part in condition[group]:
                problems.extend(check_condition(entity, part))
    if "not" in condition:
        problems.extend(check_condition(entity, condition["not"]))
    return problems


def _coerce_operand(field: Field, value: Any) -> Any:
    if value is None:
        return None
    if field.type == "tags":
        return value
    return field.field_type.coerce(field, value)


def _comparable(field: Field, value: Any) -> Any:
    if isinstance(value, dict) and "amount" in value:  # money compares by amount
        return value["amount"]
    return value


def evaluate(entity: Entity, condition: dict, record: dict) -> bool:
    """Evaluate a checked condition on a record's (coerced) values."""
    if "all" in condition:
        return all(evaluate(entity, c, record) for c in condition["all"])
    if "any" in condition:
        return any(evaluate(entity, c, record) for c in condition["any"])
    if "not" in condition:
        return not evaluate(entity, condition["not"], record)
    field = entity.fields[condition["field"]]
    op = condition.get("op", "eq")
    actual = _comparable(field, record.get(field.key))
    if op == "isnull":
        return (actual is None) == bool(condition.get("value", True))
    if op == "empty":
        return field.field_type.is_empty(actual)
    if op == "not_empty":
        return not field.field_type.is_empty(actual)
    raw = condition.get("value")
    if op in LIST_OPS:
        options = [_comparable(field, _coerce_operand(field, v)) for v in raw]
        if field.type == "tags":
            hit = any(v in (actual or []) for v in options)
        else:
            hit = actual in options
        return hit if op == "in" else not hit
    if op in TEXT_OPS:
        if actual is None:
            return False
        if field.type == "tags":
            return raw in actual if op == "contains" else any(t.startswith(raw) for t in actual)
        text, needle = str(actual).casefold(), str(raw).casefold()
        return needle in text if op == "contains" else text.startswith(needle)
    if field.type == "tags" and op in ("eq", "ne"):  # "has the tag", as in list filters
        has = raw in (actual or [])
        return has if op == "eq" else not has
    expected = _comparable(field, _coerce_operand(field, raw))
    if op == "eq":
        return actual == expected
    if op == "ne":
        return actual != expected
    if actual is None or expected is None:
        return False
    return {
        "lt": actual < expected, "lte": actual <= expected,
        "gt": actual > expected, "gte": actual >= expected,
    }[op]


def to_sql(entity: Entity, condition: dict, table: sa.Table) -> sa.ColumnElement[bool]:
    """Compile a checked condition into a SQL expression on the entity's table."""
    if "all" in condition:
        return sa.and_(*(to_sql(entity, c, table) for c in condition["all"]))
    if "any" in condition:
        return sa.or_(*(to_sql(entity, c, table) for c in condition["any"]))
    if "not" in condition:
        return sa.not_(to_sql(entity, condition["not"], table))
    field = entity.fields[condition["field"]]
    column = table.c[field.key]
    op = condition.get("op", "eq")
    raw = condition.get("value")
    if op == "isnull":
        return column.is_(None) if raw in (None, True) else column.is_not(None)
    if op in ("empty", "not_empty"):
        empty = column.is_(None)
        if field.field_type.textual:
            empty = sa.or_(empty, column == "")
        return empty if op == "empty" else sa.not_(empty)
    if field.type == "tags":
        return _tags_sql(column, op, raw)
    if op in LIST_OPS:
        values = [_comparable(field, _coerce_operand(field, v)) for v in raw]
        return column.in_(values) if op == "in" else sa.or_(column.not_in(values),
                                                             column.is_(None))
    if op in TEXT_OPS:
        pattern = escape_like(str(raw))
        pattern = f"%{pattern}%" if op == "contains" else f"{pattern}%"
        return like_folded(column, pattern)
    value = _comparable(field, _coerce_operand(field, raw))
    if op == "eq":
        return column.is_(None) if value is None else column == value
    if op == "ne":
        return column.is_not(None) if value is None else sa.or_(column != value,
                                                                 column.is_(None))
    return {"lt": column < value, "lte": column <= value,
            "gt": column > value, "gte": column >= value}[op]



def _tags_sql(column, op: str, raw) -> sa.ColumnElement[bool]:
    """Tag membership, portable across SQLite (JSON text) and PostgreSQL (JSONB)."""
    values = raw if isinstance(raw, list) else [raw]
    text = sa.cast(column, sa.Text)
    hits = [text.like(f'%"{escape_like(str(v))}"%', escape="\\") for v in values]
    if op in ("eq", "contains", "in"):
        return sa.or_(*hits)
    if op in ("ne", "not_in"):
        return sa.or_(column.is_(None), sa.not_(sa.or_(*hits)))
    if op == "startswith":
        return text.like(f'%"{escape_like(str(raw))}%', escape="\\")
    raise FieldValueError(f"{op} does not apply to tags")
