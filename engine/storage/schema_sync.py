"""Schema sync: make the database match the model, additively, through Alembic.

Alembic's `compare_metadata` finds missing tables, columns and indexes; a registry of
storage signatures (`kv_schema_column`) tells whether a field's storage changed and
whether that change widens the column (safe) or could lose data (refused unless
`allow_destructive`, and even then the old values go to `kv_archive` first).  Nothing
is ever dropped because it left the metadata: such columns and tables are retained and
come back with their values when the field or entity is restored.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations

from engine.definitions.model import Entity, Field, Model
from engine.fields.base import FieldValueError
from engine.query import search_index

from .database import WRITE
from .tables import SYSTEM_TABLES, build_tables, column_signatures, entity_indexes

MAX_EXAMPLES = 3
#: The registry row (column name) holding an entity's search index signature.
SEARCH_KEY = "__search__"


@dataclass
class Step:
    """One change of the plan, described in plain words."""

    action: str
    table: str
    column: str | None = None
    detail: str = ""
    payload: object = None

    @property
    def changes_database(self) -> bool:
        return self.action not in ("retain_column", "retain_table", "refuse")

    def describe(self) -> str:
        t, c = self.table, self.column
        text = {
            "create_table": f"create table {t}",
            "add_column": f"add column {c} to {t}",
            "add_index": f"add index {c} on {t}",
            "drop_index": f"drop index {c} on {t}",
            "alter_type": f"widen column {t}.{c}",
            "convert": f"convert column {t}.{c}",
            "retain_column": f"retain column {t}.{c}",
            "search_index": f"build search index on {t}",
            "drop_search_index": f"drop search index on {t}",
            "retain_table": f"retain table {t}",
            "refuse": f"REFUSED: {t}.{c}" if c else f"REFUSED: {t}",
        }[self.action]
        return f"{text} ({self.detail})" if self.detail else text


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)

    @property
    def refused(self) -> list[Step]:
        return [s for s in self.steps if s.action == "refuse"]

    @property
    def changes(self) -> list[Step]:
        return [s for s in self.steps if s.changes_database]

    def lines(self) -> list[str]:
        if not self.steps:
            return ["no schema changes"]
        return [step.describe() for step in self.steps]


class SchemaSyncError(Exception):
    """The database refused a change the plan needs (the message says what to do)."""


class MigrationRefused(Exception):
    """A plan holds changes that could lose data."""

    def __init__(self, plan: Plan):
        self.plan = plan
        super().__init__("\n".join(step.describe() for step in plan.refused))


def _read_registry(conn, existing_tables: set[str]) -> dict[tuple[str, str], str]:
    if "kv_schema_column" not in existing_tables:
        return {}
    table = sa.table("kv_schema_column", sa.column("table_name"), sa.column("column_name"),
                     sa.column("signature"))
    rows = conn.execute(sa.select(table.c.table_name, table.c.column_name, table.c.signature))
    return {(r.table_name, r.column_name): r.signature for r in rows}


def _column_owner(model: Model) -> dict[tuple[str, str], tuple[Entity, Field]]:
    owners = {}
    for entity in model.entities.values():
        for f in entity.user_fields.values():
            for storage in f.field_type.columns(f):
                owners[(entity.table_name, storage.name)] = (entity, f)
    return owners


def is_widening(old: str, new: str) -> bool:
    """Whether storage `old` fits into `new` for every possible value."""
    if old == new:
        return True
    o, n = old.split(":"), new.split(":")
    if o[0] == "string" and n[0] == "string":
        return int(n[1]) >= int(o[1])
    if o[0] == "string" and n[0] == "text":
        return True
    if o[0] == "decimal" and n[0] == "decimal":
        return int(n[2]) >= int(o[2]) and int(n[1]) - int(n[2]) >= int(o[1]) - int(o[2])
    if o[0] == "integer" and n[0] == "decimal":
        return int(n[1]) - int(n[2]) >= 19
    return False


def _raw_for_coerce(value):
    """A stored value in a form any field type's coerce accepts."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return value


