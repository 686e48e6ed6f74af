"""Measuring instruments: statements an engine runs, raw driver timings, plans and scans.

`SqlRecorder` hooks SQLAlchemy's cursor events to list every statement a request runs with
its driver time.  `RawDatabase` runs SQL straight through the DB-API driver (sqlite3 or
psycopg), with no SQLAlchemy in between: the hand-written floor queries, and the engine's
own captured statements again, so both are timed the same way.  It also explains a
statement and says whether it visited the whole table.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

#: Statements that are transaction control, not queries.
CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b", re.I)
#: A table visited for at least this share of its rows counts as scanned whole.
WHOLE_TABLE_SHARE = 0.5


@dataclass
class Statement:
    sql: str
    params: Any
    seconds: float

    @property
    def is_query(self) -> bool:
        return not CONTROL.match(self.sql)

    @property
    def is_select(self) -> bool:
        return self.sql.lstrip().upper().startswith(("SELECT", "WITH"))

    def reads(self, table: str) -> bool:
        """Whether the statement selects from `table` or its SQLite search index
        (`kv_search_<table>`), not a join on another table's key."""
        pattern = rf'\bFROM "?(kv_search_)?{re.escape(table)}\b'
        return self.is_select and re.search(pattern, self.sql) is not None


class SqlRecorder:
    """Every statement an engine executes while `capture()` is open, with its driver time.

    The time runs from `before_cursor_execute` to `after_cursor_execute`: the driver's
    execute call.  psycopg receives every row inside it; sqlite3 returns after the first
    row, so on SQLite the rest of the fetch counts as engine overhead, not SQL.
    """

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.statements: list[Statement] | None = None
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        started = conn.info["bench_started"].pop()
        if self.statements is not None:
            self.statements.append(Statement(statement, parameters,
                                             time.perf_counter() - started))

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[Statement]]:
        self.statements = captured = []
        try:
            yield captured
        finally:
            self.statements = None


def queries(statements: list[Statement]) -> list[Statement]:
    """The statements that are queries (BEGIN, COMMIT and the like left out)."""
    return [s for s in statements if s.is_query]


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the values fall (linear interpolation)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(seconds: list[float]) -> dict:
    """p50, p95 and max in milliseconds, and the number of samples."""
    return {"p50": percentile(seconds, 0.5) * 1000, "p95": percentile(seconds, 0.95) * 1000,
            "max": max(seconds) * 1000 if seconds else float("nan"), "n": len(seconds)}


