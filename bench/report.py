"""The results as a markdown table and JSON, and the copy kept in docs/performance.md."""

from __future__ import annotations

import functools
import math
import os
import platform
import re
import subprocess
import time
from pathlib import Path

import sqlalchemy as sa

from .generate import Generation, LoadStats
from .measure import Outcome

#: The engine's SQL for a list or search may cost at most this many times the floor's.
RATIO_TARGET = 1.5
BULK_TARGET = 10_000
TITLES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
PLURALS = {"account": "customers", "lead": "leads", "opportunity": "opportunities",
           "task": "tasks"}


def machine(kervan) -> dict:
    """What the numbers were measured on."""
    cpu = "unknown CPU"
    memory = ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = re.search(r"model name\s*:\s*(.+)", info).group(1).strip()
        kb = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1))
        memory = f"{kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, AttributeError):
        pass
    with kervan.db.connect() as conn:
        if conn.dialect.name == "postgresql":
            server = "PostgreSQL " + conn.exec_driver_sql("SHOW server_version").scalar()
        else:
            server = "SQLite " + conn.exec_driver_sql("SELECT sqlite_version()").scalar()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": memory, "engine": engine_version(),
            "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "sqlalchemy": sa.__version__,
            "database": server}


def cpu_check() -> float:
    """Seconds for ten million additions in pure Python, best of three: how fast the machine
    runs at the moment. A virtual machine's speed drifts between runs (here by up to a
    factor of two), so milliseconds compare only between runs with similar values."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for number in range(10_000_000):
            total += number
        best = min(best, time.perf_counter() - started)
    return best


@functools.cache
def engine_version() -> str:
    """The commit measured (read once, when the run starts and imports the engine), marked
    when engine or metadata files differ from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                                capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "engine", "metadata"],
                               cwd=root, text=True, capture_output=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit} (with uncommitted changes)" if dirty else commit


