"""The benchmark database: created fresh, filled through the bulk path, dropped at the end.

Records go through `RecordService.bulk_create` (coercion, defaults, rules, link checks,
number series, an audit event per record, the initial stage in the stage history) and are
timed there.  The same rows, read back, are then written by a raw DB-API `executemany` into
a scratch database with the same tables and indexes: the floor for bulk creation.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sqlalchemy as sa

from engine.config import Settings, normalise_database_url
from engine.records.actor import Actor
from engine.runtime import Kervan
from engine.storage.database import make_engine
from engine.storage.schema_sync import sync_schema

from .data import TEAMS, Generator, Owner, chunks
from .probe import RawDatabase

PASSWORD = "Kervan-Bench-2026!"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/kervan_bench"
#: Entities in the order they are generated (later ones link to earlier ones).
ENTITIES = ("account", "lead", "opportunity", "task")
YEARS = 3


@dataclass
class Sizes:
    account: int = 200_000
    lead: int = 1_000_000
    opportunity: int = 300_000
    task: int = 500_000


@dataclass
class LoadStats:
    entity: str
    rows: int = 0
    engine_seconds: float = 0.0
    raw_seconds: float = 0.0
    backdate_seconds: float = 0.0

    @property
    def engine_rate(self) -> float:
        return self.rows / self.engine_seconds if self.engine_seconds else 0.0

    @property
    def raw_rate(self) -> float:
        return self.rows / self.raw_seconds if self.raw_seconds else 0.0


@dataclass
class Generation:
    sizes: Sizes
    loads: list[LoadStats] = field(default_factory=list)
    seconds: float = 0.0
    users: dict[str, int] = field(default_factory=dict)
    #: whether the raw floor's tables had the search index too (generations before it did
    #: wrote into B-tree indexes alone)
    floor_search_index: bool = True

    def to_json(self) -> dict:
        return {"sizes": asdict(self.sizes), "seconds": self.seconds, "users": self.users,
                "floor_search_index": self.floor_search_index,
                "loads": [{**asdict(s), "engine_rate": s.engine_rate, "raw_rate": s.raw_rate}
                          for s in self.loads]}

    @classmethod
    def from_json(cls, data: dict) -> Generation:
        loads = [LoadStats(**{k: v for k, v in s.items() if not k.endswith("_rate")})
                 for s in data["loads"]]
        return cls(Sizes(**data["sizes"]), loads, data["seconds"], data["users"],
                   data.get("floor_search_index", False))


# -- databases -------------------------------------------------------------------------------
def database_url(kind: str, workdir: Path, pg_url: str, suffix: str = "") -> str:
    if kind == "sqlite":
        return f"sqlite:///{workdir / f'kervan_bench{suffix}.db'}"
    url = sa.make_url(normalise_database_url(pg_url))
    return url.set(database=f"{url.database}{suffix}").render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        for ending in ("", "-wal", "-shm"):
            Path(f"{parsed.database}{ending}").unlink(missing_ok=True)
        return
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = %s AND pid <> pg_backend_pid()", (parsed.database,))
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{parsed.database}"')
    admin.dispose()


def create_database(url: str) -> None:
    """A new, empty database (an existing one of that name is dropped first)."""
    drop_database(url)
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{parsed.database}"')
    admin.dispose()


def open_kervan(url: str, workdir: Path) -> Kervan:
    settings = Settings.from_env(database_url=url, instance=workdir / "instance",
                                 secret_key="kervan-bench", timezone="Europe/Istanbul",
                                 metadata=[], plugins=[])
    return Kervan(settings)


# -- users -----------------------------------------------------------------------------------
def create_users(kervan: Kervan, gen_seed: int) -> tuple[dict[str, int], list[Owner]]:
    """An administrator (who imports and measures) and about twenty sales people in teams."""
    from .data import FA_FIRST, FA_LAST, TR_FIRST, TR_LAST

    users = kervan.users
    made = {"admin": users.create("admin", PASSWORD, ["admin"], full_name="Bench Admin").id}
    owners: list[Owner] = []
    number = 0
    for team, size in TEAMS:
        for _ in range(size):
            number += 1
            if team == "tehran":
                name = f"{FA_FIRST[number % len(FA_FIRST)][0]} {FA_LAST[number % len(FA_LAST)][0]}"
            else:
                name = f"{TR_FIRST[number * 7 % len(TR_FIRST)]} {TR_LAST[number % len(TR_LAST)]}"
            user = users.create(f"rep{number:02d}", PASSWORD, ["sales"], full_name=name,
                                teams=[team], language="fa" if team == "tehran" else "tr")
            made[user.username] = user.id
    teams = {u: users.actor(users.get(i)).team_id for u, i in made.items()}
    for index, (username, user_id) in enumerate(sorted(made.items())):
        if username != "admin":
            # some reps carry far more records than others
            owners.append(Owner(user_id, teams[username], 1.0 + (index * 7 + gen_seed) % 5))
    return made, owners


# -- loading ---------------------------------------------------------------------------------
def generate(kervan: Kervan, raw_url: str, sizes: Sizes, chunk_size: int, batch_size: int,
             seed: int, log) -> Generation:
    """Fill the database; time the bulk path and a raw executemany of the same rows."""
    started = time.perf_counter()
    sync_schema(kervan.db, kervan.model)
    users, owners = create_users(kervan, seed)
    importer = kervan.users.actor(kervan.users.get(users["admin"]))
    end = dt.datetime.now(dt.UTC).replace(microsecond=0)
    gen = Generator(owners, end - dt.timedelta(days=365 * YEARS), end, seed=seed)
    scratch = _scratch(kervan, raw_url)
    raw = RawDatabase(raw_url)
    source = RawDatabase(kervan.settings.database_url)
    result = Generation(sizes, users=users)
    ids: dict[str, list[int]] = {}
    try:
        for entity in ENTITIES:
            total = getattr(sizes, entity)
            stats = LoadStats(entity)
            ids[entity] = []
            parts = -(-total // chunk_size) if total else 0
            for index, count in chunks(total, chunk_size):
                rows = [_row(gen, entity, ids) for _ in range(count)]
                moments = gen.moments(count, index, parts)
                made = _bulk(kervan, entity, rows, moments, importer, batch_size, stats)
                ids[entity].extend(made)
                _copy_raw(source, raw, kervan.tables.tables[entity], made, stats)
                stats.rows += count
                log(f"  {entity}: {stats.rows:,}/{total:,} — bulk {stats.engine_rate:,.0f} "
                    f"rows/s, raw executemany {stats.raw_rate:,.0f} rows/s")
            result.loads.append(stats)
    finally:
        raw.close()
        source.close()
        scratch.dispose()
    _settle(kervan, log)
    result.seconds = time.perf_counter() - started
    return result


def _row(gen: Generator, entity: str, ids: dict[str, list[int]]) -> dict:
    if entity == "account":
        return gen.account()
    if entity == "lead":
        return gen.lead()
    if entity == "opportunity":
        return gen.opportunity(ids["account"], ids["lead"])
    return gen.task(ids["account"], ids["opportunity"], ids["lead"])


def _bulk(kervan: Kervan, entity: str, rows: list[dict], moments: list[dt.datetime],
          actor: Actor, batch_size: int, stats: LoadStats) -> list[int]:
    """bulk_create, timed; then the creation moments are put back three years."""
    backdates = "at" in inspect.signature(kervan.records.bulk_create).parameters
    options = {"at": moments} if backdates else {}
    started = time.perf_counter()
    made = kervan.records.bulk_create(entity, rows, actor=actor, batch_size=batch_size,
                                      **options)
    stats.engine_seconds += time.perf_counter() - started
    if not backdates:
        # bulk_create stamps every record "now"; until it takes `at=` (see
        # docs/performance.md) the moments are written afterwards, outside the timing.
        started = time.perf_counter()
        _backdate(kervan, entity, made, moments)
        stats.backdate_seconds += time.perf_counter() - started
    return made


def _backdate(kervan: Kervan, entity: str, ids: list[int], moments: list[dt.datetime]) -> None:
    with kervan.db.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(
                f"UPDATE {entity} AS t SET created_at = v.at, updated_at = v.at "
                f"FROM unnest(%(ids)s::bigint[], %(ats)s::timestamptz[]) AS v(id, at) "
                f"WHERE t.id = v.id", {"ids": ids, "ats": moments})
        else:
            stamps = [m.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f") for m in moments]
            conn.exec_driver_sql(f"UPDATE {entity} SET created_at = ?, updated_at = ? "
                                 f"WHERE id = ?", [(s, s, i) for s, i in zip(stamps, ids,
                                                                           strict=True)])


def _scratch(kervan: Kervan, raw_url: str) -> sa.Engine:
    """The scratch database for the raw executemany: the same tables and indexes, the
    search index included (PostgreSQL's trigram index, SQLite's FTS5 table and the
    triggers that fill it), made by the same schema sync as the engine's database."""
    create_database(raw_url)
    engine = make_engine(raw_url)
    sync_schema(engine, kervan.model)
    return engine


