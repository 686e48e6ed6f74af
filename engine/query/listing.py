"""Lists of records: filters, sorting, keyset pagination, capped counts and search.

One function, `list_records`, serves every list a user sees: screens, the JSON API,
CSV exports and related tabs.  Pages are keyset pages (a cursor holds the sort values
of the last row), so page 1,000 costs what page 1 costs.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from engine.definitions.model import Entity
from engine.fields.base import FieldValueError
from engine.fields.builtin import normalise_digits, searched_digits
from engine.i18n.text import contains_folded

from . import search_index
from .conditions import check_condition, to_sql
from .search_index import candidates, implies_match

MAX_PAGE_SIZE = 500
COUNT_CAP = 10_000
#: A search counts its matches up to this many (then "5,000+"): each one is checked against
#: the typed text, about 15 µs apiece on PostgreSQL, where a plain list counts index entries.
SEARCH_COUNT_CAP = 5_000
#: A search whose text more rows hold than this walks the list's order instead of sorting
#: every hit the search index finds.
SEARCH_HITS_TO_SORT = 5_000


def hits_to_sort(size: int) -> int:
    """How many search hits are still sorted for a page of `size` rows. Beyond it, walking
    the list's order meets `size` hits within about a hundredth of the table; the few
    rows of a global search's group or a picker's list need fewer hits for that."""
    return min(SEARCH_HITS_TO_SORT, 100 * size)


#: PostgreSQL: a list with at most this many matches reads them all and sorts them.
FENCE = 5_000
#: How many rows of a list's own order a search the index found in many records
#: (`ListRequest.many_hits`) walks to fill its page before the index is asked again.
WALK_ROWS = 2_000


class QueryError(ValueError):
    """A list request that cannot be answered; `fields` names what is wrong."""

    def __init__(self, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


@dataclass
class SortKey:
    field: str
    descending: bool = False

    def __str__(self) -> str:
        return ("-" if self.descending else "") + self.field


#: The order of every list that declares no other.
NEWEST = SortKey("created_at", descending=True)


@dataclass
class ListRequest:
    where: list[dict] = field(default_factory=list)
    sort: list[SortKey] = field(default_factory=list)
    size: int = 50
    cursor: str | None = None
    search: str | None = None
    include_archived: bool = False
    count: bool = True
    #: Only among these records (ids a search index already found for `search`, which then
    #: only checks the exact per-field match); None: every record.
    among: list[int] | None = None
    #: The search index already found more records holding `search` than a page sorts
    #: (`hits_to_sort`): an uncounted page walks the list's own order first.
    many_hits: bool = False


@dataclass
class Page:
    rows: list[dict[str, Any]]
    next: str | None
    count: int | None = None
    at_least: int | None = None


def parse_sort(entity: Entity, text: str | None) -> list[SortKey]:
    """`field,-other` into sort keys; only sortable storage is accepted."""
    keys = []
    spec = text or entity.list_spec.get("default_sort") or str(NEWEST)
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        name = part.lstrip("-")
        fld = entity.fields.get(name)
        if fld is None:
            raise QueryError(f"cannot sort by {name!r}", {"_sort": f"{entity.key} has no field "
                                                                   f"{name!r}"})
        if not fld.stored or fld.field_type.sort_column(fld) is None:
            raise QueryError(f"cannot sort by {name!r}",
                             {"_sort": f"{name!r} ({fld.type}) cannot be sorted"})
        keys.append(SortKey(name, part.startswith("-")))
    return keys


def sort_columns(entity: Entity, table: sa.Table, keys: list[SortKey]):
    """(column, descending) pairs ending with the id tiebreaker."""
    columns = []
    for key in keys:
        fld = entity.fields[key.field]
        columns.append((table.c[fld.field_type.sort_column(fld)], key.descending))
    if not any(c is table.c.id for c, _ in columns):
        columns.append((table.c.id, columns[0][1] if columns else True))
    return columns


def encode_cursor(values: list) -> str:
    raw = json.dumps(values, default=_jsonable, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _jsonable(value):
    if hasattr(value, "isoformat"):
        return {"$t": value.isoformat()}
    return str(value)


def decode_cursor(token: str, columns) -> list:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        values = json.loads(raw)
    except (ValueError, json.JSONDecodeError):
        raise QueryError("invalid cursor", {"_next": "is not a cursor this list gave out"}) \
            from None
    if not isinstance(values, list) or len(values) != len(columns):
        raise QueryError("invalid cursor", {"_next": "belongs to a list sorted differently"})
    out = []
    for (column, _), value in zip(columns, values, strict=True):
        if isinstance(value, dict) and "$t" in value:
            try:
                value = column.type.python_type.fromisoformat(value["$t"])
            except (ValueError, NotImplementedError):
                raise QueryError("invalid cursor", {"_next": "is damaged"}) from None
        elif value is not None and column.type.python_type is Decimal:
            value = Decimal(value)
        out.append(value)
    return out


def keyset_after(columns, values) -> sa.ColumnElement[bool]:
    """Rows after the given sort values, with NULLs sorted last in every direction.

    When no sort column can be NULL and all run one way, this is a row-value comparison
    `(created_at, id) < (:c, :i)` that both databases answer with an index seek.
    """
    directions = {descending for _column, descending in columns}
    if len(directions) == 1 and not any(column.nullable for column, _ in columns):
        row, given = sa.tuple_(*[c for c, _ in columns]), sa.tuple_(*[
            sa.literal(v, c.type) for (c, _), v in zip(columns, values, strict=True)])
        return row < given if directions.pop() else row > given
    alternatives = []
    for i, (column, descending) in enumerate(columns):
        prefix = [c.is_(None) if v is None else c == v
                  for (c, _), v in zip(columns[:i], values[:i], strict=True)]
        value = values[i]
        if value is None:
            continue  # nothing sorts after NULL within this column
        beyond = column < value if descending else column > value
        if column.nullable:
            beyond = sa.or_(beyond, column.is_(None))
        alternatives.append(sa.and_(*prefix, beyond))
    return sa.or_(*alternatives) if alternatives else sa.false()


def search_condition(entity: Entity, table: sa.Table, text: str,
                     hidden: frozenset[str], dialect: str,
                     indexed: bool = True) -> sa.ColumnElement[bool]:
    """Case-insensitive match on searchable fields; phones match on their digits.

    `indexed`: the rows come from the search index, so the database reaches the few
    matching rows without reading them all; the exact per-field match is AND-ed to the
    index's candidates unless they surely match already (`search_index.implies_match`).
    """
    text = text.strip()
    parts = []
    digits = searched_digits(text)
    for key in entity.search_fields:
        if key in hidden:
            continue
        fld = entity.fields.get(key)
        if fld is None or not fld.stored:
            continue
        if fld.type == "phone":
            if digits:
                parts.append(table.c[f"{key}__digits"].contains(digits, autoescape=True))
        elif fld.field_type.textual:
            parts.append(contains_folded(table.c[key], text))
        elif fld.type == "integer" and normalise_digits(text).isdigit():
            parts.append(table.c[key] == int(normalise_digits(text)))
    if not parts:
        return sa.false()
    exact = sa.or_(*parts)
    lookup = candidates(entity, table, text, dialect) if indexed else None
    if lookup is None:
        return exact
    return lookup if implies_match(entity, text, hidden) else sa.and_(lookup, exact)


def build_select(entity: Entity, table: sa.Table, request: ListRequest,
                 scope: sa.ColumnElement[bool] | None = None,
                 hidden: frozenset[str] = frozenset(), *, dialect: str,
                 indexed: bool = True, source=None):
    """The filtered statement (without order and limit) and its checked conditions, for
    the database `dialect` (which search index a search goes through; `indexed=False`
    leaves the index out). `source` replaces the table in FROM (a join to search hits)."""
    stmt = sa.select(table) if source is None else sa.select(table).select_from(source)
    for condition in request.where:
        problems = check_condition(entity, condition)
        if problems:
            raise QueryError("invalid filter", {condition.get("field", "_filter"): problems[0]})
        try:
            stmt = stmt.where(to_sql(entity, condition, table))
        except FieldValueError as exc:
            raise QueryError("invalid filter", {condition.get("field", "_filter"): str(exc)}) \
                from None
    if request.among is not None:
        stmt = stmt.where(table.c.id.in_(request.among))
        indexed = False  # the index found them already
    if request.search:
        exact = implies_match(entity, request.search, hidden)
        if (request.among is not None and exact and dialect == "postgresql"
                and search_index.usable(entity, request.search, dialect)):
            # the index found them for this very text: whether each still holds it is
            # one test of its stored document, not a fold of every searchable field
            stmt = stmt.where(search_index.document_holds(table, request.search))
        elif source is None or not exact:
            stmt = stmt.where(search_condition(entity, table, request.search, hidden,
                                               dialect, indexed and source is None))
    if not request.include_archived:
        stmt = stmt.where(table.c.archived_at.is_(None))
    if scope is not None:
        stmt = stmt.where(scope)
    return stmt


def list_records(conn: sa.Connection, entity: Entity, table: sa.Table, request: ListRequest,
                 to_record, scope: sa.ColumnElement[bool] | None = None,
                 hidden: frozenset[str] = frozenset()) -> Page:
    """One keyset page of records plus an exact or capped count.

    A search for text that many rows hold (more than SEARCH_HITS_TO_SORT) walks the list's
    own order and tests each row, which fills a page sooner than fetching every hit from
    the search index and sorting them; rarer text goes through the index.
    """
    size = request.size
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise QueryError("invalid page size", {"_size": f"must be between 1 and {MAX_PAGE_SIZE}"})
    dialect = conn.dialect.name
    searched = (bool(request.search) and request.among is None
                and search_index.usable(entity, request.search, dialect))
    columns = sort_columns(entity, table, request.sort or parse_sort(entity, None))
    keyset = (keyset_after(columns, decode_cursor(request.cursor, columns))
              if request.cursor else None)
    to_sort = hits_to_sort(size)  # more hits than this: walk the list's order instead
    if searched and request.many_hits and not request.count:
        rows = _walk_first(conn, entity, table, request, scope, hidden, columns, keyset)
        if rows is not None:
            return _page(rows, None, size, columns, to_record, count_cap(request))
        # fewer matches in the walked rows than a page: the text is rarer among the rows
        # this actor may read than among all; every hit is worth sorting, up to the most
        # a search sorts, before a walk of the whole list is risked
        to_sort = SEARCH_HITS_TO_SORT
    if searched and dialect == "postgresql":
        rows, total = _searched_postgresql(conn, entity, table, request, scope, hidden,
                                           columns, keyset, to_sort)
        return _page(rows, total, size, columns, to_record, count_cap(request))
    total = None
    if request.count:  # first: how many match decides how the page is read
        source = (search_index.count_source(entity, table, request.search, dialect)
                  if searched else None)
        counted = build_select(entity, table, request, scope, hidden, dialect=dialect,
                               source=source)
        capped = counted.with_only_columns(table.c.id).limit(count_cap(request) + 1).subquery()
        total = conn.execute(sa.select(sa.func.count()).select_from(capped)).scalar_one()
        common = searched and total > to_sort
    else:
        common = searched and search_index.common(conn, entity, table, request.search, to_sort)
    stmt = build_select(entity, table, request, scope, hidden, dialect=dialect,
                        indexed=not common)
    if keyset is not None:
        stmt = stmt.where(keyset)
    few = total if total is not None or request.among is None else len(request.among)
    if dialect == "postgresql" and few is not None and few <= FENCE:
        # Few matches (counted, or among a few given records): read them all (the count
        # just did, by the filters' best index) and sort. Left to itself, PostgreSQL may
        # walk the sort column's index hoping to meet matches early — 30,000 rows for a
        # page of 51 when a filter's values go together.
        # Only the ids and sort keys are set aside, then the page's rows read by primary
        # key: whole rows would be copied into the CTE, and a column object built for
        # each of their fields on every request.
        fenced = (stmt.with_only_columns(*_sort_keys(table, columns)).cte("matches")
                  .prefix_with("MATERIALIZED"))
        page = (sa.select(fenced).order_by(*_order(_on(fenced, columns)))
                .limit(size + 1).subquery("page"))
        stmt = (sa.select(table).join(page, table.c.id == page.c.id)
                .order_by(*_order(_on(page, columns))))
        rows = conn.execute(stmt).mappings().all()
        return _page(rows, total, size, columns, to_record, count_cap(request))
    rows = conn.execute(stmt.order_by(*_order(columns)).limit(size + 1)).mappings().all()
    return _page(rows, total, size, columns, to_record, count_cap(request))


def count_cap(request: ListRequest) -> int:
    """Up to how many matches a list counts before it says "at least"."""
    return min(COUNT_CAP, SEARCH_COUNT_CAP) if request.search else COUNT_CAP


def _order(columns) -> list:
    # NULLS LAST only where NULLs can be: a plain order lets an index serve the first page
    return [(c.desc() if d else c.asc()).nulls_last() if c.nullable else
            (c.desc() if d else c.asc()) for c, d in columns]


def _sort_keys(table: sa.Table, columns) -> list:
    """The sort columns and the id, each once: what a page is sorted and cursored by."""
    return list(dict.fromkeys([c for c, _ in columns] + [table.c.id]))


def _on(selectable, columns) -> list:
    """The (column, descending) sort pairs, read from a subquery or CTE of the table."""
    return [(selectable.c[c.name], d) for c, d in columns]


def _searched_postgresql(conn, entity: Entity, table: sa.Table, request: ListRequest,
                         scope, hidden: frozenset[str], columns, keyset, to_sort: int):
    """PostgreSQL: a search's count and page in one statement, so the trigram index is
    read once. The matching ids (up to the count's cap) are gathered first; when at most
    `hits_to_sort` of them there are, the page is read from them and sorted. The count
    comes back with the page, or alone when the page is empty. Text that more rows hold
    is then paged by a second statement walking the list's own order and testing each
    row, which meets a page's worth soon. Returns (rows of the page, matches or None
    when not counted)."""
    size = request.size
    cap = count_cap(request) if request.count else to_sort
    threshold = min(to_sort, cap)  # the page is read from every hit or none
    matching = build_select(entity, table, request, scope, hidden, dialect="postgresql")
    # the hits carry their sort keys (read with the row the index led to), so the page is
    # sorted from them without looking each hit up again by primary key
    keys = _sort_keys(table, columns)
    hits = (matching.with_only_columns(*keys).limit(cap + 1)
            .cte("hits").prefix_with("MATERIALIZED"))
    counted = sa.select(sa.func.count().label("n")).select_from(hits).cte("counted")
    by_hits = _on(hits, columns)
    sorted_hits = sa.select(*[hits.c[c.name] for c in keys]).where(
        sa.select(counted.c.n).scalar_subquery() <= threshold)
    if request.cursor:
        sorted_hits = sorted_hits.where(
            keyset_after(by_hits, decode_cursor(request.cursor, columns)))
    # the page's ids and sort keys, then its rows by primary key (a subquery of the
    # whole row would cost a column object per field to build, for every search)
    page = sorted_hits.order_by(*_order(by_hits)).limit(size + 1).subquery("page")
    found = conn.execute(
        sa.select(counted.c.n, table)
        .select_from(counted.outerjoin(page, sa.true()).outerjoin(table,
                                                                  table.c.id == page.c.id))
        .order_by(*_order(_on(page, columns)))).all()
    matches = found[0][0]
    total = matches if request.count else None
    if matches <= threshold:
        names = list(table.c.keys())  # by position: a field may be called `n`
        at = 1 + names.index("id")
        return [dict(zip(names, row[1:], strict=True)) for row in found
                if row[at] is not None], total
    walk = build_select(entity, table, request, scope, hidden, dialect="postgresql",
                        indexed=False)
    if keyset is not None:
        walk = walk.where(keyset)
    return conn.execute(walk.order_by(*_order(columns)).limit(size + 1)).mappings().all(), total


def _walk_first(conn, entity: Entity, table: sa.Table, request: ListRequest, scope,
                hidden: frozenset[str], columns, keyset):
    """The page of a search whose text the index already found in many records, read by
    walking at most WALK_ROWS rows of the list's own order and testing each (the index
    is not asked again). None when those rows hold less than a page.

    On PostgreSQL a row is first tested on its stored search document (a LIKE on one
    column); only the rows whose document holds the text are then tested field by field
    (`translate()` and `lower()` of every searchable field cost 17 ms for 2,000 rows, the
    stored column 1 ms). The LIMIT keeps the planner walking instead of asking the index."""
    dialect = conn.dialect.name
    walked = build_select(entity, table, dataclasses.replace(request, search=None), scope,
                          hidden, dialect=dialect)
    if keyset is not None:
        walked = walked.where(keyset)
    stored = dialect == "postgresql" and search_index.usable(entity, request.search, dialect)
    if stored:
        walked = walked.add_columns(search_index.stored_document(table))
    walked = walked.order_by(*_order(columns)).limit(WALK_ROWS).subquery("walked")
    stmt = (sa.select(*[walked.c[c.name] for c in table.c])
            .where(search_condition(entity, walked, request.search, hidden, dialect,
                                    indexed=stored))
            .order_by(*_order(_on(walked, columns)))
            .limit(request.size + 1))
    rows = conn.execute(stmt).mappings().all()
    return rows if len(rows) > request.size else None


def _page(rows, total: int | None, size: int, columns, to_record, cap: int) -> Page:
    more = len(rows) > size
    rows = rows[:size]
    next_cursor = encode_cursor([rows[-1][c.name] for c, _ in columns]) if more else None
    page = Page(rows=[to_record(row) for row in rows], next=next_cursor)
    if total is not None:
        if total > cap:
            page.at_least = cap
        else:
            page.count = total
    return page
