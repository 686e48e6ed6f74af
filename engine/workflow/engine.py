"""The workflow engine: guards on stage changes, stage history and declared actions.

Every stage change — a kanban drag, a form save, the API's transition, an action of
another transition — reaches the record service's update, which asks this engine to
guard it before writing and to run its actions after, in the same transaction.  So a
refused guard or a failing action leaves nothing behind.

Actions run on behalf of the user who moved the record (audit rows name them), with the
engine's authority: a salesperson winning a deal may open the project operations owns.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from engine.definitions.model import Entity
from engine.query.conditions import evaluate
from engine.records.actor import Actor
from engine.records.errors import RecordError, ValidationFailed
from engine.records.values import describe

from .expressions import Context


class TransitionRefused(RecordError):
    code, status = "transition_refused", 409


def _label(entity: Entity, field_key: str, stage: str | None) -> str:
    if stage is None:
        return "—"
    option = entity.fields[field_key].option(stage)
    return option.label.get("en", stage) if option else stage


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class Workflow:
    def __init__(self, kervan):
        self.kervan = kervan

    # -- metadata ---------------------------------------------------------------------
    def pipeline_for(self, entity: Entity) -> dict | None:
        for key, pipe in self.kervan.model.documents.get("pipelines", {}).items():
            if pipe.get("entity") == entity.key and pipe.get("field", entity.stage_field):
                return {"key": key, **pipe}
        return None

    def stage_field(self, entity: Entity) -> str | None:
        pipe = self.pipeline_for(entity)
        return (pipe or {}).get("field") or entity.stage_field

    @staticmethod
    def _stage_spec(pipe: dict, stage: str | None) -> dict:
        return (pipe.get("stages") or {}).get(stage or "", {}) or {}

    @staticmethod
    def _transition(pipe: dict, frm: str | None, to: str) -> dict | None:
        for transition in pipe.get("transitions") or []:
            sources = _as_list(transition.get("from", "*"))
            if transition["to"] == to and ("*" in sources or frm in sources):
                return transition
        return None

    def category(self, entity: Entity, stage: str | None) -> str | None:
        field = self.stage_field(entity)
        option = entity.fields[field].option(stage) if field and stage else None
        return option.category if option else None

    # -- guard ------------------------------------------------------------------------
    def guard(self, entity: Entity, before: dict, after: dict, actor: Actor) -> None:
        """Refuse a stage change its pipeline does not allow; name what is missing."""
        pipe = self.pipeline_for(entity)
        field = self.stage_field(entity)
        if pipe is None or field is None:
            return
        frm, to = before.get(field), after.get(field)
        if frm == to or to is None:
            return
        transition = self._transition(pipe, frm, to)
        words = f"from {_label(entity, field, frm)} to {_label(entity, field, to)}"
        if transition is None and pipe.get("strict") and frm is not None:
            allowed = [t["to"] for t in pipe.get("transitions") or []
                       if "*" in _as_list(t.get("from", "*")) or frm in _as_list(t.get("from"))]
            names = ", ".join(_label(entity, field, s) for s in dict.fromkeys(allowed))
            raise TransitionRefused(f"{entity.key} cannot move {words}; from "
                                    f"{_label(entity, field, frm)} it can move to: "
                                    f"{names or 'nowhere'}", {field: f"cannot move {words}"})
        transition = transition or {}
        roles = set(_as_list(transition.get("roles")))
        if roles and not (actor.is_system or self.kervan.permissions.is_admin(actor)
                          or roles & set(actor.roles)):
            raise TransitionRefused(
                f"only {', '.join(sorted(roles))} may move {entity.key} {words}",
                {field: f"your roles ({', '.join(sorted(actor.roles)) or 'none'}) may not move "
                        f"it {words}"})
        required = [*_as_list(self._stage_spec(pipe, to).get("requires")),
                    *_as_list(transition.get("requires"))]
        missing = {key: f"is required to move to {_label(entity, field, to)}"
                   for key in dict.fromkeys(required)
                   if entity.fields[key].field_type.is_empty(after.get(key))}
        if missing:
            raise ValidationFailed(entity.key, missing)
        when = transition.get("when")
        if when and not evaluate(entity, when, after):
            raise TransitionRefused(f"{entity.key} can move {words} only when "
                                    f"{describe(entity, when)}",
                                    {field: f"needs {describe(entity, when)}"})

    # -- after the write ----------------------------------------------------------------
    def after_move(self, conn, entity: Entity, record: dict, before_stage: str | None,
                   actor: Actor, run_actions: bool = True) -> None:
        """Stage history and the actions of leaving, moving and entering."""
        pipe = self.pipeline_for(entity)
        field = self.stage_field(entity)
        if field is None:
            return
        to = record.get(field)
        self._history(conn, entity, record, field, before_stage, to, actor)
        if pipe is None or not run_actions:
            return
        # a record created in a stage enters it (on_enter) without making a transition
        transition = (self._transition(pipe, before_stage, to) or {}) if before_stage else {}
        leaving = self._stage_spec(pipe, before_stage).get("on_leave") if before_stage else None
        actions = [*_as_list(leaving),
                   *_as_list(transition.get("actions")),
                   *_as_list(self._stage_spec(pipe, to).get("on_enter"))]
        if actions:
            self.run_actions(conn, entity, record, actions, actor)
        self.kervan.pm.hook.after_transition(kervan=self.kervan, entity=entity, record=record,
                                             from_stage=before_stage, to_stage=to, actor=actor,
                                             connection=conn)

    def started(self, conn, entity: Entity, record: dict, actor: Actor,
                run_actions: bool = True) -> None:
        """A new record enters its first stage (imported, backdated records run no actions)."""
        field = self.stage_field(entity)
        if field and record.get(field) is not None:
            self.after_move(conn, entity, record, None, actor, run_actions=run_actions)

    def _history(self, conn, entity, record, field, frm, to, actor) -> None:
        table = self.kervan.tables.tables["kv_stage_history"]
        now = dt.datetime.now(dt.UTC)
        last = conn.execute(sa.select(table.c.at).where(
            table.c.entity == entity.key, table.c.record_id == record["id"],
            table.c.field == field).order_by(table.c.id.desc()).limit(1)).scalar()
        since = last or record.get("created_at")
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        seconds = int((now - since).total_seconds()) if since and frm is not None else None
        conn.execute(table.insert().values(
            entity=entity.key, record_id=record["id"], field=field, from_stage=frm,
            to_stage=to, from_category=self.category(entity, frm),
            to_category=self.category(entity, to), user_id=actor.user_id, at=now,
            seconds_in_previous=seconds))

    def stage_history(self, entity_key: str, record_id: int, actor: Actor) -> list[dict]:
        """Who moved the record from where to where, when, and how long it stayed."""
        entity = self.kervan.model.entity(entity_key)
        self.kervan.records.get(entity.key, record_id, actor=actor, with_lines=False)
        table = self.kervan.tables.tables["kv_stage_history"]
        with self.kervan.db.connect() as conn:
            rows = conn.execute(sa.select(table).where(
                table.c.entity == entity.key, table.c.record_id == int(record_id))
                .order_by(table.c.id)).mappings().all()
        return [{"from": r["from_stage"], "to": r["to_stage"],
                 "from_category": r["from_category"], "to_category": r["to_category"],
                 "user_id": r["user_id"],
                 "at": r["at"] if r["at"].tzinfo else r["at"].replace(tzinfo=dt.UTC),
                 "seconds_in_previous": r["seconds_in_previous"]} for r in rows]

    # -- actions ------------------------------------------------------------------------
    def _context(self, entity: Entity, record: dict, actor: Actor) -> Context:
        from engine.web.display import compose_title

        now = dt.datetime.now(ZoneInfo(self.kervan.settings.timezone))
        return Context(record, actor, now, compose_title(entity, record))

    def engine_actor(self, actor: Actor) -> Actor:
        return dataclasses.replace(actor, is_system=True)

    def run_actions(self, conn, entity: Entity, record: dict, actions: list, actor: Actor,
                    context: Context | None = None) -> Context:
        context = context or self._context(entity, record, actor)
        for index, action in enumerate(actions):
            kind = next(iter(action))
            try:
                self._run(conn, entity, record, kind, action[kind], context, actor)
            except RecordError as exc:
                fields = {f"actions.{index}.{kind}.{k}": v for k, v in exc.fields.items()}
                raise TransitionRefused(f"the {kind} action of {entity.key} failed, so nothing "
                                        f"was changed: {exc.message}", fields) from None
        return context

    def _run(self, conn, entity, record, kind, spec, context: Context, actor: Actor) -> None:
        records = self.kervan.records
        engine_actor = self.engine_actor(actor)
        if kind == "set":
            current = records.get(entity.key, record["id"], conn=conn, with_lines=False)
            records.update(entity.key, record["id"], context.resolve(spec),
                           version=current["version"], actor=engine_actor, conn=conn)
        elif kind == "create":
            key = spec.get("key") or spec.get("entity") or spec.get("template")
            context.created[key] = self.create(
                conn, spec, context, engine_actor)
        elif kind == "task":
            self._task(conn, entity, record, spec, context, engine_actor)
        elif kind == "notify":
            self._notify(conn, entity, record, spec, context)
        elif kind == "transition":
            self._transition_related(conn, entity, record, spec, engine_actor)
        elif kind == "hook":
            self.kervan.pm.hook.workflow_action(kervan=self.kervan, name=spec, entity=entity,
                                                record=record, actor=actor, connection=conn)
        else:
            raise RecordError(f"unknown action {kind!r}")

    def create(self, conn, spec: dict, context: Context, actor: Actor) -> int:
        """Create a record from a mapping and, optionally, a template's lines and tasks."""
        template = {}
        if spec.get("template"):
            template = self.kervan.model.documents.get("templates", {})[spec["template"]]
        target = spec.get("entity") or template.get("entity")
        values = {**context.resolve(template.get("values") or {}),
                  **context.resolve(spec.get("values") or {})}
        for field_key, lines in (template.get("lines") or {}).items():
            values[field_key] = [context.resolve(line) for line in lines]
        created = self.kervan.records.create(target, values, actor=actor, conn=conn)
        target_entity = self.kervan.model.entity(target)
        for task in template.get("tasks") or []:
            self._task(conn, target_entity, created, task, context, actor)
        return created["id"]

    def _task(self, conn, entity, record, spec, context: Context, actor: Actor) -> None:
        task_entity = self.kervan.model.entity(spec.get("entity", "task"))
        link = next((f.key for f in task_entity.fields.values()
                     if f.type == "link" and f.target == entity.key), None)
        title_field = spec.get("title_field") or next(iter(task_entity.title_fields()), "subject")
        values = {title_field: context.resolve(spec.get("subject") or spec.get("title"))}
        if link:
            values[link] = record["id"]
        days = spec.get("due_in_days")
        due_field = spec.get("due_field") or next(
            (k for k, f in task_entity.fields.items() if k.startswith("due") and f.type == "date"),
            None)
        if days is not None and due_field:
            values[due_field] = context.local_now.date() + dt.timedelta(days=int(days))
        owner = self._assignee(spec.get("assign", "owner"), record, actor)
        if owner:
            values["owner"] = owner
        for key, value in (spec.get("values") or {}).items():
            values[key] = context.resolve(value)
        self.kervan.records.create(task_entity.key, values, actor=actor, conn=conn)

    def _assignee(self, rule: str, record: dict, actor: Actor) -> int | None:
        if rule == "owner":
            return record.get("owner") or actor.user_id
        if rule == "actor":
            return actor.user_id
        if rule.startswith("user:"):
            user = self.kervan.users.by_username(rule[5:])
            return user.id if user else None
        if rule.startswith("role:"):
            users = [u for u in self.kervan.users.all() if rule[5:] in u.roles and u.active]
            return users[0].id if users else None
        return None

    def _notify(self, conn, entity, record, spec, context: Context) -> None:
        users = {u.id for u in self.kervan.users.all()
                 if u.active and (u.username in _as_list(spec.get("users"))
                                  or set(u.roles) & set(_as_list(spec.get("roles"))))}
        if spec.get("owner") and record.get("owner"):
            users.add(record["owner"])
        message = context.resolve(spec.get("message") or "{title}")
        table = self.kervan.tables.tables["kv_notification"]
        now = dt.datetime.now(dt.UTC)
        if users:
            conn.execute(table.insert(), [{"user_id": u, "entity": entity.key,
                                           "record_id": record["id"], "message": message,
                                           "created_at": now} for u in sorted(users)])

    def _transition_related(self, conn, entity, record, spec, actor: Actor) -> None:
        link = entity.fields[spec["link"]]
        target_id = record.get(link.key)
        if target_id is None:
            if spec.get("optional", True):
                return
            raise RecordError(f"{entity.key}.{link.key} is empty")
        self.transition(link.target, target_id, spec["to"], actor, conn=conn)

    # -- the API's door -------------------------------------------------------------------
    def transition(self, entity_key: str, record_id: int, to: str, actor: Actor,
                   version: int | None = None, conn=None) -> dict:
        """Move a record to a stage through the record service (guards and actions apply)."""
        entity = self.kervan.model.entity(entity_key)
        field = self.stage_field(entity)
        if field is None:
            raise ValidationFailed(entity.key, {"to": f"{entity.key} has no stages"})
        if to not in entity.fields[field].option_keys:
            stages = ", ".join(entity.fields[field].option_keys)
            raise ValidationFailed(entity.key, {"to": f"{to!r} is not a stage of {entity.key}: "
                                                      f"{stages}"})
        records = self.kervan.records
        with records.transaction(conn) as c:
            current = records.get(entity.key, record_id, conn=c, with_lines=False, actor=actor)
            if current.get(field) == to:
                return current
            return records.update(entity.key, record_id, {field: to},
                                  version=version if version is not None else current["version"],
                                  actor=actor, conn=c)
