"""Indexed substring search: one search document per record, a trigram index over it.

Every entity with searchable fields gets a *search document*: its searchable text folded
the way `engine/i18n/text.py` folds for search, the digits of its phones and its
searchable numbers, one per line.  The document is indexed for substring matching:

* PostgreSQL: the document is a stored generated column of the entity table
  (`kv_search`), with a GIN `pg_trgm` index over it (`sx_<table>`). The database keeps it
  right on every write, as it would an expression index, and a query reads it instead
  of folding each field again: `translate()` and `lower()` of a row's fields cost about
  9 µs, which a search paid for every row the index could not rule out alone (its
  recheck, a walk of the list's order) — 17 ms for 2,000 rows, against 1 ms for the
  stored column. The column is not part of the entity's SQLAlchemy table: records never
  read it, and only `stored_document` names it.
* SQLite: an FTS5 table with the trigram tokenizer (`kv_search_<table>`, rowid = record
  id), kept in step with the entity table by triggers, so every writer (the record
  service, the bulk path, migrations, a DBA's UPDATE) keeps it right.

The index only narrows the candidates: a list search is `candidates AND the exact
per-field match` (`listing.search_condition`), so a document that says a little too
much (two fields side by side, a field the user may not see) never shows a wrong row.
Terms shorter than three characters skip the index (a trigram index cannot help them);
the per-field match alone answers those.

The search box looks in every entity: `candidate_ids` asks all their indexes in one
statement, and only the entities holding candidates are then read, among them
(`RecordService.search_all`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import sqlite3

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from engine.definitions.model import Entity
from engine.fields.builtin import normalise_digits, searched_digits
from engine.i18n.text import escape_like, fold_like_sqlite, fold_sql, sql_literal

#: Shortest term the trigram index can answer.
MIN_TERM = 3
#: Bumped when the document's shape changes, so every index is rebuilt once.
VERSION = 2
#: PostgreSQL: the stored column holding a row's search document.
DOC_COLUMN = "kv_search"
_SEPARATOR = "\n"


@functools.cache
def sqlite_supported() -> bool:
    """Whether this process's SQLite library has FTS5 with the trigram tokenizer (3.34+)."""
    try:
        with sqlite3.connect(":memory:") as conn:
            conn.execute("CREATE VIRTUAL TABLE t USING fts5(doc, tokenize='trigram')")
        return True
    except sqlite3.Error:
        return False


def search_columns(entity: Entity) -> list[tuple[str, str]]:
    """(column, kind) pairs the document is made of: kind is text, digits or number.
    Worked out once per entity: a resolved entity's fields never change (an edit resolves
    a new model), and the search box asks every entity several times a search."""
    known = entity.__dict__.get("_kv_search_columns")
    if known is None:
        known = entity.__dict__["_kv_search_columns"] = _search_columns(entity)
    return known


def _search_columns(entity: Entity) -> list[tuple[str, str]]:
    parts = []
    for key in entity.search_fields:
        fld = entity.fields.get(key)
        if fld is None or not fld.stored:
            continue
        if fld.type == "phone":
            parts.append((f"{key}__digits", "digits"))
        elif fld.field_type.textual:
            parts.append((key, "text"))
        elif fld.type == "integer":
            parts.append((key, "number"))
    return parts


def index_name(entity: Entity) -> str:
    return f"sx_{entity.table_name}"


def fts_table(entity: Entity) -> str:
    return _fts_name(entity.table_name)


def _fts_name(table_name: str) -> str:
    return f"kv_search_{table_name}"


def document(entity: Entity, table, dialect: str) -> sa.ColumnElement | None:
    """The search document of a row of `table` (an entity table or a trigger's `new`)."""
    columns = tuple(search_columns(entity))
    return _document(table, columns, dialect) if columns else None


@functools.lru_cache(maxsize=512)
def _document(table, columns: tuple[tuple[str, str], ...], dialect: str) -> sa.ColumnElement:
    # what the index is built from (PostgreSQL's stored column, SQLite's FTS5 rows)
    parts = []
    for column, kind in columns:
        value = table.c[column]
        if kind == "number":
            value = sa.cast(value, sa.Text)
        elif kind == "text":
            value = fold_sql(value, dialect, inline=True)
        parts.append(sa.func.coalesce(value, sql_literal("")))
    doc = parts[0]
    for part in parts[1:]:
        doc = doc.op("||")(sql_literal(_SEPARATOR)).op("||")(part)
    return doc


def stored_document(table) -> sa.ColumnElement:
    """PostgreSQL: the stored document column of `table` (an entity table, an alias of
    one, or a subquery that selected it), named on that selectable."""
    if DOC_COLUMN in table.c:
        return table.c[DOC_COLUMN]
    return sa.column(DOC_COLUMN, sa.Text, _selectable=table)


