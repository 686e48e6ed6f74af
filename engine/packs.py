"""Sector packs: overlays a consultant installs, previews and removes without losing data.

A pack is `sector_packs/<key>/pack.yaml` plus overlay metadata in the usual layout
(entities/, pipelines/, …) and optional demo/.  Installing adds its layer after the base;
records in stages the pack removes move through its `stage_map` (or to the first stage
of the same canonical category) and every move is remembered, so uninstalling and
reinstalling brings each value back.  Uninstalling hides the pack's fields and entities;
their columns and tables keep the data.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from . import __version__
from .definitions.model import Model
from .definitions.problems import MetadataError
from .definitions.yamlsource import YamlProblem, load_yaml_file, plain
from .layerstate import bump_version
from .records.actor import SYSTEM, Actor
from .records.errors import RecordError
from .storage.schema_sync import Plan, apply_plan, plan_sync


class PackError(RecordError):
    code, status = "pack_refused", 409


@dataclass
class PackInfo:
    key: str
    path: Path
    label: dict
    version: str
    requires: str | None
    description: dict
    stage_map: dict
    uninstall_map: dict
    installed: bool = False


@dataclass
class StageChange:
    entity: str
    field: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    relabelled: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class Move:
    entity: str
    record_id: int
    title: str
    field: str
    old: str
    new: str


@dataclass
class PackPlan:
    pack: PackInfo
    action: str
    schema: Plan
    stages: list[StageChange]
    moves: list[Move]
    restores: int = 0

    def lines(self) -> list[str]:
        label = self.pack.label.get("en", self.pack.key)
        out = [f"{self.action} pack {self.pack.key} {self.pack.version} ({label})"]
        out.append("schema:")
        steps = [s for s in self.schema.steps if s.action != "retain_column"
                 and s.action != "retain_table"] if self.action == "install" else []
        out += [f"  {s.describe()}" for s in steps] or ["  no schema changes"]
        if self.action == "uninstall":
            out.append("  the pack's fields and entities are hidden; their columns and tables "
                       "keep every value for a reinstall")
        out.append("stages:")
        for change in self.stages:
            where = f"{change.entity}.{change.field}"
            if change.added:
                out.append(f"  {where}: adds {', '.join(change.added)}")
            if change.removed:
                out.append(f"  {where}: removes {', '.join(change.removed)}")
            for key, old, new in change.relabelled:
                out.append(f"  {where}: renames {key} from {old!r} to {new!r}")
        if not self.stages:
            out.append("  no stage changes")
        out.append(f"records whose stage disappears: {len(self.moves)}")
        out += [f"  {m.entity} #{m.record_id} “{m.title}”: {m.old} → {m.new}" for m in self.moves]
        if self.restores:
            out.append(f"records brought back to the stage they had in this pack: "
                       f"{self.restores}")
        return out


def _load_pack(path: Path) -> PackInfo:
    try:
        data = plain(load_yaml_file(path / "pack.yaml"))
    except YamlProblem as exc:
        raise PackError(str(exc)) from None
    except FileNotFoundError:
        raise PackError(f"{path.name}: no pack.yaml") from None
    missing = [k for k in ("key", "label", "version") if k not in (data or {})]
    if missing:
        raise PackError(f"{path / 'pack.yaml'}: missing {', '.join(missing)}")
    if data["key"] != path.name:
        raise PackError(f"{path / 'pack.yaml'}: key {data['key']!r} must match the folder name")
    return PackInfo(key=data["key"], path=path, label=data["label"],
                    version=str(data["version"]), requires=data.get("requires_engine"),
                    description=data.get("description") or {},
                    stage_map=data.get("stage_map") or {},
                    uninstall_map=data.get("uninstall_map") or {})


class Packs:
    def __init__(self, kervan):
        self.kervan = kervan

    def _table(self, name: str) -> sa.Table:
        return self.kervan.tables.tables[name]

    def available(self) -> list[PackInfo]:
        root = self.kervan.settings.packs
        installed = set(self.kervan._read_state().packs)
        packs = []
        for folder in sorted(p for p in root.iterdir() if (p / "pack.yaml").exists()) \
                if root.is_dir() else []:
            info = _load_pack(folder)
            info.installed = info.key in installed
            packs.append(info)
        return packs

    def get(self, key: str) -> PackInfo:
        for info in self.available():
            if info.key == key:
                return info
        names = ", ".join(p.key for p in self.available()) or "none"
        raise PackError(f"no pack {key!r} in {self.kervan.settings.packs} (available: {names})")

    # -- planning ---------------------------------------------------------------------
    def plan_install(self, key: str) -> tuple[PackPlan, Model]:
        info = self.get(key)
        if info.installed:
            raise PackError(f"pack {key} is already installed")
        self._check_engine(info)
        self._check_conflicts(info)
        current = self.kervan.model
        state = self.kervan._read_state()
        candidate, problems = self.kervan.resolve(state, extra_dirs=[info.path])
        if problems:
            raise MetadataError(problems)
        schema = plan_sync(self.kervan.db, candidate)
        stages = stage_changes(current, candidate)
        moves = self._moves(current, candidate, stages, info.stage_map)
        restores = self._restorable(key)
        self._prefer_original(moves, f"-{key}", candidate)
        return PackPlan(info, "install", schema, stages, moves, restores), candidate

    def plan_uninstall(self, key: str) -> tuple[PackPlan, Model]:
        info = self.get(key)
        if not info.installed:
            raise PackError(f"pack {key} is not installed")
        current = self.kervan.model
        candidate, problems = self.kervan.resolve(without_packs=[key])
        if problems:
            raise MetadataError(problems)
        stages = stage_changes(current, candidate)
        moves = self._moves(current, candidate, stages, info.uninstall_map)
        self._prefer_original(moves, key, candidate)
        return PackPlan(info, "uninstall", Plan(), stages, moves), candidate

    def _prefer_original(self, moves: list[Move], tag: str, candidate: Model) -> None:
        """A record an earlier install/uninstall moved (and nobody since) goes back."""
        remap = self._table("kv_pack_remap")
        with self.kervan.db.connect() as conn:
            before = {(r.entity, r.record_id, r.field, r.new_value): r.old_value
                      for r in conn.execute(sa.select(remap).where(remap.c.pack == tag))}
        for move in moves:
            original = before.get((move.entity, move.record_id, move.field, move.old))
            if original in candidate.entity(move.entity).fields[move.field].option_keys:
                move.new = original

    def _check_engine(self, info: PackInfo) -> None:
        wanted = (info.requires or "").strip()
        if wanted.startswith(">="):
            need = tuple(int(p) for p in wanted[2:].split("."))
            have = tuple(int(p) for p in __version__.split("."))
            if have < need:
                raise PackError(f"pack {info.key} needs engine {wanted}; this is {__version__}")

    def _touched_stage_fields(self, path: Path) -> set[tuple[str, str]]:
        """(entity, field) pairs whose options a pack's overlay changes."""
        touched = set()
        for file in sorted((path / "entities").glob("*.y*ml")) if (path / "entities").is_dir() \
                else []:
            data = plain(load_yaml_file(file)) or {}
            for entity_key, spec in data.items():
                for field_key, fspec in ((spec or {}).get("fields") or {}).items():
                    if isinstance(fspec, dict) and "options" in fspec:
                        touched.add((entity_key, field_key))
        return touched

    def _check_conflicts(self, info: PackInfo) -> None:
        mine = self._touched_stage_fields(info.path)
        for other in self.available():
            if not other.installed or other.key == info.key:
                continue
            both = mine & self._touched_stage_fields(other.path)
            if both:
                fields = ", ".join(f"{e}.{f}" for e, f in sorted(both))
                raise PackError(f"packs {info.key} and {other.key} both reconfigure {fields}; "
                                f"uninstall {other.key} first (its data is kept)")

    def _moves(self, current: Model, candidate: Model, stages: list[StageChange],
               declared: dict) -> list[Move]:
        from .web.display import compose_title

        moves: list[Move] = []
        for change in stages:
            if not change.removed:
                continue
            old_entity = current.entity(change.entity)
            new_field = candidate.entity(change.entity).fields[change.field]
            table = self.kervan.tables.tables[old_entity.table_name]
            targets = {old: mapped_stage(old_entity.fields[change.field].option(old), new_field,
                                         (declared.get(change.entity) or {}).get(old))
                       for old in change.removed}
            with self.kervan.db.connect() as conn:
                rows = conn.execute(sa.select(table).where(
                    table.c[change.field].in_(change.removed)).order_by(table.c.id)).mappings()
                for row in rows:
                    moves.append(Move(change.entity, row["id"], compose_title(old_entity, row),
                                      change.field, row[change.field],
                                      targets[row[change.field]]))
        return moves

    def _restorable(self, key: str) -> int:
        table = self._table("kv_pack_remap")
        with self.kervan.db.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(table)
                                .where(table.c.pack == f"-{key}")).scalar_one()

    # -- doing ------------------------------------------------------------------------
    def install(self, key: str, actor: Actor = SYSTEM) -> PackPlan:
        plan, candidate = self.plan_install(key)
        if plan.schema.refused:
            raise PackError("; ".join(s.describe() for s in plan.schema.refused))
        apply_plan(self.kervan.db, candidate, plan.schema)
        now = dt.datetime.now(dt.UTC)
        packs = self._table("kv_pack")
        with self.kervan.records.transaction() as conn:
            self._apply_moves(conn, plan.moves, key, actor, now)
            self._restore(conn, key, actor, now)  # the rest of what the uninstall moved
            position = (conn.execute(sa.select(sa.func.max(packs.c.position))).scalar() or 0) + 1
            conn.execute(packs.delete().where(packs.c.key == key))
            conn.execute(packs.insert().values(key=key, version=plan.pack.version, active=True,
                                               installed_at=now, installed_by=actor.user_id,
                                               position=position))
            bump_version(conn)
        self.kervan.refresh()
        return plan

    def uninstall(self, key: str, actor: Actor = SYSTEM) -> PackPlan:
        plan, _candidate = self.plan_uninstall(key)
        now = dt.datetime.now(dt.UTC)
        packs = self._table("kv_pack")
        with self.kervan.records.transaction() as conn:
            self._apply_moves(conn, plan.moves, f"-{key}", actor, now)
            remap = self._table("kv_pack_remap")
            conn.execute(remap.delete().where(remap.c.pack == key))
            conn.execute(packs.update().where(packs.c.key == key).values(active=False))
            bump_version(conn)
        self.kervan.refresh()
        return plan

    def _apply_moves(self, conn, moves: list[Move], tag: str, actor: Actor, now) -> None:
        """Move records to their mapped stage, with an audit row and a note to undo it."""
        remap, audit = self._table("kv_pack_remap"), self._table("kv_audit")
        for move in moves:
            table = sa.table(move.entity, sa.column("id"), sa.column(move.field),
                             sa.column("version"))
            done = conn.execute(sa.update(table).where(
                table.c.id == move.record_id, table.c[move.field] == move.old).values(
                {move.field: move.new, "version": table.c.version + 1}))
            if not done.rowcount:
                continue  # someone moved it since the plan was made
            conn.execute(audit.insert().values(
                entity=move.entity, record_id=move.record_id, action="update", field=move.field,
                old_value=json.dumps(move.old), new_value=json.dumps(move.new),
                user_id=actor.user_id, at=now))
            conn.execute(remap.insert().values(pack=tag, entity=move.entity,
                                               record_id=move.record_id, field=move.field,
                                               old_value=move.old, new_value=move.new, at=now))

    def _restore(self, conn, key: str, actor: Actor, now) -> None:
        """On reinstall, records the uninstall moved (and nobody moved since) go back."""
        remap, audit = self._table("kv_pack_remap"), self._table("kv_audit")
        rows = conn.execute(sa.select(remap).where(remap.c.pack == f"-{key}")
                            .order_by(remap.c.id.desc())).mappings().all()
        for row in rows:
            table = sa.table(row["entity"], sa.column("id"), sa.column(row["field"]),
                             sa.column("version"))
            done = conn.execute(sa.update(table).where(
                table.c.id == row["record_id"], table.c[row["field"]] == row["new_value"])
                .values({row["field"]: row["old_value"], "version": table.c.version + 1}))
            if done.rowcount:
                conn.execute(audit.insert().values(
                    entity=row["entity"], record_id=row["record_id"], action="update",
                    field=row["field"], old_value=json.dumps(row["new_value"]),
                    new_value=json.dumps(row["old_value"]), user_id=actor.user_id, at=now))
        conn.execute(remap.delete().where(remap.c.pack == f"-{key}"))