def plan_sync(engine: sa.Engine, model: Model, allow_destructive: bool = False) -> Plan:
    """Compare the database with the model and return the plan (changes nothing)."""
    metadata = build_tables(model)
    plan = Plan()
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        existing = set(inspector.get_table_names())
        registry = _read_registry(conn, existing)
        owned = {t for t, _ in registry} | set(SYSTEM_TABLES)

        def include_object(obj, name, type_, reflected, compare_to):
            if type_ == "table":
                return name in metadata.tables or name in owned
            if type_ == "index" and name and name.startswith("sx_"):
                return False  # search indexes are planned below
            if type_ == "column" and name == search_index.DOC_COLUMN:
                return False  # PostgreSQL's stored search document: the search index's
            return True

        context = MigrationContext.configure(conn, opts={
            "include_object": include_object, "compare_type": False,
            "compare_server_default": False})
        diffs = [d for d in compare_metadata(context, metadata) if isinstance(d, tuple)]
        created = {d[1].name for d in diffs if d[0] == "add_table"}
        model_columns = column_signatures(model)
        owners = _column_owner(model)
        for diff in diffs:
            kind = diff[0]
            if kind == "add_table":
                table = diff[1]
                plan.steps.append(Step("create_table", table.name,
                                       detail=f"{len(table.columns)} columns", payload=table))
            elif kind == "remove_table":
                plan.steps.append(Step("retain_table", diff[1].name,
                                       detail="entity no longer in metadata; its records are kept"))
            elif kind == "add_column":
                _, _, tname, column = diff
                sig = model_columns.get((tname, column.name), "")
                plan.steps.append(Step("add_column", tname, column.name, detail=sig,
                                       payload=column))
            elif kind == "remove_column":
                _, _, tname, column = diff
                plan.steps.append(Step("retain_column", tname, column.name,
                                       detail="no longer in metadata; its values are kept and "
                                              "come back when the field is restored"))
            elif kind == "add_index":
                index = diff[1]
                if index.table.name in created:
                    continue
                plan.steps.append(_index_step(conn, index))
            elif kind == "remove_index":
                index = diff[1]
                table = metadata.tables.get(index.table.name)
                names = [c.name for c in index.columns]
                if table is not None and all(n in table.c for n in names):
                    plan.steps.append(Step("drop_index", index.table.name, index.name,
                                           detail="no longer needed by the metadata",
                                           payload=index))
        added = {(s.table, s.column) for s in plan.steps if s.action == "add_column"}
        converted: set[tuple[str, str]] = set()
        for key, new_sig in model_columns.items():
            old_sig = registry.get(key)
            if old_sig is None or old_sig == new_sig or key in added or key[0] in created:
                continue
            entity, fld = owners[key]
            if (entity.table_name, fld.key) in converted:
                continue
            if is_widening(old_sig, new_sig):
                plan.steps.append(Step("alter_type", key[0], key[1],
                                       detail=f"{old_sig} → {new_sig}",
                                       payload=metadata.tables[key[0]].c[key[1]]))
                continue
            converted.add((entity.table_name, fld.key))
            plan.steps.append(_convert_step(conn, entity, fld, registry, model_columns,
                                            allow_destructive))
        plan.steps.extend(_search_steps(model, registry, conn.dialect.name, {
            s.table for s in plan.steps if s.action in ("alter_type", "convert")}))
    return plan


def _search_steps(model: Model, registry, dialect: str, altered: set[str]) -> list[Step]:
    """Build, rebuild or drop search indexes whose searchable fields changed, and those of
    tables whose columns change type: SQLite's ALTER copies the table and loses the
    triggers; PostgreSQL refuses to alter or drop a column its stored search document is
    made from (the index is dropped before the columns change, built again after)."""
    steps = []
    built = {table: sig for (table, column), sig in registry.items() if column == SEARCH_KEY}
    for entity in model.entities.values():
        wanted = search_index.signature(entity, dialect)
        have = built.get(entity.table_name)
        if wanted == have and not (have and entity.table_name in altered):
            continue
        fields = ", ".join(c for c, _ in search_index.search_columns(entity))
        if wanted is None:
            steps.append(Step("drop_search_index", entity.table_name,
                              detail="no searchable fields left"))
        else:
            steps.append(Step("search_index", entity.table_name,
                              detail=("rebuild: " if have else "") + f"over {fields}",
                              payload=entity))
    return steps


