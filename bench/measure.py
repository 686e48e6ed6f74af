"""Running one scenario: requests through the Flask test client, then the same SQL raw.

For each request: the server time (in process), the SQL time and the number of queries
(cursor events).  Then the engine's own statements for that request, captured, and the
hand-written floor are run again straight through the driver, alternately, so the ratio
compares the database's work for the two and nothing else.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from engine.query.listing import COUNT_CAP

from .probe import RawDatabase, SqlRecorder, Statement, queries, summary

#: A statement that reads a record table (kv_* tables are the engine's own).
ENTITY_FROM = re.compile(r'\bFROM "?(?!kv_)(\w+)\b')
#: Plans of tables smaller than this are left out: any plan is fast on them.
SMALL_TABLE = 1000


@dataclass
class Case:
    """One request of a scenario and the floor statements that answer it."""

    method: str
    url: str
    floor: list[tuple[str, dict]]
    client: str = "api"
    json: dict | None = None


@dataclass
class Scenario:
    key: str
    title: str
    kind: str  # list, search, html, detail, create
    cases: list[Case]
    #: compare only statements reading these tables (None: every SELECT, or all on writes)
    tables: tuple[str, ...] | None = None
    page_size: int = 50
    target_ms: float | None = None
    #: fail the run when a page statement of this scenario reads the whole table
    check_scan: bool = False
    #: the response's record ids must equal the floor page's ids
    same_rows: bool = False

    def compares(self, statement: Statement) -> bool:
        if self.kind == "create":
            return statement.is_query
        if not statement.is_select:
            return False
        if self.kind == "count" and not statement.sql.lstrip().startswith("SELECT count("):
            return False
        if self.tables is None:
            return True
        return any(statement.reads(t) for t in self.tables)


@dataclass
class Outcome:
    scenario: Scenario
    request: dict = field(default_factory=dict)
    sql: dict = field(default_factory=dict)
    overhead: dict = field(default_factory=dict)
    queries: tuple[int, int] = (0, 0)
    engine_sql: dict = field(default_factory=dict)
    floor: dict = field(default_factory=dict)
    plans: list[dict] = field(default_factory=list)
    same_rows: bool | None = None
    statements: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        floor = self.floor.get("p50") or 0
        return self.engine_sql.get("p50", 0) / floor if floor else float("nan")

    @property
    def scan_failures(self) -> list[dict]:
        return [p for p in self.plans if p.get("fails")]


class Runner:
    """Drives requests and raw runs for scenarios against one database."""

    def __init__(self, app, clients: dict[str, Any], headers: dict[str, dict],
                 recorder: SqlRecorder, raw: RawDatabase, table_rows: dict[str, int],
                 repeat: int, max_seconds: float, warmup: int = 3):
        self.app, self.clients, self.headers = app, clients, headers
        self.recorder, self.raw, self.table_rows = recorder, raw, table_rows
        self.repeat, self.max_seconds, self.warmup = repeat, max_seconds, warmup

    def request(self, case: Case):
        client = self.clients[case.client]
        response = client.open(case.url, method=case.method, json=case.json,
                               headers=self.headers.get(case.client, {}))
        if response.status_code >= 400 or (case.method == "GET" and
                                           response.status_code != 200):
            raise RuntimeError(f"{case.method} {case.url} answered {response.status_code}: "
                               f"{response.get_data(as_text=True)[:300]}")
        return response

    def run(self, scenario: Scenario) -> Outcome:
        outcome = Outcome(scenario)
        for case in scenario.cases[:self.warmup]:
            self.request(case)
        request_s, sql_s, counts = [], [], []
        captured: dict[int, tuple[Any, list[Statement]]] = {}
        started = time.perf_counter()
        for i in range(self.repeat):
            index = i % len(scenario.cases)
            with self.recorder.capture() as statements:
                began = time.perf_counter()
                response = self.request(scenario.cases[index])
                request_s.append(time.perf_counter() - began)
            sql_s.append(sum(s.seconds for s in statements))
            counts.append(len(queries(statements)))
            if index not in captured:
                captured[index] = (response, [s for s in statements if scenario.compares(s)])
            if time.perf_counter() - started > self.max_seconds and i >= 4:
                break
        outcome.request = summary(request_s)
        outcome.sql = summary(sql_s)
        outcome.overhead = summary([r - s for r, s in zip(request_s, sql_s, strict=True)])
        outcome.queries = (min(counts), max(counts))
        outcome.statements = [s.sql for s in captured[0][1]]
        self._compare(scenario, outcome, captured, len(request_s))
        if scenario.kind in ("list", "search"):
            outcome.plans = self.plans(scenario, captured[0][1])
        if scenario.same_rows:
            outcome.same_rows = self._same_rows(scenario, captured[0][0])
        return outcome

    def _compare(self, scenario: Scenario, outcome: Outcome, captured, samples: int) -> None:
        engine_s, floor_s = [], []
        for i in range(samples):
            index = i % len(scenario.cases)
            case = scenario.cases[index]
            if index not in captured:
                continue
            if scenario.kind == "create":
                engine_s.append(sum(s.seconds for s in captured[index][1]))
                with self.raw.transaction():
                    floor_s.append(self._write_floor(case))
                continue
            engine_s.append(self.raw.time([(s.sql, s.params) for s in captured[index][1]],
                                          native=True))
            floor_s.append(self.raw.time(case.floor))
        outcome.engine_sql = summary(engine_s)
        outcome.floor = summary(floor_s)

    def _write_floor(self, case: Case) -> float:
        """Floor statements of a write; `:id` in later ones is the id the first returned."""
        total, record_id = 0.0, None
        for sql, params in case.floor:
            params = {**params, "id": record_id} if ":id" in sql else params
            started = time.perf_counter()
            rows = self.raw.rows(sql, params)
            total += time.perf_counter() - started
            if record_id is None and rows and "RETURNING" in sql:
                record_id = rows[0][0]
        return total

    def plans(self, scenario: Scenario, statements: list[Statement]) -> list[dict]:
        """The plan of each compared statement, and whether it visits the whole table."""
        out = []
        for statement in statements:
            match = ENTITY_FROM.search(statement.sql)
            if match is None:
                continue
            table = match.group(1)
            rows = self.raw.rows(statement.sql, statement.params, native=True)
            counting = statement.sql.lstrip().startswith("SELECT count(")
            returned = rows[0][0] if counting else len(rows)
            limit = COUNT_CAP + 1 if counting else scenario.page_size + 1
            table_rows = self.table_rows.get(table, 0)
            if table_rows < SMALL_TABLE:
                continue
            whole, why = self.raw.scan(statement.sql, statement.params, table, table_rows,
                                       returned, limit, native=True)
            out.append({"table": table, "count": counting, "whole_table": whole,
                        "fails": whole and not counting and scenario.check_scan,
                        "why": why, "sql": statement.sql,
                        "plan": self.raw.explain(statement.sql, statement.params, native=True)})
        for sql, params in scenario.cases[0].floor:
            match = ENTITY_FROM.search(sql)
            if match and self.table_rows.get(match.group(1), 0) >= SMALL_TABLE:
                out.append({"floor": True, "sql": sql, "plan": self.raw.explain(sql, params)})
        return out

    def _same_rows(self, scenario: Scenario, response) -> bool:
        data = response.get_json()["data"]
        sql, params = scenario.cases[0].floor[0]
        floor_ids = [row[0] for row in self.raw.rows(sql, params)][:scenario.page_size]
        return [r["id"] for r in data] == floor_ids
