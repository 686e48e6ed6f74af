"""RecordService — the single door for every write.

Every create, update, archive, restore and delete (screens, API, imports, workflow
actions, plugins, demo data) comes through here: coercion → defaults → plugin
`before_save` → rules, links, unique → number series → write → audit → `after_save`,
all in one transaction.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from engine.definitions.model import Entity, Field
from engine.fields.base import FieldType
from engine.fields.builtin import MAX_INTEGER
from engine.query import search_index
from engine.query.conditions import to_sql
from engine.query.listing import (
    NEWEST,
    WALK_ROWS,
    ListRequest,
    Page,
    QueryError,
    hits_to_sort,
    list_records,
    parse_sort,
)
from engine.storage.database import WRITE, reading

from . import audit
from .actor import SYSTEM, Actor
from .errors import Conflict, DeleteRefused, NotFound, RecordError, ValidationFailed
from .series import next_number
from .values import check_rules, coerce_input, default_value, label

#: How long the search box trusts a table's size it read (a hint: stale, it costs time).
SIZE_HINT_SECONDS = 60.0
#: The most candidates the search box reads from one entity's index. Each costs a visit to
#: its row (about 10 µs on PostgreSQL, a heap page apiece), a walk that finds too few and
#: the index read again about 12 ms: past a thousand, reading more costs text that many
#: records hold more than it saves text that fewer do.
CANDIDATES_MOST = 1_000

if TYPE_CHECKING:
    from engine.runtime import Kervan

class RecordService:
    def __init__(self, kervan: Kervan):
        self.kervan = kervan
        #: entity key → (its highest id, when read): how big each table is, for the search
        #: box to size its candidates by — a hint only, each process its own
        self._sizes: dict[str, tuple[int, float]] = {}

    # -- plumbing ---------------------------------------------------------------
    @property
    def model(self):
        return self.kervan.model

    def table(self, entity: Entity | str) -> sa.Table:
        key = entity if isinstance(entity, str) else entity.table_name
        return self.kervan.tables.tables[key]

    @property
    def permissions(self):
        return self.kervan.permissions

    def visible(self, actor: Actor, entity: Entity, record: dict) -> dict:
        """The record without the fields the actor's roles hide."""
        hidden = self.permissions.field_access(actor, entity).hidden
        if not hidden:
            return record
        return {k: v for k, v in record.items() if k not in hidden}

    def _check_field_access(self, actor: Actor, entity: Entity, values: dict) -> None:
        access = self.permissions.field_access(actor, entity)
        blocked = {key: "you may not change this field" for key in values
                   if key in access.read_only or key in access.hidden}
        if blocked:
            raise ValidationFailed(entity.key, blocked)

    def entity(self, key: str) -> Entity:
        try:
            return self.model.entity(key)
        except KeyError:
            raise NotFound("entity", key) from None

    @contextlib.contextmanager
    def transaction(self, conn: sa.Connection | None = None) -> Iterator[sa.Connection]:
        """A write transaction, or the caller's when one is passed in."""
        if conn is not None:
            yield conn
            return
        with self.kervan.db.connect().execution_options(**WRITE) as new, new.begin():
            yield new

    def _now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def _local(self, moment: dt.datetime) -> dt.datetime:
        return moment.astimezone(ZoneInfo(self.kervan.settings.timezone))

    # -- reads ------------------------------------------------------------------
    def _row_to_record(self, entity: Entity, row,
                       hidden: frozenset[str] = frozenset()) -> dict[str, Any]:
        """A stored row as a record; `hidden` fields are left out (`visible` after it,
        without asking the permissions again for every row of a list)."""
        return _record_reader(entity, hidden)(row)

    def _load_row(self, conn, entity: Entity, record_id: int, lock: bool = False):
        table = self.table(entity)
        stmt = sa.select(table).where(table.c.id == record_id)
        if lock and conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).mappings().first()
        if row is None:
            raise NotFound(entity.key, record_id)
        return row

    def get(self, entity_key: str, record_id: int, conn: sa.Connection | None = None,
            with_lines: bool = True, actor: Actor = SYSTEM) -> dict[str, Any]:
        """One record with its child lines, as the actor may see it."""
        entity = self.entity(entity_key)
        record_id = _as_id(entity, record_id)
        with _reader(self.kervan.db, conn) as c:
            record = self._row_to_record(entity, self._load_row(c, entity, record_id))
            self.permissions.require_record(actor, entity, "read", record)
            parent = self._parent_link(entity)
            if parent and not actor.is_system and record.get(parent[1]) is not None:
                # a line is readable when its document is
                self.get(parent[0], record[parent[1]], conn=c, with_lines=False, actor=actor)
            if with_lines:
                for key, field in entity.child_tables.items():
                    record[key] = self._lines(c, entity, field, record_id)
        return self.visible(actor, entity, record)

    def _lines(self, conn, entity: Entity, field: Field, parent_id: int) -> list[dict]:
        child = self.model.entity(field.spec["entity"])
        table = self.table(child)
        link = field.spec.get("link_field", entity.key)
        rows = conn.execute(sa.select(table).where(table.c[link] == parent_id)
                            .order_by(table.c.id)).mappings()
        return list(map(_record_reader(child), rows))

    def find(self, entity_key: str, where: dict | None = None, limit: int = 100,
             include_archived: bool = False, conn: sa.Connection | None = None) -> list[dict]:
        """Records matching a condition (the condition language), newest first."""
        entity = self.entity(entity_key)
        table = self.table(entity)
        stmt = sa.select(table).order_by(table.c.id.desc()).limit(limit)
        if where:
            stmt = stmt.where(to_sql(entity, where, table))
        if not include_archived:
            stmt = stmt.where(table.c.archived_at.is_(None))
        with _reader(self.kervan.db, conn) as c:
            return list(map(_record_reader(entity), c.execute(stmt).mappings()))

    def list(self, entity_key: str, request: ListRequest, actor: Actor = SYSTEM,
             conn: sa.Connection | None = None, action: str = "read") -> Page:
        """A keyset page of the records the actor may read (or export) matching a request."""
        entity = self.entity(entity_key)
        table = self.table(entity)
        self.permissions.require(actor, entity, action)
        hidden = self.permissions.field_access(actor, entity).hidden
        used = {c.get("field") for c in request.where} | {k.field for k in request.sort}
        if hidden & used:
            name = sorted(hidden & used)[0]
            raise QueryError("invalid list request", {name: f"{entity.key} has no field {name!r}"})
        scope = self.permissions.row_condition(actor, entity, table, action)
        with _reader(self.kervan.db, conn) as c:
            return list_records(c, entity, table, request, _record_reader(entity, hidden),
                                scope=scope, hidden=hidden)

    def search_all(self, text: str, actor: Actor = SYSTEM,
                   size: int = 6) -> list[tuple[Entity, Page]]:
        """The search box: for every entity the actor may read, the first `size` records
        (in its list's own order) whose searchable fields hold `text`; entities without
        any are left out.

        The search indexes of all entities are asked together, in one statement, for the
        records that may hold the text; then only the entities with candidates are read,
        among those candidates, with the exact match and the actor's permissions. An
        entity whose index cannot answer (a term too short) is searched as its list would
        be; one with more candidates than a few rows sort walks its list's order first
        (`ListRequest.many_hits`). The candidates come newest first: where the list sorts
        that way and the actor may read every record, the newest `size + 1` are read
        first, and they are the page unless one of them fails the exact match."""
        entities = [e for e in self.model.entities.values()
                    if not e.child_of and e.search_fields
                    and self.permissions.scope(actor, e, "read") != "none"]
        found = []
        with reading(self.kervan.db) as conn:  # one connection for every entity
            candidates = search_index.candidate_ids(
                conn, [(e, self.table(e)) for e in entities], text,
                self._candidate_limits(conn, entities, size))
            for entity in entities:
                among = candidates.get(entity.key)
                if among == []:
                    continue  # its index holds the text nowhere
                # its list's own order, unless that sorts by a field this user may not see
                hidden = self.permissions.field_access(actor, entity).hidden
                sort = [k for k in parse_sort(entity, None) if k.field not in hidden] or \
                    [NEWEST]
                request = ListRequest(search=text, size=size, count=False, among=among,
                                      sort=sort,
                                      many_hits=entity.key in candidates and among is None)
                page = None
                if among and sort == [NEWEST] and \
                        self.permissions.scope(actor, entity, "read") == "all":
                    # the page is the newest candidates, if each holds the text exactly
                    first = among[:size + 1]
                    page = self.list(entity.key, replace(request, among=first), actor=actor,
                                     conn=conn)
                    if len(page.rows) + bool(page.next) < len(first):
                        page = None  # one of them did not: all candidates are needed
                if page is None:
                    page = self.list(entity.key, request, actor=actor, conn=conn)
                if page.rows:
                    found.append((entity, page))
        return found

    def _candidate_limits(self, conn, entities: list[Entity], size: int) -> dict[str, int]:
        """How many candidates the search box takes from each entity's index: as many as
        a page sorts or, in a big table, as many as a walk of WALK_ROWS rows of its list
        is expected to hold a page among, up to CANDIDATES_MOST. An entity with more
        fills its page by walking; one with fewer has every candidate in hand, sorted,
        and no walk is tried in vain before its index is asked again (a name 622 of a
        million leads hold: the search box 28–34 → 20 ms). A table's size is read off the
        top of its primary key at most once a minute."""
        now = time.monotonic()
        stale = [e for e in entities
                 if now - self._sizes.get(e.key, (0, -SIZE_HINT_SECONDS))[1] >= SIZE_HINT_SECONDS]
        if stale:
            tops = conn.execute(sa.select(*[
                sa.select(sa.func.max(self.table(e).c.id)).scalar_subquery()
                for e in stale])).one()
            for entity, top in zip(stale, tops, strict=True):
                self._sizes[entity.key] = (top or 0, now)
        least = hits_to_sort(size)
        return {e.key: max(least, min(CANDIDATES_MOST, self._sizes[e.key][0] * (size + 1)
                                      // WALK_ROWS)) for e in entities}

    def readable_ids(self, entity_key: str, ids, actor: Actor) -> set[int]:
        """Which of these records the actor may read now (for recent lists, favourites)."""
        entity = self.model.entities.get(entity_key)
        wanted = sorted({int(i) for i in ids})
        if entity is None or not wanted or \
                self.permissions.scope(actor, entity, "read") == "none":
            return set()
        table = self.table(entity)
        stmt = sa.select(table.c.id).where(table.c.id.in_(wanted))
        scope = self.permissions.row_condition(actor, entity, table)
        if scope is not None:
            stmt = stmt.where(scope)
        with reading(self.kervan.db) as conn:
            return set(conn.execute(stmt).scalars())

    def history(self, entity_key: str, record_id: int, actor: Actor = SYSTEM) -> list[dict]:
        """The audit trail of a record the actor may read, without hidden fields."""
        entity = self.entity(entity_key)
        with reading(self.kervan.db) as conn:
            row = self._load_row(conn, entity, _as_id(entity, record_id))
            self.permissions.require_record(actor, entity, "read",
                                            self._row_to_record(entity, row))
            entries = audit.history(conn, self.table("kv_audit"), entity, int(record_id))
        hidden = self.permissions.field_access(actor, entity).hidden
        for entry in entries:
            for side in ("old", "new"):
                if isinstance(entry[side], dict) and entry["field"] is None:
                    entry[side] = {k: v for k, v in entry[side].items() if k not in hidden}
        return [e for e in entries if e["field"] not in hidden]

    def to_json(self, entity_key: str, record: dict) -> dict:
        """A record as JSON-friendly values."""
        entity = self.entity(entity_key)
        out = {}
        for key, value in record.items():
            field = entity.fields.get(key)
            if field is None:
                continue
            if field.type == "child_table":
                child = self.model.entity(field.spec["entity"])
                out[key] = [self.to_json(child.key, line) for line in value]
            else:
                out[key] = field.field_type.to_json(field, value)
        return out

    # -- writes -----------------------------------------------------------------
    def create(self, entity_key: str, values: dict, actor: Actor = SYSTEM,
               conn: sa.Connection | None = None, at: dt.datetime | None = None
               ) -> dict[str, Any]:
        """Validate, number, insert and audit a new record; returns it.

        `at` backdates the record (imports and demo data keep their original dates).
        """
        entity = self.entity(entity_key)
        if entity.child_of:
            raise RecordError(f"{entity.key} lines are created through their "
                              f"{entity.child_of} record")
        self.permissions.require(actor, entity, "create")
        self._check_field_access(actor, entity, values if isinstance(values, dict) else {})
        with self.transaction(conn) as c:
            record_id = self._create(c, entity, values, actor, at=at)
            return self.visible(actor, entity, self.get(entity.key, record_id, conn=c))

    def _create(self, conn, entity: Entity, values: dict, actor: Actor,
                prefix: str = "", extra: dict | None = None,
                errors: dict | None = None, at: dt.datetime | None = None) -> int | None:
        own_errors = errors if errors is not None else {}
        start = len(own_errors)
        now = at.astimezone(dt.UTC) if at else self._now()
        local = self._local(now)
        record = coerce_input(entity, values, own_errors, prefix)
        record.update(extra or {})
        for key, field in entity.user_fields.items():
            if key not in record and field.default is not None and field.type != "child_table":
                record[key] = default_value(field, actor, now, local.date())
        for key, field in entity.user_fields.items():
            if (field.read_only and not actor.is_system and key not in (extra or {})
                    and key in values
                    and values[key] not in (None, "") and field.default is None
                    and not entity.series_for(key)):
                own_errors[f"{prefix}{key}"] = "is read-only"
        self.kervan.pm.hook.before_save(kervan=self.kervan, entity=entity, action="create",
                                        values=record, record=None, actor=actor)
        check_rules(entity, record, own_errors, prefix)
        self._check_references(conn, entity, record, own_errors, prefix)
        self._check_unique(conn, entity, record, None, own_errors, prefix)
        lines = {k: record.pop(k) for k in list(record) if entity.fields[k].type == "child_table"}
        if len(own_errors) > start:
            if errors is None:  # a record of its own: report; a line: the parent reports
                raise ValidationFailed(entity.key, own_errors)
            return None
        for series in entity.series:
            if record.get(series.field) in (None, ""):
                record[series.field] = next_number(conn, series, local)
        row = self._storage(entity, record)
        row.update(created_at=now, updated_at=now, created_by=actor.user_id,
                   updated_by=actor.user_id, version=1)
        row.setdefault("owner", actor.user_id)
        row.setdefault("team", self._team_of(conn, row["owner"], actor))
        table = self.table(entity)
        record_id = self._insert(conn, entity, table, row, prefix)
        audit.write_event(conn, self.table("kv_audit"), entity, record_id, "create", actor, now,
                          new=self._json_values(entity, record))
        for key, items in lines.items():
            self._write_lines(conn, entity, entity.fields[key], record_id, items, actor,
                              f"{prefix}{key}.", at=at)
        created = self._row_to_record(entity, self._load_row(conn, entity, record_id))
        self.kervan.workflow.started(conn, entity, created, actor, run_actions=at is None)
        self.kervan.pm.hook.after_save(kervan=self.kervan, entity=entity, action="create",
                                       record=created, changes=None, actor=actor, connection=conn)
        return record_id

    def bulk_create(self, entity_key: str, rows: list[dict], actor: Actor = SYSTEM,
                    batch_size: int = 2000, conn=None,
                    at: list[dt.datetime] | None = None) -> list[int]:
        """Many records through the same rules, written in batches (see records/bulk.py);
        `at` gives each row the moment it was made (imports keep their dates)."""
        from .bulk import bulk_create

        return bulk_create(self, entity_key, rows, actor, batch_size, conn, at)

    def update(self, entity_key: str, record_id: int, values: dict, version: int | None,
               actor: Actor = SYSTEM, conn: sa.Connection | None = None) -> dict[str, Any]:
        """Change fields of a record at the given version; a stale version is a Conflict."""
        entity = self.entity(entity_key)
        record_id = _as_id(entity, record_id)
        if version is None or isinstance(version, bool) or not str(version).isdigit():
            raise ValidationFailed(entity.key, {
                "version": "is required: send the version you read, so a concurrent change "
                           "is not overwritten"})
        version = int(version)
        if version >= 2**31:
            raise ValidationFailed(entity.key, {"version": "is not a version of this record"})
        self.permissions.require(actor, entity, "edit")
        self._check_field_access(actor, entity, values if isinstance(values, dict) else {})
        with self.transaction(conn) as c:
            self._update(c, entity, record_id, values, version, actor)
            return self.visible(actor, entity, self.get(entity.key, record_id, conn=c))

    def _update(self, conn, entity: Entity, record_id: int, values: dict, version: int,
                actor: Actor) -> None:
        row = self._load_row(conn, entity, record_id, lock=True)
        self.permissions.require_record(actor, entity, "edit", self._row_to_record(entity, row))
        if row["version"] != version:
            raise Conflict(entity.key, record_id, version, row["version"])
        if row["archived_at"] is not None:
            raise RecordError(f"{entity.key} #{record_id} is archived; restore it before "
                              f"editing")
        current = self._row_to_record(entity, row)
        errors: dict[str, str] = {}
        given = coerce_input(entity, values, errors)
        for key in given:
            field = entity.fields[key]
            if ((field.read_only and not actor.is_system) or entity.series_for(key)) \
                    and given[key] != current.get(key):
                errors[key] = "is read-only"
        merged = {**current, **given}
        self.kervan.pm.hook.before_save(kervan=self.kervan, entity=entity, action="update",
                                        values=merged, record=current, actor=actor)
        check_rules(entity, merged, errors)
        changed = {k: v for k, v in merged.items()
                   if k in entity.fields and entity.fields[k].stored and v != current.get(k)}
        self._check_references(conn, entity, changed, errors, "")
        self._check_unique(conn, entity, changed, record_id, errors, "")
        lines = {k: v for k, v in merged.items()
                 if k in entity.fields and entity.fields[k].type == "child_table" and k in given}
        if errors:
            raise ValidationFailed(entity.key, errors)
        stage_field = self.kervan.workflow.stage_field(entity)
        moved = stage_field is not None and stage_field in changed
        if moved:
            for key, child in entity.child_tables.items():  # guards may require lines
                if key not in given:
                    merged[key] = self._lines(conn, entity, child, record_id)
            self.kervan.workflow.guard(entity, current, merged, actor)
        now = self._now()
        table = self.table(entity)
        storage = self._storage(entity, changed)
        storage.update(updated_at=now, updated_by=actor.user_id, version=version + 1)
        result = conn.execute(sa.update(table).where(table.c.id == record_id,
                                                     table.c.version == version).values(storage))
        if result.rowcount != 1:
            latest = self._load_row(conn, entity, record_id)["version"]
            raise Conflict(entity.key, record_id, version, latest)
        changes = {k: (self._json(entity, k, current.get(k)), self._json(entity, k, v))
                   for k, v in changed.items()}
        audit.write_changes(conn, self.table("kv_audit"), entity, record_id, actor, now, changes)
        for key, items in lines.items():
            self._write_lines(conn, entity, entity.fields[key], record_id, items, actor,
                              f"{key}.")
        updated = self._row_to_record(entity, self._load_row(conn, entity, record_id))
        if moved:
            self.kervan.workflow.after_move(conn, entity, updated, current.get(stage_field),
                                            actor)
        self.kervan.pm.hook.after_save(kervan=self.kervan, entity=entity, action="update",
                                       record=updated, changes=changes, actor=actor,
                                       connection=conn)

    def archive(self, entity_key: str, record_id: int, actor: Actor = SYSTEM,
                version: int | None = None, conn=None) -> dict[str, Any]:
        """Hide a record from daily lists; it keeps every value and can be restored."""
        return self._set_archived(entity_key, record_id, True, actor, version, conn)

    def restore(self, entity_key: str, record_id: int, actor: Actor = SYSTEM,
                version: int | None = None, conn=None) -> dict[str, Any]:
        return self._set_archived(entity_key, record_id, False, actor, version, conn)

    def _set_archived(self, entity_key, record_id, archived: bool, actor, version, conn):
        entity = self.entity(entity_key)
        record_id = _as_id(entity, record_id)
        action = "archive" if archived else "restore"
        self.permissions.require(actor, entity, "edit")
        with self.transaction(conn) as c:
            row = self._load_row(c, entity, record_id, lock=True)
            self.permissions.require_record(actor, entity, "edit",
                                            self._row_to_record(entity, row))
            if version is not None and int(version) != row["version"]:
                raise Conflict(entity.key, record_id, version, row["version"])
            if (row["archived_at"] is not None) == archived:
                state = "already archived" if archived else "not archived"
                raise RecordError(f"{entity.key} #{record_id} is {state}")
            now = self._now()
            table = self.table(entity)
            c.execute(sa.update(table).where(table.c.id == record_id).values(
                archived_at=now if archived else None, updated_at=now,
                updated_by=actor.user_id, version=row["version"] + 1))
            audit.write_event(c, self.table("kv_audit"), entity, record_id, action, actor, now)
            return self.visible(actor, entity, self.get(entity.key, record_id, conn=c))

    def delete(self, entity_key: str, record_id: int, actor: Actor = SYSTEM, conn=None) -> None:
        """Delete for good, unless the entity's policy forbids it or records link to it."""
        entity = self.entity(entity_key)
        record_id = _as_id(entity, record_id)
        self.permissions.require(actor, entity, "delete")
        if entity.delete_policy == "never":
            raise DeleteRefused(f"{entity.label['en']} records are never deleted; archive or "
                                f"cancel it instead")
        with self.transaction(conn) as c:
            snapshot = self.get(entity.key, record_id, conn=c)
            self.permissions.require_record(actor, entity, "delete", snapshot)
            children = {f.spec["entity"] for f in entity.child_tables.values()}
            blockers = []
            for other, link in self.model.links_to(entity.key):
                if other.key in children:
                    continue
                table = self.table(other)
                count = c.execute(sa.select(sa.func.count()).select_from(table)
                                  .where(table.c[link.key] == record_id)).scalar_one()
                if count:
                    blockers.append(f"{count} {other.key} record(s) through {link.key}")
            if blockers:
                raise DeleteRefused(f"{entity.key} #{record_id} cannot be deleted: "
                                    f"{', '.join(blockers)} link to it; archive it instead")
            for field in entity.child_tables.values():
                child = self.model.entity(field.spec["entity"])
                link = field.spec.get("link_field", entity.key)
                ctable = self.table(child)
                c.execute(sa.delete(ctable).where(ctable.c[link] == record_id))
            table = self.table(entity)
            c.execute(sa.delete(table).where(table.c.id == record_id))
            audit.write_event(c, self.table("kv_audit"), entity, record_id, "delete", actor,
                              self._now(), old=self.to_json(entity.key, snapshot))

    # -- helpers ----------------------------------------------------------------
    def _parent_link(self, entity: Entity) -> tuple[str, str] | None:
        """(parent entity, link field) of a line entity such as quote_line."""
        if not entity.child_of:
            return None
        parent = self.model.entity(entity.child_of)
        for field in parent.child_tables.values():
            if field.spec["entity"] == entity.key:
                return parent.key, field.spec.get("link_field", parent.key)
        return None

    def _team_of(self, conn, owner: int | None, actor: Actor) -> int | None:
        """A record belongs to its owner's (first) team, so team scopes follow assignment."""
        if owner is None or owner == actor.user_id:
            return actor.team_id
        links = self.table("kv_user_team")
        return conn.execute(sa.select(links.c.team_id).where(links.c.user_id == owner)
                            .order_by(links.c.team_id).limit(1)).scalar()

    def _storage(self, entity: Entity, record: dict) -> dict:
        row: dict[str, Any] = {}
        plain, fields = entity.plain_storage, entity.fields
        for key, value in record.items():
            if key in plain:
                row[key] = value
                continue
            field = fields[key]
            if field.stored:
                row.update(field.field_type.to_storage(field, value))
        return row

    def _json(self, entity: Entity, key: str, value):
        field = entity.fields[key]
        return field.field_type.to_json(field, value)

    def _json_values(self, entity: Entity, record: dict) -> dict:
        plain, fields = entity.plain_json, entity.fields
        return {k: v if k in plain else self._json(entity, k, v) for k, v in record.items()
                if v is not None and (k in plain or fields[k].stored)}

    def _insert(self, conn, entity: Entity, table: sa.Table, row: dict, prefix: str) -> int:
        # A unique index can still catch a race the pre-check missed; the caller's
        # transaction rolls back, so nothing is half-written.
        try:
            return conn.execute(table.insert().values(row).returning(table.c.id)).scalar_one()
        except sa.exc.IntegrityError as exc:
            field = next((f for f in entity.user_fields.values()
                          if f.unique and f.key in str(exc.orig)), None)
            if field is not None:
                raise ValidationFailed(entity.key, {
                    f"{prefix}{field.key}": "is already used by another record"}) from None
            raise

    def _check_references(self, conn, entity: Entity, record: dict, errors: dict,
                          prefix: str) -> None:
        from .bulk import check_references

        given = {k: v for k, v in record.items() if k in entity.fields}
        check_references(self, conn, entity, [given], errors,
                         lambda _index, key: f"{prefix}{key}")

    def _check_unique(self, conn, entity: Entity, record: dict, record_id: int | None,
                      errors: dict, prefix: str) -> None:
        table = self.table(entity)
        for key, value in record.items():
            field = entity.fields.get(key)
            if not (field and field.unique) or value is None or f"{prefix}{key}" in errors:
                continue
            column = field.field_type.columns(field)[0].name
            stored = field.field_type.to_storage(field, value)[column]
            stmt = sa.select(table.c.id).where(table.c[column] == stored)
            if record_id is not None:
                stmt = stmt.where(table.c.id != record_id)
            other = conn.execute(stmt.limit(1)).scalar()
            if other is not None:
                errors[f"{prefix}{key}"] = (f"{label(field)} {value!r} is already used by "
                                            f"{entity.key} #{other}")

    def _write_lines(self, conn, parent: Entity, field: Field, parent_id: int, items: list,
                     actor: Actor, prefix: str, at: dt.datetime | None = None) -> None:
        """Replace a record's child lines: keep ids given, create new, delete the rest."""
        child = self.model.entity(field.spec["entity"])
        link = field.spec.get("link_field", parent.key)
        table = self.table(child)
        existing = {r["id"]: r for r in conn.execute(
            sa.select(table).where(table.c[link] == parent_id)).mappings()}
        errors: dict[str, str] = {}
        kept: set[int] = set()
        for index, item in enumerate(items):
            item = dict(item)
            line_id = item.pop("id", None)
            item.pop("version", None)
            item.pop(link, None)
            where = f"{prefix}{index}."
            if line_id is not None:
                if line_id not in existing:
                    errors[f"{where}id"] = f"line #{line_id} does not belong to this record"
                    continue
                kept.add(line_id)
                self._update_line(conn, child, existing[line_id], item, actor, where, errors)
            else:
                self._create(conn, child, item, actor, where, {link: parent_id}, errors, at=at)
        if errors:
            raise ValidationFailed(parent.key, errors)
        removed = [i for i in existing if i not in kept]
        if removed:
            conn.execute(sa.delete(table).where(table.c.id.in_(removed)))
            for line_id in removed:
                audit.write_event(conn, self.table("kv_audit"), child, line_id, "delete",
                                  actor, self._now())

    def _update_line(self, conn, child: Entity, row, values: dict, actor: Actor, prefix: str,
                     errors: dict) -> None:
        current = self._row_to_record(child, row)
        start = len(errors)
        given = coerce_input(child, values, errors, prefix)
        merged = {**current, **given}
        check_rules(child, merged, errors, prefix)
        changed = {k: v for k, v in given.items() if v != current.get(k)}
        self._check_references(conn, child, changed, errors, prefix)
        if len(errors) > start or not changed:
            return
        now = self._now()
        table = self.table(child)
        storage = self._storage(child, changed)
        storage.update(updated_at=now, updated_by=actor.user_id, version=row["version"] + 1)
        conn.execute(sa.update(table).where(table.c.id == row["id"]).values(storage))
        audit.write_changes(conn, self.table("kv_audit"), child, row["id"], actor, now,
                            {k: (self._json(child, k, current.get(k)), self._json(child, k, v))
                             for k, v in changed.items()})


def _as_id(entity: Entity, record_id) -> int:
    try:
        value = int(record_id)
    except (TypeError, ValueError):
        raise NotFound(entity.key, record_id) from None
    if not 0 < value <= MAX_INTEGER:
        raise NotFound(entity.key, record_id)
    return value


def _record_reader(entity: Entity, hidden: frozenset[str] = frozenset()):
    """A function turning stored rows of `entity` into records, its fields and their
    conversions worked out once — a list page turns fifty rows of thirty-odd fields, most
    of them of types that store their value as it is (read straight from the row)."""
    plan = [(key, field, None if type(field.field_type).from_storage is
             FieldType.from_storage else field.field_type.from_storage)
            for key, field in entity.stored_fields.items() if key not in hidden]

    def read(row) -> dict[str, Any]:
        return {key: row.get(key) if convert is None else convert(field, row)
                for key, field, convert in plan}
    return read


@contextlib.contextmanager
def _reader(db: sa.Engine, conn: sa.Connection | None):
    if conn is not None:
        yield conn
    else:
        with reading(db) as new:
            yield new
