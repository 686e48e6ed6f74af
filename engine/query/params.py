"""The query-string grammar shared by screens and the API.

`field=value` and `field__op=value` filter (ops: eq, ne, lt, lte, gt, gte, in, contains,
startswith, isnull, and `category` — stages by canonical category, so renamed stages keep
working), `q=` searches, `_sort=field,-other` sorts, `_size=` sets the page
size, `_next=` continues from a cursor and `_archived=1` includes archived records;
`lang=` (any page's language) is not a filter.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from engine.definitions.model import Entity

from .conditions import OPS
from .listing import MAX_PAGE_SIZE, ListRequest, QueryError, parse_sort

API_OPS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "startswith", "isnull",
           "category")
RESERVED = {"q", "lang", "_sort", "_size", "_next", "_archived", "_count", "_format", "_page"}
#: Words of every page's query string that are not underscored, so no field may be named so:
#: `q` searches and `lang` picks the page's language (the language switcher adds it).
RESERVED_WORDS = frozenset(n for n in RESERVED if not n.startswith("_"))
TRUE = {"1", "true", "yes", "on"}


RELATIVE = re.compile(r"^\$?today([+-]\d+)?$")


def relative_day(value: str, field_type: str, today: dt.date) -> str:
    """`$today`, `$today-7`, `$today+30` in date filters (dashboards, saved searches)."""
    match = RELATIVE.match(value.strip()) if field_type == "date" else None
    if not match:
        return value
    return (today + dt.timedelta(days=int(match.group(1) or 0))).isoformat()


def parse_list_args(entity: Entity, args: Mapping, ignore: set[str] | None = None,
                    default_size: int = 50, today: dt.date | None = None) -> ListRequest:
    """Turn query-string arguments into a ListRequest; unknown names are errors."""
    ignore = ignore or set()
    today = today or dt.date.today()
    request = ListRequest(size=default_size)
    errors: dict[str, str] = {}
    items = args.items(multi=True) if hasattr(args, "getlist") else args.items()
    for name, value in items:
        if name in RESERVED or name in ignore:
            continue
        key, _, op = name.partition("__")
        op = op or "eq"
        fld = entity.fields.get(key)
        if fld is None:
            errors[name] = f"{entity.key} has no field {key!r}"
            continue
        if op not in API_OPS or (op not in OPS and op != "category"):
            errors[name] = f"unknown operator {op!r}; use one of {', '.join(API_OPS)}"
            continue
        if not fld.stored:
            errors[name] = f"{key!r} cannot be filtered"
            continue
        if op == "category":
            if fld.type != "enum":
                errors[name] = f"{key!r} has no stage categories"
                continue
            wanted = {v.strip() for v in value.split(",")}
            keys = [o.key for o in fld.options if o.category in wanted]
            if not keys:
                errors[name] = f"no {key} option has category {value!r}"
                continue
            request.where.append({"field": key, "op": "in", "value": keys})
        elif op == "in":
            request.where.append({"field": key, "op": "in",
                                  "value": [v.strip() for v in value.split(",") if v.strip()]})
        elif op == "isnull":
            request.where.append({"field": key, "op": "isnull",
                                  "value": value.strip().lower() in TRUE})
        elif value == "" and op == "eq":
            continue  # an empty filter box means no filter
        else:
            request.where.append({"field": key, "op": op,
                                  "value": relative_day(value, fld.type, today)})
    try:
        request.sort = parse_sort(entity, args.get("_sort") or None)
    except QueryError as exc:
        errors.update(exc.fields)
    size = args.get("_size")
    if size not in (None, ""):
        if not str(size).isdigit() or not 1 <= int(size) <= MAX_PAGE_SIZE:
            errors["_size"] = f"must be a whole number between 1 and {MAX_PAGE_SIZE}"
        else:
            request.size = int(size)
    request.cursor = args.get("_next") or None
    request.search = (args.get("q") or "").strip() or None
    request.include_archived = str(args.get("_archived", "")).lower() in TRUE
    if errors:
        raise QueryError("invalid list request", errors)
    return request