def stage_fields(model: Model) -> dict[str, str]:
    """entity → its stage field (the pipeline's field, else the entity's stage_field)."""
    out = {e.key: e.stage_field for e in model.entities.values() if e.stage_field}
    for pipe in model.documents.get("pipelines", {}).values():
        entity = model.entities.get(pipe["entity"])
        if entity is not None:
            out[entity.key] = pipe.get("field") or entity.stage_field
    return {k: v for k, v in out.items() if v}


def stage_changes(current: Model, candidate: Model) -> list[StageChange]:
    changes = []
    new_fields = stage_fields(candidate)
    for entity_key, field_key in stage_fields(current).items():
        if entity_key not in candidate.entities or new_fields.get(entity_key) != field_key:
            continue
        old = current.entity(entity_key).fields[field_key]
        new = candidate.entity(entity_key).fields[field_key]
        change = StageChange(entity_key, field_key,
                             added=[k for k in new.option_keys if k not in old.option_keys],
                             removed=[k for k in old.option_keys if k not in new.option_keys])
        for option in new.options:
            before = old.option(option.key)
            if before and before.label.get("en") != option.label.get("en"):
                change.relabelled.append((option.key, before.label.get("en"),
                                          option.label.get("en")))
        if change.added or change.removed or change.relabelled:
            changes.append(change)
    return changes


def mapped_stage(old_option, new_field, declared: str | None) -> str:
    """Where a record goes when its stage disappears: declared, else same category, else first."""
    if declared and declared in new_field.option_keys:
        return declared
    if old_option is not None and old_option.category:
        same = [o.key for o in new_field.options if o.category == old_option.category]
        if same:
            return same[0]
    default = new_field.default if isinstance(new_field.default, str) else None
    return default if default in new_field.option_keys else new_field.option_keys[0]
