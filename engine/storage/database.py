"""Database engines for SQLite and PostgreSQL behind one code path."""

from __future__ import annotations

import contextlib
import io
import operator
import time
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import event

#: Execution option asking for a write transaction (BEGIN IMMEDIATE on SQLite).
WRITE = {"kervan_write": True}
#: PostgreSQL: a pooled connection idle for longer than this is pinged before it is used.
PING_AFTER_IDLE_SECONDS = 1.0


def make_engine(url: str, **kwargs) -> sa.Engine:
    """Create an engine; SQLite gets WAL, foreign keys and explicit transactions."""
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        engine = sa.create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    # the connection put back last is taken first: a request's reads reuse one warm
    # connection, and the ones a quiet hour leaves unused are those that go stale
    kwargs.setdefault("pool_use_lifo", True)
    # Every statement planned with its values: psycopg would otherwise prepare a statement
    # after five runs and PostgreSQL may then keep a generic plan, blind to the search
    # pattern or the stage asked for (a rare stage and a common one want other plans)
    kwargs.setdefault("connect_args", {"prepare_threshold": None})
    engine = sa.create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: sa.Engine) -> None:
    """Pessimistic disconnect handling, paid only where it can matter: a connection idle
    for more than PING_AFTER_IDLE_SECONDS (a restarted server, a firewall's timeout) is
    pinged when taken from the pool and replaced if dead. `pool_pre_ping` pinged on every
    checkout — a round trip for each of a request's three or four uses of the pool, about
    a twentieth of a list request on one machine and more across a network. A connection
    that died within that second fails the statement that meets it; SQLAlchemy then renews
    the whole pool, as it does for any disconnect."""
    @event.listens_for(engine, "checkin")
    def on_checkin(_dbapi_connection, record):
        record.info["kervan_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection, record, _proxy):
        since = record.info.get("kervan_idle_since")
        if since is None or time.monotonic() - since <= PING_AFTER_IDLE_SECONDS:
            return  # just connected, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            if not engine.dialect.is_disconnect(exc, dbapi_connection, None):
                raise  # not a dead connection: the error is the caller's to see
            # the pool throws this connection away and takes or makes another
            raise sa.exc.DisconnectionError(f"a pooled connection was dead: {exc}") from exc


def _configure_sqlite(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        # Take transaction control from pysqlite so DDL is transactional and
        # writers can ask for BEGIN IMMEDIATE (serialises number series).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB of pages, not the default 2
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        if connection.get_execution_options().get("kervan_write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


@contextlib.contextmanager
def reading(db: sa.Engine) -> Iterator[sa.Connection]:
    """A connection for reads alone. On PostgreSQL it runs in autocommit: no BEGIN before
    its first statement and no ROLLBACK after its last, two round trips fewer per use
    (a fifth of a plain list request's time on a slow network), while each statement
    still sees what was committed when it began, as it would in a READ COMMITTED
    transaction. A write through it would commit at once: writers use `begin()`.
    SQLite reads stay in one transaction (one snapshot of the file, and no round trips
    to save)."""
    with db.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


def is_sqlite(engine_or_conn) -> bool:
    return engine_or_conn.dialect.name == "sqlite"


def insert_many(conn: sa.Connection, table: sa.Table, rows: list[dict]) -> None:
    """INSERT many rows that share their keys, as fast as the database takes them."""
    send_insert(conn, prepare_insert(conn, table, rows))


@dataclass
class PreparedInsert:
    """Rows ready to be sent: the statement and, for PostgreSQL, the COPY stream itself
    (text format), for SQLite the driver's parameter tuples."""

    statement: str
    data: bytes | list[tuple]


def prepare_insert(conn: sa.Connection, table: sa.Table,
                   rows: list[dict]) -> PreparedInsert | None:
    """The Python half of `insert_many`: what `conn.execute(table.insert(), rows)` does,
    without SQLAlchemy's per-row parameter bookkeeping (about a fifth of the bulk path's
    time). Each column's bind processor is fetched once (and a value shared by the rows,
    such as the batch's moment, converted once). For PostgreSQL the rows are then formatted
    as a COPY stream by psycopg's own adapters (`psycopg.copy.FileWriter`), so that sending
    it (`send_insert`) is I/O alone: the bulk path formats the next batch while another
    thread sends this one, and that thread needs the GIL only between large writes.
    Nothing is sent here; the connection is only asked for its dialect and adapters.
    """
    if not rows:
        return None
    dialect = conn.dialect
    keys = list(rows[0])
    if dialect.name == "postgresql":
        order = keys
    else:
        compiled = table.insert().compile(dialect=dialect, column_keys=keys)
        order = list(compiled.positiontup)
    take = operator.itemgetter(*order) if len(order) > 1 else (lambda row: (row[order[0]],))
    process = [(i, table.c[key].type.dialect_impl(dialect).bind_processor(dialect))
               for i, key in enumerate(order)]
    active = [(i, p) for i, p in process if p is not None]
    params = [take(row) for row in rows]
    if active:
        processed, last = [], {}  # a batch shares its moments: convert each once
        for values in params:
            values = list(values)
            for i, p in active:
                value = values[i]
                seen = last.get(i)
                if seen is not None and seen[0] is value:
                    values[i] = seen[1]
                else:
                    values[i] = converted = p(value)
                    last[i] = (value, converted)
            processed.append(tuple(values))
        params = processed
    if dialect.name != "postgresql":
        return PreparedInsert(compiled.string, params)
    from psycopg.copy import Copy, FileWriter

    quote = dialect.identifier_preparer.quote
    columns = ", ".join(quote(key) for key in order)
    stream = io.BytesIO()
    with conn.connection.dbapi_connection.cursor() as cursor, \
            Copy(cursor, binary=False, writer=FileWriter(stream)) as copy:
        for values in params:
            copy.write_row(values)
    return PreparedInsert(f"COPY {quote(table.name)} ({columns}) FROM STDIN",
                          stream.getvalue())


def send_insert(conn: sa.Connection, prepared: PreparedInsert | None) -> None:
    """Run a prepared insert: the driver's executemany on SQLite, one COPY on PostgreSQL."""
    if prepared is None:
        return
    dialect = conn.dialect
    if dialect.name != "postgresql":
        conn.exec_driver_sql(prepared.statement, prepared.data)
        return
    try:
        with conn.connection.dbapi_connection.cursor() as cursor, \
                cursor.copy(prepared.statement) as copy:
            copy.write(memoryview(prepared.data))  # sent in slices: no copies
    except dialect.loaded_dbapi.Error as exc:  # as SQLAlchemy would raise it from execute()
        raise sa.exc.DBAPIError.instance(prepared.statement, None, exc,
                                         dialect.loaded_dbapi.Error,
                                         dialect=dialect) from exc