def document_holds(table, text: str) -> sa.ColumnElement[bool]:
    """PostgreSQL: the stored document of `table`'s rows holds the typed `text` (one text
    term without wildcards, see `implies_match`), tested on each row reached another way —
    among ids the index already gave. A `strpos`, not a `LIKE`: the trigram index cannot
    serve it, so the planner never reads the index a second time for it; and one search
    of a stored column costs a fraction of folding every searchable field again."""
    folded = fold_sql(sa.literal(text.strip(), sa.String()), "postgresql", inline=True)
    return sa.func.strpos(stored_document(table), folded) > 0


def _row(entity: Entity, name: str) -> sa.TableClause:
    return sa.table(name, *[sa.column(c) for c, _ in search_columns(entity)])


def _dialect(dialect: str):
    return postgresql.dialect() if dialect == "postgresql" else sqlite.dialect()


def _sql(element, dialect: str) -> str:
    return str(element.compile(dialect=_dialect(dialect), compile_kwargs={"literal_binds": True}))


def _quote(name: str, dialect: str) -> str:
    """An identifier quoted where the database needs it (`case`, `order`)."""
    return _dialect(dialect).identifier_preparer.quote(name)


def ddl(entity: Entity, dialect: str) -> list[str]:
    """Statements that build the index and fill it from the rows already there."""
    t = _quote(entity.table_name, dialect)
    if dialect == "postgresql":
        doc = _sql(document(entity, _row(entity, entity.table_name), dialect), dialect)
        return ["CREATE EXTENSION IF NOT EXISTS pg_trgm",
                f"ALTER TABLE {t} ADD COLUMN {DOC_COLUMN} text GENERATED ALWAYS AS ({doc}) "
                f"STORED",
                f"CREATE INDEX {index_name(entity)} ON {t} USING gin ({DOC_COLUMN} "
                f"gin_trgm_ops)",
                # the planner's statistics of the new column: how many rows a LIKE keeps
                f"ANALYZE {t}"]
    fts = fts_table(entity)
    new_doc = _sql(document(entity, _row(entity, "new"), dialect), dialect)
    columns = ", ".join(_quote(c, dialect) for c, _ in search_columns(entity))
    return [
        f"CREATE VIRTUAL TABLE {fts} USING fts5(doc, tokenize='trigram', detail='none')",
        f"INSERT INTO {fts}(rowid, doc) SELECT id, "
        f"{_sql(document(entity, _row(entity, entity.table_name), dialect), dialect)} "
        f"FROM {t}",
        _insert_trigger(entity),
        f"CREATE TRIGGER {fts}_update AFTER UPDATE OF {columns} ON {t} BEGIN "
        f"UPDATE {fts} SET doc = {new_doc} WHERE rowid = new.id; END",
        f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {t} BEGIN "
        f"DELETE FROM {fts} WHERE rowid = old.id; END",
    ]


@contextlib.contextmanager
def deferred(conn: sa.Connection, entity: Entity):
    """Inside, new rows are indexed by `index_range` rather than by the insert trigger.

    SQLite runs a trigger's program once per row, and this one folds several columns:
    the bulk path writes several times faster without it and indexes each batch in one
    INSERT … SELECT instead. The trigger is dropped and made again inside the caller's
    write transaction, so no other connection ever sees the table without it. Yields
    whether the caller must index what it writes (PostgreSQL's index needs nothing).
    """
    if conn.dialect.name != "sqlite" or not search_columns(entity) or not sqlite_supported():
        yield False
        return
    conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {fts_table(entity)}_insert")
    yield True
    conn.exec_driver_sql(_insert_trigger(entity))


def index_range(conn: sa.Connection, entity: Entity, table: sa.Table, first: int,
                last: int) -> None:
    """Index the rows with ids first..last in one statement (inside `deferred`)."""
    fts = sa.table(fts_table(entity), sa.column("rowid"), sa.column("doc"))
    conn.execute(sa.insert(fts).from_select(["rowid", "doc"], sa.select(
        table.c.id, document(entity, table, "sqlite")).where(table.c.id.between(first, last))))


def _insert_trigger(entity: Entity) -> str:
    fts, t = fts_table(entity), _quote(entity.table_name, "sqlite")
    new_doc = _sql(document(entity, _row(entity, "new"), "sqlite"), "sqlite")
    return (f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {t} BEGIN "
            f"INSERT INTO {fts}(rowid, doc) VALUES (new.id, {new_doc}); END")