def _copy_raw(source: RawDatabase, raw: RawDatabase, table: sa.Table, ids: list[int],
              stats: LoadStats) -> None:
    """Read the rows bulk_create stored and time a raw executemany of them."""
    columns = [c.name for c in table.columns if c.name != "id"]
    listed = ", ".join(source.quote(c) for c in columns)
    name = source.quote(table.name)
    rows = source.rows(f"SELECT {listed} FROM {name} WHERE id BETWEEN :low AND :high",
                       {"low": min(ids), "high": max(ids)})
    if raw.dialect == "postgresql":
        from psycopg.types.json import Jsonb

        rows = [tuple(Jsonb(v) if isinstance(v, list | dict) else v for v in row)
                for row in rows]
        marks = ", ".join(["%s"] * len(columns))
    else:
        marks = ", ".join(["?"] * len(columns))
    sql = f"INSERT INTO {name} ({listed}) VALUES ({marks})"
    started = time.perf_counter()
    with raw.transaction():
        cursor = raw.conn.cursor()
        cursor.executemany(sql, rows)
        cursor.close()
    stats.raw_seconds += time.perf_counter() - started


def _settle(kervan: Kervan, log) -> None:
    """What a production database would do on its own after a big import: PostgreSQL's
    autovacuum analyses (VACUUM FULL also removes the backdating's dead rows)."""
    started = time.perf_counter()
    with kervan.db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if conn.dialect.name == "postgresql":
            for entity in ENTITIES:
                conn.exec_driver_sql(f"VACUUM (FULL, ANALYZE) {entity}")
            conn.exec_driver_sql("VACUUM ANALYZE")
        else:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    os.sync()  # gigabytes written back in the middle of a measurement would be noise
    log(f"  settled in {time.perf_counter() - started:.1f} s")


def save_generation(path: Path, generation: Generation) -> None:
    path.write_text(json.dumps(generation.to_json(), indent=2), encoding="utf-8")


def load_generation(path: Path, sizes: Sizes) -> Generation | None:
    """A previous generation of the same sizes whose database can be reused."""
    if not path.exists():
        return None
    generation = Generation.from_json(json.loads(path.read_text(encoding="utf-8")))
    return generation if generation.sizes == sizes else None