class RawDatabase:
    """One DB-API connection to the benchmark database, outside SQLAlchemy."""

    def __init__(self, url: str):
        parsed = sa.make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            import sqlite3

            self.conn = sqlite3.connect(parsed.database, isolation_level=None,
                                        check_same_thread=False)
            self.conn.execute("PRAGMA busy_timeout=30000")
        else:
            import psycopg

            self.conn = psycopg.connect(
                parsed.set(drivername="postgresql").render_as_string(hide_password=False),
                autocommit=True)

    def close(self) -> None:
        self.conn.close()

    def quote(self, name: str) -> str:
        """An identifier as this database needs it written (`case` is a keyword)."""
        from sqlalchemy.dialects import postgresql, sqlite

        module = sqlite if self.dialect == "sqlite" else postgresql
        return module.dialect().identifier_preparer.quote(name)

    def _native(self, sql: str, params):
        """Floor SQL is written with `:name` parameters; psycopg wants `%(name)s`."""
        if self.dialect == "postgresql" and isinstance(params, dict):
            return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql), params
        return sql, params

    def rows(self, sql: str, params=None, native: bool = False) -> list[tuple]:
        if not native:
            sql, params = self._native(sql, params or {})
        cursor = self.conn.cursor()
        try:
            cursor.execute(sql, params if params is not None else ())
            return cursor.fetchall() if cursor.description else []
        finally:
            cursor.close()

    def time(self, statements: list[tuple[str, Any]], native: bool = False) -> float:
        """Seconds to execute and fetch every row of each statement, in order."""
        total = 0.0
        for sql, params in statements:
            if not native:
                sql, params = self._native(sql, params or {})
            cursor = self.conn.cursor()
            started = time.perf_counter()
            cursor.execute(sql, params if params is not None else ())
            if cursor.description:
                cursor.fetchall()
            total += time.perf_counter() - started
            cursor.close()
        return total

    @contextlib.contextmanager
    def transaction(self):
        """A write transaction whose commit is not timed (cursor events do not see it)."""
        if self.dialect == "sqlite":
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        else:
            with self.conn.transaction():
                yield

    # -- plans ---------------------------------------------------------------------------
    def explain(self, sql: str, params, native: bool = False) -> list[str]:
        """The plan as text lines: QUERY PLAN on SQLite, EXPLAIN ANALYZE on PostgreSQL."""
        if not native:
            sql, params = self._native(sql, params or {})
        if self.dialect == "sqlite":
            rows = self.rows("EXPLAIN QUERY PLAN " + sql, params, native=True)
            depth = {0: -1}
            lines = []
            for node, parent, _unused, detail in rows:
                depth[node] = depth.get(parent, -1) + 1
                lines.append("  " * depth[node] + detail)
            return lines
        rows = self.rows("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + sql,
                         params, native=True)
        return [r[0] for r in rows]

    def table_rows(self, table: str) -> int:
        return self.rows(f"SELECT count(*) FROM {self.quote(table)}")[0][0]

    def scan(self, sql: str, params, table: str, table_rows: int, returned: int,
             limit: int | None, native: bool = False) -> tuple[bool, str]:
        """(whether the statement visits the whole table, how that was decided)."""
        if not native:
            sql, params = self._native(sql, params or {})
        if self.dialect == "postgresql":
            plan = self.rows("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + sql, params,
                             native=True)[0][0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            visited = _visited(plan[0]["Plan"], table)
            whole = table_rows > 0 and visited >= WHOLE_TABLE_SHARE * table_rows
            return whole, f"visited {visited:,} of {table_rows:,} {table} rows"
        lines = self.explain(sql, params, native=True)
        detail = [line.strip() for line in lines]
        scans = [d for d in detail if re.match(rf"SCAN {re.escape(table)}\b", d)]
        if not scans:
            return False, f"{table} reached through an index search"
        if _bounded_subquery(lines, table, sql):
            return False, f"{scans[0]}: inside a subquery with a LIMIT of its own (a walk " \
                          f"of a bounded part of the list)"
        sorts_all = any(d == "USE TEMP B-TREE FOR ORDER BY" for d in detail)
        exhausted = limit is None or returned < limit
        if sorts_all or exhausted:
            why = "sorted after reading every row" if sorts_all else \
                f"returned {returned} < limit {limit}, so the walk reached the end"
            return True, f"{scans[0]}: {why}"
        return False, f"{scans[0]}: stopped at the limit ({limit} rows)"


#: A subquery in FROM with a LIMIT of its own (one level of parentheses inside it).
LIMITED_SUBQUERY = re.compile(r"\(SELECT\b[^()]*(\([^()]*\)[^()]*)*\bLIMIT\b[^()]*\)\s+AS\s+\w+")


def _bounded_subquery(lines: list[str], table: str, sql: str) -> bool:
    """SQLite: whether a page's every scan of `table` runs inside a co-routine (a subquery
    in FROM) with a LIMIT of its own — it stops there, whatever the outer query returns
    or sorts. (Counts keep the plain rule: they stop at their cap or read every match.)"""
    if sql.lstrip().startswith("SELECT count(") or not LIMITED_SUBQUERY.search(sql):
        return False
    def depth(line: str) -> int:
        return len(line) - len(line.lstrip())

    inside = []
    for i, line in enumerate(lines):
        if not re.match(rf"\s*SCAN {re.escape(table)}\b", line):
            continue
        parents = [j for j in range(i) if depth(lines[j]) < depth(line)]
        if not parents or not lines[parents[-1]].strip().startswith("CO-ROUTINE"):
            inside.append(False)
            continue
        start = parents[-1]  # the co-routine: bounded only if it reads in order, unsorted
        block = []
        for other in lines[start + 1:]:
            if depth(other) <= depth(lines[start]):
                break
            block.append(other.strip())
        inside.append("USE TEMP B-TREE FOR ORDER BY" not in block)
    return bool(inside) and all(inside)


def _visited(node: dict, table: str) -> int:
    """Rows of `table` that PostgreSQL read for a plan (kept plus filtered out)."""
    own = 0
    if node.get("Relation Name") == table:
        loops = node.get("Actual Loops", 1) or 1
        own = (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
               + node.get("Rows Removed by Index Recheck", 0)) * loops
    return own + sum(_visited(child, table) for child in node.get("Plans", []))