def drop_ddl(table_name: str, dialect: str) -> list[str]:
    """Statements that remove an entity's index (whatever its fields were)."""
    if dialect == "postgresql":  # the index goes with the column (and, before it, its name)
        return [f"DROP INDEX IF EXISTS sx_{table_name}",
                f"ALTER TABLE IF EXISTS {_quote(table_name, dialect)} "
                f"DROP COLUMN IF EXISTS {DOC_COLUMN}"]
    fts = _fts_name(table_name)
    return [f"DROP TRIGGER IF EXISTS {fts}_{event}" for event in ("insert", "update", "delete")
            ] + [f"DROP TABLE IF EXISTS {fts}"]


def available(dialect: str) -> bool:
    return dialect == "postgresql" or (dialect == "sqlite" and sqlite_supported())


def signature(entity: Entity, dialect: str) -> str | None:
    """What the index is built from; a change means a rebuild. None: no index."""
    if not search_columns(entity) or not available(dialect):
        return None
    digest = hashlib.sha1("\n".join(ddl(entity, dialect)).encode()).hexdigest()[:16]
    return f"search:{VERSION}:{digest}"


# -- matching -----------------------------------------------------------------------------

def terms(entity: Entity, text: str) -> list[tuple[str, str]]:
    """(kind, term) the typed text is looked up as: its text, its digits if it is phone-
    like, its number; [] when any of them is too short for the index."""
    kinds = {kind for _, kind in search_columns(entity)}
    text = text.strip()
    out = [("text", _selective_part(text))]
    digits = searched_digits(text)
    if "digits" in kinds and digits and digits != text:
        out.append(("digits", digits))
    number = normalise_digits(text)
    if "number" in kinds and number.isdigit() and number != text:
        out.append(("number", number))
    if any(len(term) < MIN_TERM for _, term in out):
        return []
    return out


def _selective_part(text: str) -> str:
    """What of the typed text the index is asked for. An e-mail address is looked up by
    its part before the `@`: `gmail.com`'s trigrams are in a third of all records, and
    reading their lists cost PostgreSQL 14 ms where the name part alone takes 2; the
    per-field match then checks the whole address."""
    local, at, _domain = text.partition("@")
    return local if at and len(local) >= MIN_TERM else text


def _like_pattern(term: str) -> str:
    return f"%{escape_like(term)}%"


def _patterns(found, dialect: str) -> list[tuple[str, str]]:
    """(kind, LIKE pattern) the index is asked with for each (kind, term). SQLite's FTS5
    takes LIKE without ESCAPE: a typed wildcard is left a wildcard, which only widens the
    candidates (the per-field match then decides)."""
    if dialect == "postgresql":
        return [(kind, _like_pattern(term)) for kind, term in found]
    return [(kind, "%" + (fold_like_sqlite(term) if kind == "text" else term) + "%")
            for kind, term in found]


def _bound(patterns) -> list[tuple[str, sa.ColumnElement]]:
    return [(kind, sa.literal(pattern, sa.String())) for kind, pattern in patterns]


def _lookup_postgresql(table: sa.Table, patterns) -> sa.ColumnElement[bool]:
    """The stored document of `table`'s rows LIKE any of the (kind, pattern) pairs; a text
    pattern is folded by the same SQL as the document (lower() follows the database's
    locale)."""
    doc = stored_document(table)
    return sa.or_(*[doc.like(fold_sql(pattern, "postgresql", inline=True)
                             if kind == "text" else pattern) for kind, pattern in patterns])


def _fts_hits(table_name: str, patterns):
    """`SELECT rowid FROM kv_search_<table> WHERE doc LIKE …`, one per pattern, united."""
    fts = sa.table(_fts_name(table_name), sa.column("rowid"), sa.column("doc"))
    lookups = [sa.select(fts.c.rowid).where(fts.c.doc.like(pattern))
               for _kind, pattern in patterns]
    return lookups[0] if len(lookups) == 1 else sa.union(*lookups)


def _hits(entity: Entity, table: sa.Table, found, dialect: str):
    """The ids of the rows whose document holds any of the terms."""
    patterns = _bound(_patterns(found, dialect))
    if dialect == "postgresql":
        return sa.select(table.c.id).where(_lookup_postgresql(table, patterns))
    return _fts_hits(entity.table_name, patterns)


def implies_match(entity: Entity, text: str, hidden: frozenset[str] = frozenset()) -> bool:
    """Whether a row the index finds surely matches the exact per-field search, so the
    per-field check can be left out: one text term (no digits of a phone apart), no
    typed wildcard, no number compared whole, no field the user may not see. (On SQLite
    the trigram index also folds case beyond ASCII — `Ä` finds `ä` — a little kinder
    than the per-field match, never stricter.)"""
    if terms(entity, text) != [("text", text.strip())] or any(c in text for c in "%_\\\n"):
        return False
    if any(kind == "number" for _, kind in search_columns(entity)):
        return False
    return not (hidden & set(entity.search_fields))