def _index_step(conn, index: sa.Index) -> Step:
    if index.unique:
        column = index.table.c[[c.name for c in index.columns][0]]
        table = sa.table(index.table.name, sa.column(column.name))
        dupes = conn.execute(
            sa.select(table.c[column.name], sa.func.count())
            .where(table.c[column.name].is_not(None))
            .group_by(table.c[column.name]).having(sa.func.count() > 1).limit(MAX_EXAMPLES)
        ).all()
        if dupes:
            examples = ", ".join(f"{v!r} ×{n}" for v, n in dupes)
            return Step("refuse", index.table.name, column.name,
                        detail=f"cannot make {column.name} unique: existing records share "
                               f"values ({examples}); fix the duplicates first")
    cols = ", ".join(c.name for c in index.columns)
    return Step("add_index", index.table.name, index.name,
                detail=("unique " if index.unique else "") + f"on ({cols})", payload=index)


def _convert_step(conn, entity: Entity, fld: Field, registry, model_columns,
                  allow_destructive: bool) -> Step:
    table_name = entity.table_name
    main = fld.field_type.columns(fld)[0].name
    old_sig = registry[(table_name, main)] if (table_name, main) in registry else "?"
    new_sig = model_columns[(table_name, main)]
    table = sa.table(table_name, sa.column("id"), sa.column(main))
    failures, total, converted = [], 0, []
    for row in conn.execute(sa.select(table.c.id, table.c[main]).where(
            table.c[main].is_not(None)).order_by(table.c.id)):
        total += 1
        value = None
        try:
            if old_sig.startswith("ref:") and old_sig != new_sig:
                raise FieldValueError("points to another kind of record")
            value = fld.field_type.coerce(fld, _raw_for_coerce(row[1]))
        except FieldValueError:
            failures.append((row[0], row[1]))
        converted.append((row[0], value))
    change = f"{fld.type} field {fld.key}: {old_sig} → {new_sig}"
    if failures and not allow_destructive:
        examples = "; ".join(f"id {i}: {v!r}" for i, v in failures[:MAX_EXAMPLES])
        return Step("refuse", table_name, main,
                    detail=f"changing {change} would lose {len(failures)} of {total} values "
                           f"(e.g. {examples}); rerun with --allow-destructive to convert the "
                           f"rest and keep every old value in kv_archive")
    detail = f"{change}; {total - len(failures)} of {total} values convert"
    if failures:
        detail += f", {len(failures)} become empty (old values kept in kv_archive)"
    return Step("convert", table_name, main, detail=detail,
                payload={"entity": entity, "field": fld, "values": converted})


def apply_plan(engine: sa.Engine, model: Model, plan: Plan) -> None:
    """Apply a plan in one transaction and record the storage signatures."""
    if plan.refused:
        raise MigrationRefused(plan)
    metadata = build_tables(model)
    with engine.connect().execution_options(**WRITE) as conn, conn.begin():
        ops = Operations(MigrationContext.configure(conn))
        searched = [s for s in plan.steps if s.action in ("search_index", "drop_search_index")]
        for step in searched:  # first: the columns they are made of may change below
            _drop_search_index(conn, step.table)
        for step in plan.steps:
            if step.action == "create_table":
                metadata.tables[step.table].create(conn)
            elif step.action == "add_column":
                ops.add_column(step.table, sa.Column(step.column, step.payload.type))
            elif step.action == "add_index":
                index = step.payload
                ops.create_index(index.name, step.table, [c.name for c in index.columns],
                                 unique=index.unique)
            elif step.action == "drop_index":
                ops.drop_index(step.column, table_name=step.table)
            elif step.action == "alter_type":
                with ops.batch_alter_table(step.table) as batch:
                    batch.alter_column(step.column, type_=step.payload.type)
            elif step.action == "convert":
                _convert(conn, ops, metadata, step)
        for step in searched:  # last: the index reads the columns made above
            _record_search_index(conn, step)
        _write_registry(conn, model)