def ms(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


def pair(summary: dict) -> str:
    return f"{ms(summary.get('p50'))} / {ms(summary.get('p95'))}" if summary else "—"


def verdicts(outcome: Outcome) -> list[str]:
    """Each target of the issue that applies to this scenario, met (✓) or missed (✗)."""
    s = outcome.scenario
    out = []
    if s.target_ms is not None and s.kind != "count":
        met = outcome.request["p95"] < s.target_ms
        out.append(f"{'✓' if met else '✗'} p95 < {s.target_ms:.0f} ms")
    if s.kind in ("list", "search", "count"):
        met = outcome.ratio <= RATIO_TARGET
        out.append(f"{'✓' if met else '✗'} ≤ {RATIO_TARGET}× floor")
    if outcome.scan_failures:
        out.append("✗ whole-table scan")
    if outcome.same_rows is False:
        out.append("✗ rows differ from the floor")
    return out


def scenario_row(outcome: Outcome) -> str:
    s = outcome.scenario
    request = s.kind != "count"
    low, high = outcome.queries
    scans = [p for p in outcome.plans if "whole_table" in p]
    scanned = "—" if not scans else ("yes" if any(p["whole_table"] for p in scans) else "no")
    return "| " + " | ".join([
        s.title,
        pair(outcome.request) if request else "(in the list request)",
        ms(outcome.sql.get("p50")) if request else "—",
        ms(outcome.overhead.get("p50")) if request else "—",
        (str(low) if low == high else f"{low}–{high}") if request else "—",
        pair(outcome.engine_sql), pair(outcome.floor),
        f"{outcome.ratio:.2f}×" if not math.isnan(outcome.ratio) else "—",
        scanned, ", ".join(verdicts(outcome)) or "—"]) + " |"


def bulk_rows(generation: Generation) -> list[str]:
    lines = ["| Entity | Rows | bulk_create rows/s | raw executemany rows/s | bulk ÷ raw time | "
             "Target |", "|---|--:|--:|--:|--:|---|"]
    total = LoadStats("all", sum(s.rows for s in generation.loads),
                      sum(s.engine_seconds for s in generation.loads),
                      sum(s.raw_seconds for s in generation.loads),
                      sum(s.backdate_seconds for s in generation.loads))
    for s in [*generation.loads, total]:
        met = s.engine_rate >= BULK_TARGET
        name = f"**{s.entity}**" if s is total else s.entity
        lines.append(f"| {name} | {s.rows:,} | {s.engine_rate:,.0f} | {s.raw_rate:,.0f} | "
                     f"{s.engine_seconds / s.raw_seconds if s.raw_seconds else 0:.1f}× | "
                     f"{'✓' if met else '✗'} ≥ {BULK_TARGET:,}/s |")
    if total.backdate_seconds >= 0.5:
        spread = (f"putting the creation dates back over three years took "
                  f"{total.backdate_seconds:.0f} s of it, outside the bulk timing")
    else:
        spread = "records carry creation dates over three years through `bulk_create(at=…)`"
    if generation.floor_search_index:
        floor = ("into tables with the same indexes, the search index included (on SQLite "
                 "its triggers fill it row by row; the bulk path fills it a batch at a time)")
    else:
        floor = ("into tables with the same B-tree indexes but no search index, which the "
                 "bulk path keeps up to date")
    lines += ["", f"Generated in {generation.seconds / 60:.0f} min; {spread}. The raw floor "
              f"writes the same rows {floor}."]
    return lines


def markdown(result: dict, outcomes: list[Outcome], generation: Generation,
             plans: bool = True) -> str:
    """One database's results: bulk table, scenario table, then the plans."""
    m = result["machine"]
    sizes = ", ".join(f"{v:,} {PLURALS[k]}" for k, v in result["sizes"].items())
    lines = [f"### {TITLES[result['db']]} — {sizes}", "",
             f"{m['database']} · {m['cpu']}, {m['cores']} cores, {m['memory']} · "
             f"{m['system']} · Python {m['python']} · SQLAlchemy {m['sqlalchemy']} · "
             f"engine {m['engine']} · measured {result['when']}", "",
             *([f"Machine speed: ten million Python additions took "
                f"{m['cpu_check'][0]:.2f} s before the requests and {m['cpu_check'][1]:.2f} s "
                "after (best of three; the same check compares runs)", ""]
               if m.get("cpu_check") else []),
             f"Command: `{result['command']}`", "", "#### Bulk creation", "",
             *bulk_rows(generation), "",
             "#### Requests (milliseconds, server side, in process)", "",
             "| Scenario | Request p50 / p95 | SQL p50 | Overhead p50 | Queries | "
             "Engine SQL p50 / p95 | Floor p50 / p95 | Engine ÷ floor | Whole-table scan | "
             "Targets |", "|---|--:|--:|--:|--:|--:|--:|--:|---|---|"]
    lines += [scenario_row(o) for o in outcomes]
    failures = [(o, p) for o in outcomes for p in o.scan_failures]
    if failures:
        lines += ["", "**Whole-table scans on a first page:**", ""]
        lines += [f"- {o.scenario.title}: {p['why']}" for o, p in failures]
    if plans:
        lines += ["", "#### Plans", ""]
        for outcome in outcomes:
            if not outcome.plans:
                continue
            lines += ["<details>", f"<summary>{outcome.scenario.title}</summary>", ""]
            for plan in outcome.plans:
                who = "Floor" if plan.get("floor") else (
                    f"Engine ({'count' if plan['count'] else 'page'}, {plan['why']})")
                lines += [f"{who}:", "", "```", _short(plan["sql"]), "--", *plan["plan"], "```",
                          ""]
            lines += ["</details>", ""]
    return "\n".join(lines).rstrip() + "\n"


def _short(sql: str) -> str:
    """The SQL without its long column list."""
    sql = " ".join(sql.split())
    return re.sub(r"^SELECT (\w+)\.id, .*? FROM", r"SELECT \1.* FROM", sql)


def to_json(result: dict, outcomes: list[Outcome], generation: Generation) -> dict:
    return {**result, "generation": generation.to_json(), "scenarios": [{
        "key": o.scenario.key, "title": o.scenario.title, "kind": o.scenario.kind,
        "request_ms": o.request, "sql_ms": o.sql, "overhead_ms": o.overhead,
        "queries": list(o.queries), "engine_sql_ms": o.engine_sql, "floor_ms": o.floor,
        "ratio": o.ratio, "same_rows": o.same_rows, "targets": verdicts(o),
        "statements": o.statements, "plans": o.plans} for o in outcomes]}


def update_docs(path: Path, db: str, text: str) -> None:
    """Replace this database's section between its markers in docs/performance.md."""
    begin, end = f"<!-- bench:{db}:begin -->", f"<!-- bench:{db}:end -->"
    doc = path.read_text(encoding="utf-8")
    if begin not in doc or end not in doc:
        raise SystemExit(f"{path} has no {begin} … {end} markers; add them where the "
                         f"{TITLES[db]} table belongs")
    head, rest = doc.split(begin, 1)
    _old, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{text}{end}{tail}", encoding="utf-8")