def usable(entity: Entity, text: str, dialect: str) -> bool:
    """Whether a search for `text` can go through the entity's search index."""
    return bool(search_columns(entity)) and available(dialect) and bool(terms(entity, text))


def common(conn: sa.Connection, entity: Entity, table: sa.Table, text: str,
           limit: int) -> bool:
    """Whether more than `limit` rows hold the text: then walking the list's own order
    and testing each row finds a page sooner than fetching and sorting every hit. Asked
    of the index alone, which stops counting at the limit."""
    if not usable(entity, text, conn.dialect.name):
        return False
    hits = _hits(entity, table, terms(entity, text), conn.dialect.name)
    counted = sa.select(sa.func.count()).select_from(hits.limit(limit + 1).subquery())
    return conn.execute(counted).scalar_one() > limit


def candidate_ids(conn: sa.Connection, entities: list[tuple[Entity, sa.Table]], text: str,
                  limit: int | dict[str, int]) -> dict[str, list[int] | None]:
    """Every entity's index asked for `text` in one statement: entity key → the ids of the
    live (unarchived) records whose document holds it, newest first — the order every
    list has unless it declares another — (at most `limit`, or the entity's own limit
    when given by entity key; None when more records hold it). Entities whose index
    cannot answer the text are left out. Only candidates: the exact per-field match and
    permissions are the caller's to apply."""
    dialect = conn.dialect.name
    shapes, patterns = [], {}
    for entity, table in entities:
        if not usable(entity, text, dialect):
            continue
        found = _patterns(terms(entity, text), dialect)
        patterns.update(found)  # a kind's pattern is the same for every entity
        shapes.append((entity.key, table, tuple(kind for kind, _ in found)))
    if not shapes:
        return {}
    out: dict[str, list] = {key: [] for key, *_ in shapes}
    caps = {key: limit[key] if isinstance(limit, dict) else limit for key in out}
    statement = _everywhere(tuple(shapes), dialect)
    for key, record_id, made in conn.execute(statement, {
            **{f"kv_limit_{i}": caps[key] + 1 for i, key in enumerate(out)},
            **{f"kv_{k}": p for k, p in patterns.items()}}).all():  # one fetch, not a row each
        out[key].append((made, record_id))
    return {key: ([i for _, i in sorted(hits, reverse=True)] if len(hits) <= caps[key]
                  else None)
            for key, hits in out.items()}


@functools.lru_cache(maxsize=64)
def _everywhere(shapes, dialect: str) -> sa.CompoundSelect:
    """The statement of `candidate_ids` for these entities, its patterns bound by kind
    (`kv_text`, `kv_digits`, `kv_number`) and each entity's limit by its place
    (`kv_limit_0`, …): built once, not for every search. Each entity keeps its own LIMIT
    inside a subquery (SQLite allows none on the parts of a compound SELECT); one round
    trip and one plan instead of one per entity. Each candidate comes with its creation
    time, read from the row the index led to (PostgreSQL reads it anyway to recheck the
    document; SQLite looks it up by rowid)."""
    branches = []
    for place, (key, table, kinds) in enumerate(shapes):
        patterns = [(kind, sa.bindparam(f"kv_{kind}", type_=sa.String())) for kind in kinds]
        branch = sa.select(table.c.id, table.c.created_at).where(table.c.archived_at.is_(None))
        if dialect == "postgresql":
            branch = branch.where(_lookup_postgresql(table, patterns))
        else:
            hits = _fts_hits(table.name, patterns).subquery()
            branch = branch.select_from(hits.join(table, table.c.id == hits.c.rowid))
        sub = (branch.add_columns(sa.literal(key).label("entity"))
               .limit(sa.bindparam(f"kv_limit_{place}", type_=sa.Integer())).subquery())
        branches.append(sa.select(sub.c.entity, sub.c.id, sub.c.created_at))
    return sa.union_all(*branches)


def count_source(entity: Entity, table: sa.Table, text: str, dialect: str):
    """SQLite: the table joined to the index's hits for the search (a count that stops at
    its cap reads hits as they come instead of gathering them all first), or None."""
    if dialect != "sqlite" or not usable(entity, text, dialect):
        return None
    hits = _hits(entity, table, terms(entity, text), dialect).subquery("hits")
    return hits.join(table, table.c.id == hits.c.rowid)


def candidates(entity: Entity, table: sa.Table, text: str,
               dialect: str) -> sa.ColumnElement[bool] | None:
    """The index lookup for a typed search (`table.id` among the rows whose document
    holds one of its terms), or None when the index cannot help."""
    if not usable(entity, text, dialect):
        return None
    found = terms(entity, text)
    if dialect == "postgresql":
        return _lookup_postgresql(table, _bound(_patterns(found, dialect)))
    return table.c.id.in_(_hits(entity, table, found, dialect))
