"""The scale benchmark: one command, described in docs/performance.md.

    .venv/bin/python -m bench.run                       # both databases, default sizes
    .venv/bin/python -m bench.run --db sqlite --leads 50000 --accounts 10000 \\
        --opportunities 15000 --tasks 25000 --repeat 20  # a quick run

It creates a fresh database (a SQLite file under --workdir, or the PostgreSQL database named
by KERVAN_BENCH_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/kervan_bench),
fills it through the bulk path, measures every scenario against its raw-SQL floor, writes
bench/results/<time>-<db>.md and .json, copies the table into docs/performance.md (at the
default sizes, or with --docs) and drops the database (unless --keep).  The exit status is 1
when a first page of a list or a search reads a whole table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path

from engine.app import create_app
from engine.storage.schema_sync import sync_schema

from .floor import Floor
from .generate import (
    DEFAULT_PG_URL,
    ENTITIES,
    PASSWORD,
    Sizes,
    create_database,
    database_url,
    drop_database,
    generate,
    load_generation,
    open_kervan,
    save_generation,
)
from .measure import Runner
from .probe import RawDatabase, SqlRecorder
from .report import cpu_check, engine_version, machine, markdown, to_json, update_docs
from .scenarios import Context, hash_token, scenarios

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "performance.md"


def parse(argv: list[str] | None) -> argparse.Namespace:
    defaults = Sizes()
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="sqlite,postgresql",
                        help="sqlite, postgresql or both, comma-separated (default: both)")
    parser.add_argument("--leads", type=int, default=defaults.lead)
    parser.add_argument("--accounts", type=int, default=defaults.account)
    parser.add_argument("--opportunities", type=int, default=defaults.opportunity)
    parser.add_argument("--tasks", type=int, default=defaults.task)
    parser.add_argument("--repeat", type=int, default=50,
                        help="requests per scenario (p50/p95 over these; default 50)")
    parser.add_argument("--max-seconds", type=float, default=30.0,
                        help="stop a scenario's requests after this long (at least 5 run)")
    parser.add_argument("--chunk", type=int, default=50_000,
                        help="rows per bulk_create call (one transaction each)")
    parser.add_argument("--batch-size", type=int, default=2000,
                        help="bulk_create's batch_size")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--workdir", type=Path, default=RESULTS / "work",
                        help="where the SQLite files live")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse a kept database of the same sizes instead of generating")
    parser.add_argument("--only", default="",
                        help="comma-separated scenario keys to run (default: all)")
    docs = parser.add_mutually_exclusive_group()
    docs.add_argument("--docs", dest="docs", action="store_true", default=None,
                      help="copy the tables into docs/performance.md (default: only at the "
                           "default sizes)")
    docs.add_argument("--no-docs", dest="docs", action="store_false")
    args = parser.parse_args(argv)
    args.sizes = Sizes(account=args.accounts, lead=args.leads,
                       opportunity=args.opportunities, task=args.tasks)
    if args.docs is None:
        args.docs = args.sizes == defaults
    args.db = [d.strip() for d in args.db.split(",") if d.strip()]
    unknown = set(args.db) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown --db {', '.join(sorted(unknown))}; use sqlite or postgresql")
    return args


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", flush=True)


def run_database(kind: str, args: argparse.Namespace, command: str) -> tuple[str, bool]:
    """Generate (or reuse), measure and report one database; (markdown, scans found)."""
    pg_url = os.environ.get("KERVAN_BENCH_DATABASE_URL") or DEFAULT_PG_URL
    args.workdir.mkdir(parents=True, exist_ok=True)
    url = database_url(kind, args.workdir, pg_url)
    raw_url = database_url(kind, args.workdir, pg_url, "_raw")
    saved = args.workdir / f"{kind}-generation.json"
    generation = load_generation(saved, args.sizes) if args.reuse else None
    if generation is not None:
        log(f"{kind}: reusing the database generated earlier ({url})")
        kervan = open_kervan(url, args.workdir)
        sync_schema(kervan.db, kervan.model)  # the metadata may have grown since
    else:
        log(f"{kind}: creating {url}")
        create_database(url)
        kervan = open_kervan(url, args.workdir)
        generation = generate(kervan, raw_url, args.sizes, args.chunk, args.batch_size,
                              args.seed, log)
        drop_database(raw_url)
        save_generation(saved, generation)
        log(f"{kind}: generated in {generation.seconds:.0f} s")
    try:
        result, outcomes = measure(kervan, kind, args, url, generation)
        result["command"] = command
        text = markdown(result, outcomes, generation)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{stamp}-{kind}.md").write_text(text, encoding="utf-8")
        (RESULTS / f"{stamp}-{kind}.json").write_text(json.dumps(
            to_json(result, outcomes, generation), indent=2, default=str), encoding="utf-8")
        log(f"{kind}: results in bench/results/{stamp}-{kind}.md")
        if args.docs:
            update_docs(DOCS, kind, text)
            log(f"{kind}: docs/performance.md updated")
        failures = [(o, p) for o in outcomes for p in o.scan_failures]
        for outcome, plan in failures:
            log(f"FAIL {kind}: {outcome.scenario.title} reads the whole {plan['table']} table "
                f"({plan['why']})")
        return text, bool(failures)
    finally:
        kervan.close()
        if not (args.keep or args.reuse):
            drop_database(url)
            saved.unlink(missing_ok=True)


def measure(kervan, kind: str, args, url: str, generation):
    app = create_app({"TESTING": True}, kervan=kervan)
    users = kervan.users
    admin = users.by_username("admin")
    rep = users.by_username("rep01")
    token, rep_token = users.create_token(admin, "bench"), users.create_token(rep, "bench")
    html = app.test_client()
    form = html.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form)
    login = html.post("/login", data={"username": "admin", "password": PASSWORD,
                                      "csrf_token": csrf.group(1) if csrf else ""})
    if login.status_code != 302:
        raise RuntimeError(f"signing in for the HTML screens failed ({login.status_code})")
    with html.session_transaction() as session:
        session_token = session["_user_id"]
    clients = {"api": app.test_client(), "team": app.test_client(), "html": html}
    headers = {"api": {"Authorization": f"Bearer {token}"},
               "team": {"Authorization": f"Bearer {rep_token}"}}
    raw = RawDatabase(url)
    try:
        tables = [e.table_name for e in kervan.model.entities.values()]
        table_rows = {t: raw.table_rows(t) for t in tables}
        ctx = Context(kervan, raw, Floor(raw.dialect, raw), admin.id, rep.id,
                      users.actor(rep).team_id, hash_token(token), hash_token(session_token),
                      seed=args.seed)
        runner = Runner(app, clients, headers, SqlRecorder(kervan.db), raw, table_rows,
                        args.repeat, args.max_seconds)
        # like a long-running worker: what generation left behind is not garbage-collected
        # again and again in the middle of a request
        gc.collect()
        gc.freeze()
        only = {k.strip() for k in args.only.split(",") if k.strip()}
        speed_before = cpu_check()
        outcomes = []
        for scenario in scenarios(ctx):
            if only and scenario.key not in only:
                continue
            started = time.perf_counter()
            outcome = runner.run(scenario)
            outcomes.append(outcome)
            log(f"{kind}: {scenario.key}: request p50 {outcome.request['p50']:.2f} ms, "
                f"p95 {outcome.request['p95']:.2f} ms, {outcome.queries[1]} queries, "
                f"engine/floor {outcome.ratio:.2f} ({time.perf_counter() - started:.0f} s)")
        result = {"db": kind, "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                  "sizes": {e: getattr(args.sizes, e) for e in ENTITIES},
                  "table_rows": table_rows,
                  "machine": {**machine(kervan), "cpu_check": (speed_before, cpu_check())}}
        return result, outcomes
    finally:
        raw.close()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    engine_version()  # the code imported now is the code measured, whatever HEAD is later
    command = ".venv/bin/python -m bench.run " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    scanned = False
    for kind in args.db:
        text, failed = run_database(kind, args, command.strip())
        print(text)
        scanned = scanned or failed
    if scanned:
        print("FAILED: a first page of a list or search reads a whole table (see above and "
              "the plans); the engine needs an index or a different query shape.",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