def _convert(conn, ops: Operations, metadata: sa.MetaData, step: Step) -> None:
    entity, fld, values = step.payload["entity"], step.payload["field"], step.payload["values"]
    table_name = entity.table_name
    live = sa.Table(table_name, sa.MetaData(), autoload_with=conn)
    storages = fld.field_type.columns(fld)
    old_columns = [s.name for s in storages if s.name in live.c]
    now = dt.datetime.now(dt.UTC)
    archive = metadata.tables["kv_archive"]
    registry = _read_registry(conn, {"kv_schema_column"})
    for name in old_columns:
        rows = conn.execute(sa.select(live.c.id, live.c[name]).where(live.c[name].is_not(None)))
        batch_rows = [
            {"table_name": table_name, "column_name": name, "record_id": r[0],
             "signature": registry.get((table_name, name), "?"),
             "value": json.dumps(_raw_for_coerce(r[1]), default=str),
             "reason": f"type change to {fld.type}", "archived_at": now}
            for r in rows]
        if batch_rows:
            conn.execute(archive.insert(), batch_rows)
    for index in live.indexes:
        if any(c.name in old_columns for c in index.columns):
            ops.drop_index(index.name, table_name=table_name)
    with ops.batch_alter_table(table_name) as batch:
        for name in old_columns:
            batch.drop_column(name)
    for storage in storages:
        ops.add_column(table_name, sa.Column(storage.name, storage.type))
    target = metadata.tables[table_name]
    updates = []
    for rid, value in values:
        if value is not None:
            stored = fld.field_type.to_storage(fld, value)
            updates.append({"_id": rid, **{f"v_{k}": v for k, v in stored.items()}})
    if updates:
        stmt = (sa.update(target).where(target.c.id == sa.bindparam("_id"))
                .values({s.name: sa.bindparam(f"v_{s.name}") for s in storages}))
        conn.execute(stmt, updates)
    for index in entity_indexes(entity, target):
        if any(c.name in [s.name for s in storages] for c in index.columns):
            ops.create_index(index.name, table_name, [c.name for c in index.columns],
                             unique=index.unique)


_SEARCH_REGISTRY = sa.table("kv_schema_column", sa.column("table_name"),
                            sa.column("column_name"), sa.column("signature"),
                            sa.column("updated_at"))


def _drop_search_index(conn, table_name: str) -> None:
    for statement in search_index.drop_ddl(table_name, conn.dialect.name):
        conn.exec_driver_sql(statement)


def _record_search_index(conn, step: Step) -> None:
    """Build the index a step asks for (its old one is gone) and note its signature."""
    dialect = conn.dialect.name
    registry = _SEARCH_REGISTRY
    conn.execute(registry.delete().where(registry.c.table_name == step.table,
                                         registry.c.column_name == SEARCH_KEY))
    if step.action == "drop_search_index":
        return
    try:
        for statement in search_index.ddl(step.payload, dialect):
            conn.exec_driver_sql(statement)
    except sa.exc.DBAPIError as exc:
        hint = (" PostgreSQL needs the pg_trgm extension: it ships with PostgreSQL's contrib "
                "modules, and CREATE EXTENSION needs the CREATE privilege on the database."
                if dialect == "postgresql" else "")
        raise SchemaSyncError(f"cannot build the search index on {step.table}: "
                              f"{exc.orig}.{hint}") from None
    conn.execute(registry.insert().values(
        table_name=step.table, column_name=SEARCH_KEY,
        signature=search_index.signature(step.payload, dialect),
        updated_at=dt.datetime.now(dt.UTC)))


def _write_registry(conn, model: Model) -> None:
    registry = build_tables(model).tables["kv_schema_column"]
    now = dt.datetime.now(dt.UTC)
    current = _read_registry(conn, {"kv_schema_column"})
    for (table_name, column_name), signature in column_signatures(model).items():
        old = current.get((table_name, column_name))
        if old == signature:
            continue
        if old is not None:
            conn.execute(registry.delete().where(registry.c.table_name == table_name,
                                                 registry.c.column_name == column_name))
        conn.execute(registry.insert().values(table_name=table_name, column_name=column_name,
                                              signature=signature, updated_at=now))


def sync_schema(engine: sa.Engine, model: Model, allow_destructive: bool = False) -> Plan:
    """Plan and apply in one call (raises MigrationRefused when data would be lost)."""
    plan = plan_sync(engine, model, allow_destructive=allow_destructive)
    apply_plan(engine, model, plan)
    return plan
