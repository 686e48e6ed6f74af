"""The studio: admins change metadata in the app — validated, previewed, versioned, revertible.

Every change is a YAML overlay fragment (the same format as a pack or a metadata folder,
with kinds at the top: `entities:`, `pipelines:`, …).  One path for all of them:
validate (the same resolver as `kervan validate`) → preview (the schema plan in words and
a diff of the metadata) → apply (schema sync, then a revision row) → every process picks
it up.  A revert deactivates a revision; nothing is dropped, so a removed field comes back
with its values when the change is applied again.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
from dataclasses import dataclass

import sqlalchemy as sa
import yaml

from .definitions.layers import layer_from_overlay_text
from .definitions.model import Model
from .definitions.problems import Problem
from .definitions.yamlsource import YamlProblem, load_yaml_text, plain
from .layerstate import LayerState, bump_version
from .records.actor import Actor
from .records.errors import RecordError
from .storage.schema_sync import Plan, apply_plan, plan_sync

NAME = "studio"


class StudioRefused(RecordError):
    code, status = "studio_refused", 422

    def __init__(self, message: str, problems: list[Problem] | None = None,
                 plan: Plan | None = None):
        fields = {}
        for problem in problems or []:
            where = f"line {problem.origin.line}" if problem.origin else ""
            fields[problem.key] = f"{problem.message}" + (f" ({where})" if where else "")
        for step in (plan.refused if plan else []):
            fields[f"{step.table}.{step.column}"] = step.detail
        super().__init__(message, fields)
        self.problems = problems or []


@dataclass
class Preview:
    plan: Plan
    diff: str
    model: Model

    def to_json(self) -> dict:
        return {"valid": True, "plan": self.plan.lines(),
                "changes": [s.describe() for s in self.plan.changes], "diff": self.diff}


def _dump(documents: dict) -> list[str]:
    return yaml.safe_dump(documents, allow_unicode=True, sort_keys=True,
                          default_flow_style=False).splitlines(keepends=True)


def metadata_diff(before: Model, after: Model) -> str:
    """A readable unified diff of the resolved metadata, kind by kind."""
    out = []
    kinds = sorted(set(before.documents) | set(after.documents))
    for kind in kinds:
        old, new = before.documents.get(kind, {}), after.documents.get(kind, {})
        for key in sorted(set(old) | set(new)):
            if old.get(key) == new.get(key):
                continue
            out.extend(difflib.unified_diff(
                _dump({key: old[key]}) if key in old else [],
                _dump({key: new[key]}) if key in new else [],
                fromfile=f"{kind}/{key} (before)", tofile=f"{kind}/{key} (after)", n=2))
    return "".join(out)


class Studio:
    def __init__(self, kervan):
        self.kervan = kervan

    def _table(self) -> sa.Table:
        return self.kervan.tables.tables["kv_revision"]

    def _candidate(self, state: LayerState, text: str | None = None):
        extra = []
        if text is not None:
            layer, problems = layer_from_overlay_text(text, NAME)
            if problems:
                return None, problems
            extra.append(layer)
        return self.kervan.resolve(state, extra_layers=extra)

    def _check_text(self, text: str) -> None:
        if not isinstance(text, str) or not text.strip():
            raise StudioRefused("the change is empty: send a YAML overlay such as "
                                "`entities: {lead: {fields: {whatsapp: {type: phone}}}}`")
        try:
            data = load_yaml_text(text, f"{NAME}.yaml")
        except YamlProblem as exc:
            raise StudioRefused("the YAML cannot be read",
                                [Problem(exc.origin, NAME, exc.message)]) from None
        if not isinstance(data, dict):
            raise StudioRefused("an overlay is a mapping of kinds (entities, pipelines, …)")

    def preview(self, text: str) -> Preview:
        """Validate and plan a change without applying it."""
        self._check_text(text)
        state = self.kervan._read_state()
        before, problems = self.kervan.resolve(state)
        if problems:
            raise StudioRefused("the current metadata has problems; fix them first", problems)
        after, problems = self._candidate(state, text)
        if problems:
            raise StudioRefused(f"the change is invalid: {len(problems)} problem(s)", problems)
        plan = plan_sync(self.kervan.db, after)
        if plan.refused:
            raise StudioRefused("the change could lose data and was refused", plan=plan)
        return Preview(plan=plan, diff=metadata_diff(before, after), model=after)

    def apply(self, text: str, message: str, actor: Actor, kind: str = "apply") -> dict:
        """Validate, preview, migrate and store the change as a revision."""
        if not (message or "").strip():
            raise StudioRefused("say what the change is for", problems=[
                Problem(None, "message", "is required")])
        preview = self.preview(text)
        apply_plan(self.kervan.db, preview.model, preview.plan)
        with self.kervan.records.transaction() as conn:
            revision = conn.execute(self._table().insert().values(
                kind=kind, author_id=actor.user_id, at=dt.datetime.now(dt.UTC),
                message=message.strip(), fragment=text, diff=preview.diff,
                plan=json.dumps(preview.plan.lines()), active=True, target=None)
                .returning(self._table().c.id)).scalar_one()
            bump_version(conn)
        self.kervan.refresh()
        return self.revision(revision)

    def revert(self, revision_id: int, actor: Actor, message: str | None = None) -> dict:
        """Undo a revision (or a revert): later revisions stay; nothing is dropped."""
        row = self._row(revision_id)
        table = self._table()
        state = self.kervan._read_state()
        before, _ = self.kervan.resolve(state)
        if row["kind"] == "revert":
            target = self._row(row["target"])
            activate, target_id = True, target["id"]
        else:
            if not row["active"]:
                raise StudioRefused(f"revision {revision_id} is already reverted")
            activate, target_id = False, row["id"]
        fragments = tuple((i, t) for i, t in state.fragments if i != target_id)
        if activate:
            fragments = tuple(sorted([*fragments, (target_id, self._row(target_id)["fragment"])]))
        after, problems = self.kervan.resolve(LayerState(state.version, state.packs, fragments))
        if problems:
            raise StudioRefused(f"reverting revision {revision_id} would leave invalid metadata",
                                problems)
        plan = plan_sync(self.kervan.db, after)
        if plan.refused:
            raise StudioRefused("the revert could lose data and was refused", plan=plan)
        apply_plan(self.kervan.db, after, plan)
        diff = metadata_diff(before, after)
        with self.kervan.records.transaction() as conn:
            conn.execute(table.update().where(table.c.id == target_id).values(active=activate))
            new_id = conn.execute(table.insert().values(
                kind="revert", author_id=actor.user_id, at=dt.datetime.now(dt.UTC),
                message=message or f"revert revision {revision_id}", fragment=None, diff=diff,
                plan=json.dumps(plan.lines()), active=True, target=revision_id)
                .returning(table.c.id)).scalar_one()
            bump_version(conn)
        self.kervan.refresh()
        return self.revision(new_id)

    def _row(self, revision_id: int):
        table = self._table()
        with self.kervan.db.connect() as conn:
            row = conn.execute(sa.select(table).where(table.c.id == revision_id)).mappings().first()
        if row is None:
            from .records.errors import NotFound

            raise NotFound("revision", revision_id)
        return row

    def _json(self, row, with_diff: bool) -> dict:
        author = self.kervan.users.get(row["author_id"]).username if row["author_id"] else None
        at = row["at"] if row["at"].tzinfo else row["at"].replace(tzinfo=dt.UTC)
        out = {"id": row["id"], "kind": row["kind"], "author": author, "at": at.isoformat(),
               "message": row["message"], "active": bool(row["active"]), "target": row["target"],
               "plan": json.loads(row["plan"] or "[]")}
        if with_diff:
            out["diff"] = row["diff"]
            out["overlay"] = row["fragment"]
        return out

    def revision(self, revision_id: int) -> dict:
        return self._json(self._row(revision_id), with_diff=True)

    def revisions(self) -> list[dict]:
        table = self._table()
        with self.kervan.db.connect() as conn:
            rows = conn.execute(sa.select(table).order_by(table.c.id.desc())).mappings().all()
        return [self._json(row, with_diff=False) for row in rows]

    def export(self) -> str:
        """The active admin overrides merged into one overlay, to commit or make a pack of."""
        merged: dict = {}
        for _id, text in self.kervan._read_state().fragments:
            _deep_merge(merged, plain(load_yaml_text(text, NAME)) or {})
        header = "# Kervan admin overrides, exported " + dt.datetime.now(dt.UTC).strftime(
            "%Y-%m-%d %H:%M UTC") + "\n"
        return header + (yaml.safe_dump(merged, allow_unicode=True, sort_keys=False)
                         if merged else "{}\n")


def _deep_merge(base: dict, overlay: dict) -> None:
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) \
                and not value.get("_replace") and not value.get("_delete"):
            _deep_merge(base[key], value)
        else:
            base[key] = value
