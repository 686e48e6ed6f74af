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
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from engine.definitions.model import Entity
from engine.query import search_index
from engine.storage.database import insert_many

from .actor import SYSTEM, Actor
from .errors import RecordError, ValidationFailed
from .series import next_numbers, period_of
from .values import check_rules, coerce_input, default_value

#: PostgreSQL: a load of this many rows or more refreshes the table's planner statistics.
ANALYZE_AFTER = 5_000
#: … and when it adds at least this share of the rows the statistics last counted.
ANALYZE_SHARE = 0.1
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
    ids: list[int] = []
    with service.transaction(conn) as c, search_index.deferred(c, entity) as index_search:
        for start in range(0, len(rows), batch_size):
            moments = at[start:start + batch_size] if at is not None else None
            ids.extend(_batch(service, c, entity, rows[start:start + batch_size], actor, start,
                              index_search, moments))
        if _stale_statistics(c, entity.table_name, len(rows)):
            # the planner's picture of the table is from before the load (a table filled
            # right after it was created looks empty): without fresh statistics the next
            # load's link checks read the whole table instead of its primary key
            c.exec_driver_sql(f"ANALYZE {c.dialect.identifier_preparer.quote(entity.table_name)}")
    return ids


def _stale_statistics(conn, table_name: str, loaded: int) -> bool:
    """PostgreSQL: whether a load of `loaded` rows changed the table enough for its planner
    statistics to be refreshed now — at least ANALYZE_AFTER rows and a tenth of the rows
    the statistics knew of (autovacuum's own measure), or a table never analysed. Sampling
    a big table costs about a second; a load that adds little to it changes no plan."""
    if conn.dialect.name != "postgresql" or loaded < ANALYZE_AFTER:
        return False
    known = conn.execute(sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"),
                         {"t": table_name}).scalar()
    return known is None or known < 0 or loaded >= ANALYZE_SHARE * known


def _batch(service, conn, entity: Entity, rows: list[dict], actor: Actor, offset: int,
           index_search: bool, moments: list[dt.datetime] | None) -> list[int]:
    zone = ZoneInfo(service.kervan.settings.timezone)
    now = dt.datetime.now(dt.UTC)
    made = [m.astimezone(dt.UTC) for m in moments] if moments else [now] * len(rows)
    local = [m.astimezone(zone) for m in made] if moments else [now.astimezone(zone)] * len(rows)
    errors: dict[str, str] = {}
    records = []
    defaults = {k: f for k, f in entity.user_fields.items()
                if f.default is not None and f.type != "child_table"}
    for index, values in enumerate(rows):
        prefix = f"{offset + index}."
        record = coerce_input(entity, values, errors, prefix)
        for key, field in defaults.items():
            if key not in record:
                record[key] = default_value(field, actor, made[index], local[index].date())
        check_rules(entity, record, errors, prefix)
        records.append(record)
    check_references(service, conn, entity, records, errors,
                     lambda index, key: f"{offset + index}.{key}")
    _check_unique(service, conn, entity, records, errors, offset)
    if errors:
        shown = dict(list(errors.items())[:50])
        raise ValidationFailed(entity.key, shown)
    for series in entity.series:
        periods: dict[str, list[int]] = {}  # rows by the series period they were made in
        for index, record in enumerate(records):
            if record.get(series.field) in (None, ""):
                periods.setdefault(period_of(series, local[index]), []).append(index)
        for indexes in periods.values():
            numbers = next_numbers(conn, series, local[indexes[0]], len(indexes))
            for index, number in zip(indexes, numbers, strict=True):
                records[index][series.field] = number
    table = service.table(entity)
    storage_rows = []
    teams = _owner_teams(service, conn, {r.get("owner") for r in records} - {None, actor.user_id})
    for record, moment in zip(records, made, strict=True):
        row = service._storage(entity, record)
        row.update(created_at=moment, updated_at=moment, created_by=actor.user_id,
                   updated_by=actor.user_id, version=1)
        row.setdefault("owner", actor.user_id)
        row.setdefault("team", teams.get(row["owner"], actor.team_id))
        storage_rows.append(row)
    empty = dict.fromkeys(sorted({k for row in storage_rows for k in row}))
    ids = reserve_ids(conn, table, len(storage_rows))
    storage_rows = [{**empty, **row, "id": record_id}
                    for row, record_id in zip(storage_rows, ids, strict=True)]
    insert_many(conn, table, storage_rows)
    if index_search:
        search_index.index_range(conn, entity, table, ids[0], ids[-1])
    audit = service.table("kv_audit")
    insert_many(conn, audit, [
        {"entity": entity.key, "record_id": record_id, "action": "create", "field": None,
         "old_value": None, "user_id": actor.user_id, "at": moment,
         "new_value": json.dumps(service._json_values(entity, record), ensure_ascii=False,
                                 default=str)}
        for record_id, record, moment in zip(ids, records, made, strict=True)])
    stage_field = service.kervan.workflow.stage_field(entity)
    if stage_field:
        history = service.table("kv_stage_history")
        category = service.kervan.workflow.category
        started = [{"entity": entity.key, "record_id": record_id, "field": stage_field,
                    "from_stage": None, "to_stage": record.get(stage_field),
                    "from_category": None, "to_category": category(entity,
                                                                   record.get(stage_field)),
                    "user_id": actor.user_id, "at": moment, "seconds_in_previous": None}
                   for record_id, record, moment in zip(ids, records, made, strict=True)
                   if record.get(stage_field) is not None]
        if started:
            insert_many(conn, history, started)
    return ids


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


def check_references(service, conn, entity, records, errors, where) -> None:
    """Link, user, team and file ids must exist: one query per field for all the records.

    `where(index, key)` names the error's place (`3.account` in bulk, `account` for one).
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
        found: set = set()
        ordered = sorted(wanted)
        for start in range(0, len(ordered), 900):
            chunk = ordered[start:start + 900]
            found.update(conn.execute(sa.select(table.c.id).where(table.c.id.in_(chunk)))
                         .scalars())
        for index, record in enumerate(records):
            value = record.get(key)
            if value is not None and value not in found:
                what = field.target or REFERENCE_TABLES[field.type].removeprefix("kv_")
                errors.setdefault(where(index, key), f"{what} #{value} does not exist")


def _check_unique(service, conn, entity, records, errors, offset) -> None:
    table = service.table(entity)
    for key, field in entity.user_fields.items():
        if not field.unique:
            continue
        column = field.field_type.columns(field)[0].name
        seen: dict = {}
        for index, record in enumerate(records):
            value = record.get(key)
            if value is None:
                continue
            stored = field.field_type.to_storage(field, value)[column]
            if stored in seen:
                errors.setdefault(f"{offset + index}.{key}",
                                  f"{value!r} is repeated (also in row {seen[stored]})")
            seen[stored] = offset + index
        values = sorted(seen, key=str)
        for start in range(0, len(values), 900):
            chunk = values[start:start + 900]
            for taken in conn.execute(sa.select(table.c[column]).where(
                    table.c[column].in_(chunk))).scalars():
                errors.setdefault(f"{seen[taken]}.{key}", f"{taken!r} is already used")


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
