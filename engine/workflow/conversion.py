"""Conversions declared in metadata: one record becomes several (lead → customer, contact,
opportunity), linking to existing records instead of creating duplicates."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from engine.query.conditions import evaluate
from engine.records.actor import Actor
from engine.records.errors import NotFound, RecordError, ValidationFailed
from engine.records.values import describe

from .expressions import Context


class DuplicateFound(RecordError):
    """Existing records match: the caller chooses to link to one or to create anyway."""

    code, status = "duplicate_found", 409

    def __init__(self, key: str, candidates: list[dict]):
        names = ", ".join(f"#{c['id']} {c['title']} (same {c['matched_on']})" for c in candidates)
        ids = ", ".join(str(c["id"]) for c in candidates)
        super().__init__(f"a matching {key} already exists: {names}; link to it or create a new "
                         f"one", {key: f"link to one of: {ids}"})
        self.key = key
        self.candidates = candidates


@dataclass
class ConversionResult:
    source: dict
    created: dict[str, int] = field(default_factory=dict)
    linked: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"source": self.source["id"],
                **{k: {"id": v, "created": True} for k, v in self.created.items()},
                **{k: {"id": v, "created": False} for k, v in self.linked.items()}}


class Conversions:
    def __init__(self, kervan):
        self.kervan = kervan

    def for_entity(self, entity_key: str, key: str | None = None) -> tuple[str, dict] | None:
        """The entity's conversion (the named one when it has several)."""
        for name, spec in self.kervan.model.documents.get("conversions", {}).items():
            if spec["source"] == entity_key and (key is None or name == key):
                return name, spec
        return None

    def candidates(self, conn, step: dict, context: Context) -> list[dict]:
        """Records of the step's entity sharing a `match` value with what would be created."""
        from engine.web.display import compose_title

        entity = self.kervan.model.entity(step["entity"])
        table = self.kervan.records.table(entity)
        values = context.resolve(step.get("values") or {})
        found: dict[int, dict] = {}
        # Duplicates are looked for among every record, not only those the user may read:
        # a second customer record is the costlier mistake; only id and title are shown.
        for name in step.get("match") or []:
            value = values.get(name)
            if value in (None, ""):
                continue
            fld = entity.fields[name]
            stored = fld.field_type.coerce(fld, value)
            stmt = sa.select(table).where(table.c[name] == stored, table.c.archived_at.is_(None))
            for row in conn.execute(stmt.limit(5)).mappings():
                found.setdefault(row["id"], {"id": row["id"], "title": compose_title(entity, row),
                                             "matched_on": name})
        return list(found.values())

    def _copy_lines(self, target_key: str, values: dict) -> None:
        """Lines copied from the source keep only the fields the target's lines have."""
        target = self.kervan.model.entity(target_key)
        for name, fld in target.child_tables.items():
            if not isinstance(values.get(name), list):
                continue
            child = self.kervan.model.entity(fld.spec["entity"])
            link = fld.spec.get("link_field", target.key)
            keep = {k for k, f in child.user_fields.items()
                    if k != link and not f.read_only and f.type != "child_table"}
            values[name] = [{k: v for k, v in line.items() if k in keep and v is not None}
                            for line in values[name]]

    def convert(self, entity_key: str, record_id: int, actor: Actor,
                link: dict[str, int] | None = None, create_new: bool = False,
                values: dict[str, dict] | None = None) -> ConversionResult:
        """Run a conversion in one transaction; raises DuplicateFound to offer a link.

        `values` adds to or overrides what each created record gets ({"account": {...}}).
        """
        values = values or {}
        entry = self.for_entity(entity_key)
        if entry is None:
            raise NotFound("conversion", entity_key)
        _key, spec = entry
        link = link or {}
        records = self.kervan.records
        workflow = self.kervan.workflow
        entity = self.kervan.model.entity(entity_key)
        engine_actor = workflow.engine_actor(actor)
        with records.transaction() as conn:
            source = records.get(entity.key, record_id, conn=conn, actor=actor)
            self.kervan.permissions.require_record(actor, entity, "edit", source)
            stage_field = workflow.stage_field(entity)
            if spec.get("stage") and stage_field and source.get(stage_field) == spec["stage"]:
                raise RecordError(f"{entity.key} #{record_id} is already converted")
            if spec.get("when") and not evaluate(entity, spec["when"], source):
                raise RecordError(f"{entity.key} #{record_id} can be converted only when "
                                  f"{describe(entity, spec['when'])}")
            context = workflow._context(entity, source, actor)
            result = ConversionResult(source=source)
            for step in spec["create"]:
                key = step["key"]
                if key in link:
                    target = self.kervan.model.entity(step["entity"])
                    records.get(target.key, link[key], conn=conn, with_lines=False)
                    context.created[key] = result.linked[key] = int(link[key])
                    continue
                if step.get("match") and not create_new:
                    found = self.candidates(conn, step, context)
                    if found:
                        raise DuplicateFound(key, found)
                given = {k: v for k, v in context.resolve(step.get("values") or {}).items()
                         if v not in (None, "", [])}
                given.update(values.get(key) or {})
                self._copy_lines(step["entity"], given)
                try:
                    created = records.create(step["entity"], given, actor=engine_actor,
                                             conn=conn)
                except ValidationFailed as exc:
                    raise ValidationFailed(entity.key, {f"{key}.{name}": message for name, message
                                                        in exc.fields.items()}) from None
                context.created[key] = result.created[key] = created["id"]
            changes = {k: v for k, v in context.resolve(spec.get("set") or {}).items()
                       if v is not None}
            if spec.get("stage") and stage_field:
                changes[stage_field] = spec["stage"]
            current = records.get(entity.key, record_id, conn=conn, with_lines=False)
            # the user's own right to make this move is checked; the engine writes the links
            workflow.guard(entity, current, {**current, **changes}, actor)
            result.source = records.update(entity.key, record_id, changes,
                                           version=current["version"], actor=engine_actor,
                                           conn=conn)
            return result
