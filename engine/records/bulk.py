"""The bulk path: many records in one transaction with the single door's rules.

Same coercion, defaults, required rules, link and unique checks, number series and an
audit `create` event per record as `RecordService.create` — but checked and written in
batches (one query per batch and rule instead of one per record).  Child lines and
workflow actions of the first stage are not run here; the initial stage is recorded in
the stage history.  Imports, demo generators and the benchmark use it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from dataclasses import field as default
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from engine.definitions.model import Entity
from engine.query import search_index
from engine.storage.database import PreparedInsert, prepare_insert, send_insert

from .actor import SYSTEM, Actor
from .errors import RecordError, ValidationFailed
from .series import next_numbers, period_of
from .values import check_rules, coerce_input, default_value

#: PostgreSQL: a load of this many rows or more refreshes the table's planner statistics.
ANALYZE_AFTER = 5_000
#: … when it adds at least this share of the rows the statistics last counted (the table
#: at least doubles: the planner's picture is then far enough off to flip a plan; smaller
#: changes are autovacuum's, which analyses in its own process after a tenth).
ANALYZE_SHARE = 1.0
REFERENCE_TABLES = {"user": "kv_user", "team": "kv_team", "attachment": "kv_file"}


def bulk_create(service, entity_key: str, rows: list[dict], actor: Actor = SYSTEM,
                batch_size: int = 2000, conn=None, at: list[dt.datetime] | None = None
                ) -> list[int]:
    """Create many records; a single bad row refuses the whole call, naming its index.

    `at`, one moment per row, is when each record was made (an import keeps its dates):
    its creation and update times, audit and stage history, `$today` defaults and the
    period of its number series follow it. Without it every row is made now.
    """
    entity = service.entity(entity_key)
    if at is not None:
        if len(at) != len(rows):
            raise RecordError(f"at: {len(at)} moments for {len(rows)} rows; give one per row")
        naive = next((i for i, moment in enumerate(at) if moment.tzinfo is None), None)
        if naive is not None:
            raise RecordError(f"at: moment {naive} has no time zone")
    if entity.child_of or entity.child_tables and any(
            k in row for row in rows for k in entity.child_tables):
        raise RecordError("the bulk path creates records without child lines")
    service.permissions.require(actor, entity, "create")
    with service.transaction(conn) as c, search_index.deferred(c, entity) as index_search:
        ids = _Load(service, c, entity, actor, index_search).run(rows, at, batch_size)
        if _stale_statistics(c, entity.table_name, len(rows)):
            # the planner's picture of the table is from before the load (a table filled
            # right after it was created looks empty): without fresh statistics the next
            # load's link checks read the whole table instead of its primary key
            c.exec_driver_sql(f"ANALYZE {c.dialect.identifier_preparer.quote(entity.table_name)}")
    return ids


def _stale_statistics(conn, table_name: str, loaded: int) -> bool:
    """PostgreSQL: whether a load of `loaded` rows changed the table enough for its planner
    statistics to be refreshed now — at least ANALYZE_AFTER rows and as many as the
    statistics knew of, or a table never analysed. Sampling a big table costs about half a
    second, a tenth of a 50,000-row load; a load that adds less changes no plan, and
    autovacuum brings the statistics up to date in the background."""
    if conn.dialect.name != "postgresql" or loaded < ANALYZE_AFTER:
        return False
    known = conn.execute(sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"),
                         {"t": table_name}).scalar()
    return known is None or known < 0 or loaded >= ANALYZE_SHARE * known


@dataclass
class _Batch:
    offset: int  # index of its first row in the call
    records: list[dict]
    made: list[dt.datetime]  # each record's moment, in UTC
    local: list[dt.datetime]  # … and in the CRM's time zone
    errors: dict[str, str]  # by row index and field, of this batch
    ids: list[int] = default(default_factory=list)
    teams: dict = default(default_factory=dict)


class _Load:
    """One bulk call, batch by batch, as a pipeline of two threads (on PostgreSQL).

    Each batch is *prepared* (coerced, defaulted, ruled: Python alone), *checked* (links,
    uniqueness, number series, ids: a few short queries), *built* into the rows of its
    table, audit and stage history, formatted as the driver sends them (Python alone), and
    *written* (the database's work: every index of three tables). A writer thread writes
    batch n while this thread prepares batch n+2 and builds batch n+1, so the database and
    Python work at once instead of in turns; the writer only sends bytes, so it needs the
    GIL only between large writes. Only one thread at a time talks to the database
    (formatting asks the connection for its adapters alone): batch n+1 is checked after
    batch n-1 is written and before batch n is (so the checks make up for the one batch not
    written yet: its ids count as existing links and its unique values as taken).
    """

    def __init__(self, service, conn, entity: Entity, actor: Actor, index_search: bool):
        self.service, self.conn, self.entity, self.actor = service, conn, entity, actor
        self.index_search = index_search
        self.zone = ZoneInfo(service.kervan.settings.timezone)
        self.table = service.table(entity)
        self.defaults = {k: f for k, f in entity.user_fields.items()
                         if f.default is not None and f.type != "child_table"}
        self.unique_seen: dict[str, dict] = {}  # values of unique fields taken by the call
        self.next_id: int | None = None  # SQLite: ids are counted on from the first
        # PostgreSQL only: psycopg streams a COPY in large buffers and waits for the server
        # without the GIL, so the two threads work at once. sqlite3 takes the GIL back for
        # every row it binds, and a writer thread mostly waits for this one (the benchmark's
        # load fell from 10,800 to 8,400 rows/s): SQLite writes in this thread.
        self.threaded = conn.dialect.name == "postgresql"

    def run(self, rows: list[dict], at: list[dt.datetime] | None, size: int) -> list[int]:
        starts = range(0, len(rows), size)
        if not starts:
            return []
        prepared = (self.prepare(rows[i:i + size], i, at[i:i + size] if at else None)
                    for i in starts)
        ids: list[int] = []
        writer = ThreadPoolExecutor(1, thread_name_prefix="kervan-bulk") if self.threaded \
            else None
        writing = None
        try:
            ahead = self.check(next(prepared))
            while ahead is not None:
                following = next(prepared, None)  # Python: overlaps the write under way
                tables = self.build(ahead)
                if writing is not None:
                    writing.result()
                    writing = None
                if following is not None:
                    self.check(following, unwritten=ahead.ids)
                if writer is None:
                    self.write(ahead, tables)
                else:
                    writing = writer.submit(self.write, ahead, tables)
                ids.extend(ahead.ids)
                ahead = following
            if writing is not None:
                writing.result()
                writing = None
        finally:
            if writing is not None:  # something failed while a write ran: let it end
                wait([writing])
            if writer is not None:
                writer.shutdown()
        return ids

    def prepare(self, rows: list[dict], offset: int,
                moments: list[dt.datetime] | None) -> _Batch:
        entity, actor = self.entity, self.actor
        if moments:
            made = [m.astimezone(dt.UTC) for m in moments]
            local = [m.astimezone(self.zone) for m in made]
        else:
            now = dt.datetime.now(dt.UTC)
            made, local = [now] * len(rows), [now.astimezone(self.zone)] * len(rows)
        errors: dict[str, str] = {}
        records = []
        for index, values in enumerate(rows):
            prefix = f"{offset + index}."
            record = coerce_input(entity, values, errors, prefix)
            for key, fld in self.defaults.items():
                if key not in record:
                    record[key] = default_value(fld, actor, made[index], local[index].date())
            check_rules(entity, record, errors, prefix)
            records.append(record)
        return _Batch(offset, records, made, local, errors)

    def check(self, batch: _Batch, unwritten: Iterable[int] = ()) -> _Batch:
        """Links and unique values (refusing the call), then numbers, teams and ids.
        `unwritten`: ids of the batch before, checked but not written yet."""
        conn, entity, records, errors = self.conn, self.entity, batch.records, batch.errors
        check_references(self.service, conn, entity, records, errors,
                         lambda index, key: f"{batch.offset + index}.{key}",
                         unwritten={entity.key: set(unwritten)})
        self._check_unique(batch)
        if errors:
            shown = dict(list(errors.items())[:50])
            raise ValidationFailed(entity.key, shown)
        for series in entity.series:
            periods: dict[str, list[int]] = {}  # rows by the series period they were made in
            for index, record in enumerate(records):
                if record.get(series.field) in (None, ""):
                    periods.setdefault(period_of(series, batch.local[index]), []).append(index)
            for indexes in periods.values():
                numbers = next_numbers(conn, series, batch.local[indexes[0]], len(indexes))
                for index, number in zip(indexes, numbers, strict=True):
                    records[index][series.field] = number
        batch.teams = _owner_teams(self.service, conn, {r.get("owner") for r in records}
                                   - {None, self.actor.user_id})
        if conn.dialect.name == "postgresql":
            batch.ids = reserve_ids(conn, self.table, len(records))
        else:  # the transaction holds SQLite's write lock: the ids after the first batch's
            if self.next_id is None:
                self.next_id = reserve_ids(conn, self.table, 1)[0]
            batch.ids = list(range(self.next_id, self.next_id + len(records)))
            self.next_id += len(records)
        return batch

    def _check_unique(self, batch: _Batch) -> None:
        table, errors = self.table, batch.errors
        for key, fld in self.entity.user_fields.items():
            if not fld.unique:
                continue
            column = fld.field_type.columns(fld)[0].name
            taken = self.unique_seen.setdefault(key, {})  # by earlier batches of the call
            seen: dict = {}
            for index, record in enumerate(batch.records):
                value = record.get(key)
                if value is None:
                    continue
                stored = fld.field_type.to_storage(fld, value)[column]
                if stored in seen or stored in taken:
                    errors.setdefault(f"{batch.offset + index}.{key}", f"{value!r} is repeated "
                                      f"(also in row {seen.get(stored, taken.get(stored))})")
                seen[stored] = batch.offset + index
            for used in sorted(existing(self.conn, table.c[column], seen), key=str):
                errors.setdefault(f"{seen[used]}.{key}", f"{used!r} is already used")
            taken.update(seen)

    def build(self, batch: _Batch) -> list[tuple[sa.Table, PreparedInsert | None]]:
        """The rows to insert, ready to send: the records, an audit event each, their
        first stage."""
        service, entity, actor = self.service, self.entity, self.actor
        storage_rows = []
        for record, moment in zip(batch.records, batch.made, strict=True):
            row = service._storage(entity, record)
            row.update(created_at=moment, updated_at=moment, created_by=actor.user_id,
                       updated_by=actor.user_id, version=1)
            row.setdefault("owner", actor.user_id)
            row.setdefault("team", batch.teams.get(row["owner"], actor.team_id))
            storage_rows.append(row)
        empty = dict.fromkeys(sorted({k for row in storage_rows for k in row}))
        storage_rows = [{**empty, **row, "id": record_id}
                        for row, record_id in zip(storage_rows, batch.ids, strict=True)]
        made = list(zip(batch.ids, batch.records, batch.made, strict=True))
        tables = [(self.table, storage_rows), (service.table("kv_audit"), [
            {"entity": entity.key, "record_id": record_id, "action": "create", "field": None,
             "old_value": None, "user_id": actor.user_id, "at": moment,
             "new_value": json.dumps(service._json_values(entity, record), ensure_ascii=False,
                                     default=str)}
            for record_id, record, moment in made])]
        stage_field = service.kervan.workflow.stage_field(entity)
        if stage_field:
            category = service.kervan.workflow.category
            tables.append((service.table("kv_stage_history"), [
                {"entity": entity.key, "record_id": record_id, "field": stage_field,
                 "from_stage": None, "to_stage": record.get(stage_field),
                 "from_category": None, "to_category": category(entity,
                                                                record.get(stage_field)),
                 "user_id": actor.user_id, "at": moment, "seconds_in_previous": None}
                for record_id, record, moment in made
                if record.get(stage_field) is not None]))
        return [(table, prepare_insert(self.conn, table, rows)) for table, rows in tables]

    def write(self, batch: _Batch, tables: list[tuple[sa.Table, PreparedInsert | None]]
              ) -> None:
        for table, prepared in tables:
            send_insert(self.conn, prepared)
            if table is self.table and self.index_search:
                search_index.index_range(self.conn, self.entity, table, batch.ids[0],
                                         batch.ids[-1])


def reserve_ids(conn, table: sa.Table, count: int) -> list[int]:
    """Ids for `count` new rows, taken before the insert so that it needs no RETURNING
    (SQLite can only return ids in order one row at a time).

    PostgreSQL draws them from the table's sequence; on SQLite the bulk transaction holds
    the write lock, and AUTOINCREMENT's high-water mark (never reused, even after a
    delete) moves past the ids written.
    """
    if conn.dialect.name == "postgresql":
        sequence = sa.func.pg_get_serial_sequence(table.name, "id")
        return list(conn.execute(sa.select(sa.func.nextval(sequence)).select_from(
            sa.func.generate_series(1, count))).scalars())
    sequence = sa.table("sqlite_sequence", sa.column("name"), sa.column("seq"))
    used = conn.execute(sa.select(sa.func.max(sequence.c.seq))
                        .where(sequence.c.name == table.name)).scalar() or 0
    top = conn.execute(sa.select(sa.func.max(table.c.id))).scalar() or 0
    start = max(used, top) + 1
    return list(range(start, start + count))


def check_references(service, conn, entity, records, errors, where,
                     unwritten: dict[str, set] | None = None) -> None:
    """Link, user, team and file ids must exist: one query per field for all the records.

    `where(index, key)` names the error's place (`3.account` in bulk, `account` for one);
    `unwritten` holds ids, by entity, that exist though they are not written yet.
    """
    for key, field in entity.fields.items():  # owner and team are checked too
        if field.type == "link":
            table = service.table(field.target)
        elif field.type in REFERENCE_TABLES:
            table = service.table(REFERENCE_TABLES[field.type])
        else:
            continue
        wanted = {r[key] for i, r in enumerate(records)
                  if r.get(key) is not None and where(i, key) not in errors}
        if not wanted:
            continue
        found = wanted & (unwritten or {}).get(field.target, set())
        found |= existing(conn, table.c.id, wanted - found)
        for index, record in enumerate(records):
            value = record.get(key)
            if value is not None and value not in found:
                what = field.target or REFERENCE_TABLES[field.type].removeprefix("kv_")
                errors.setdefault(where(index, key), f"{what} #{value} does not exist")


def existing(conn, column: sa.Column, values) -> set:
    """Which of `values` the column holds. PostgreSQL is asked once, with the values as
    one array (an IN list of 2,000 parameters cost the driver more to parse and send than
    the database to answer: a fifth of an opportunity load's Python time); SQLite in IN
    lists of at most 900 (its limit of parameters per statement)."""
    values = sorted(values, key=str)
    if not values:
        return set()
    if conn.dialect.name == "postgresql":
        given = sa.bindparam("kv_values", values, type_=postgresql.ARRAY(column.type))
        return set(conn.execute(sa.select(column).where(column == sa.any_(given)))
                   .scalars().all())
    found = set()
    for start in range(0, len(values), 900):
        found.update(conn.execute(sa.select(column).where(
            column.in_(values[start:start + 900]))).scalars().all())
    return found


def _owner_teams(service, conn, owners: set) -> dict:
    """Each owner's first team, so bulk-created records follow their assignee's team."""
    if not owners:
        return {}
    links = service.table("kv_user_team")
    teams: dict = {}
    for user_id, team_id in conn.execute(sa.select(links.c.user_id, links.c.team_id)
                                         .where(links.c.user_id.in_(sorted(owners)))
                                         .order_by(links.c.team_id)):
        teams.setdefault(user_id, team_id)
    return teams
