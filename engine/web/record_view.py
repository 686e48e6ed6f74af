"""The detail screen's data: header, tabs, related lists, history and files."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from engine.definitions.model import Entity, Field
from engine.definitions.resolve import related_problems
from engine.query.params import parse_list_args
from engine.records.actor import Actor
from engine.security.permissions import PermissionDenied
from engine.storage.database import reading

from .context import kervan, text_in
from .display import Titles, compose_title, display, format_datetime, option_label
from .listview import list_columns

RELATED_LIMIT = 10


@dataclass
class Related:
    entity: Entity
    link: Field
    label: str
    rows: list[dict]
    more: bool
    count: int | None
    columns: list
    can_create: bool


@dataclass
class HistoryRow:
    at: str
    who: str
    action: str
    field: str
    old: str
    new: str


@dataclass
class Tab:
    key: str
    label: str
    sections: list[list[str]] = field(default_factory=list)
    related: list[Related] = field(default_factory=list)
    builtin: str | None = None


@dataclass
class DetailView:
    entity: Entity
    record: dict
    title: str
    header: list[str]
    tabs: list[Tab]
    active: str
    titles: Titles
    history: list[HistoryRow]  # read only when a history tab is the active one
    files: list[dict]  # read only when the files tab is the active one
    file_count: int  # every tab's header shows it
    favourite: bool
    can_edit: bool
    can_delete: bool
    stage: Field | None
    actions: list[dict] = field(default_factory=list)

    def cell(self, key: str, record: dict | None = None, entity: Entity | None = None) -> str:
        return display(entity or self.entity, key, record or self.record, self.titles)


def _default_tabs(entity: Entity) -> list[dict]:
    keys = [k for k, f in entity.user_fields.items() if f.type != "child_table"]
    tabs = [{"key": "general", "sections": [keys]}]
    related = [f"{e.key}.{f.key}" for e, f in kervan().model.links_to(entity.key)
               if not e.child_of]
    if related:
        tabs.append({"key": "related", "related": related})
    return tabs + [{"key": "files", "builtin": "files"}, {"key": "history", "builtin": "history"}]


TAB_LABELS = {"general": "General", "related": "Related", "files": "Files",
              "history": "History", "stage_history": "Stage history"}


def build_detail(entity: Entity, record_id: int, actor: Actor, active: str | None) -> DetailView:
    """The detail screen. Only the active tab is rendered, so only its related lists, its
    history or its files are read; every tab's header needs just the number of files."""
    k = kervan()
    record = k.records.get(entity.key, record_id, actor=actor)
    hidden = k.permissions.field_access(actor, entity).hidden
    titles = Titles()
    titles.load_rows(entity, [record], list(entity.fields))
    spec_tabs = entity.detail_spec.get("tabs") or _default_tabs(entity)
    if not any(spec["key"] == active for spec in spec_tabs):
        active = spec_tabs[0]["key"]
    builtins = {spec.get("builtin") for spec in spec_tabs if spec["key"] == active}
    tabs = []
    for spec in spec_tabs:
        label = text_in(spec.get("label")) or _(TAB_LABELS.get(spec["key"],
                                                               spec["key"].replace("_", " ")
                                                               .capitalize()))
        tab = Tab(key=spec["key"], label=label, builtin=spec.get("builtin"),
                  sections=[[f for f in section if f not in hidden and f in entity.fields]
                            for section in spec.get("sections", [])])
        if spec["key"] == active:
            tab.related = [related for ref in spec.get("related", [])
                           if (related := _related(entity, record, ref, actor, titles))
                           is not None]
        tabs.append(tab)
    placed = {k for spec in spec_tabs for section in spec.get("sections", []) for k in section}
    rest = [k for k, f in entity.user_fields.items()
            if k not in placed and k not in hidden and f.type != "child_table"]
    first = next((t for t in tabs if t.sections), None)
    if rest and first is not None:  # fields added by a pack or the studio show at once
        first.sections.append(rest)
    header = [f for f in entity.detail_spec.get("header", []) if f in entity.fields
              and f not in hidden]
    stage = entity.fields.get(entity.stage_field) if entity.stage_field else None
    favourite, file_count = record_marks(actor, entity, record_id)
    return DetailView(
        entity=entity, record=record, title=compose_title(entity, record), header=header,
        tabs=tabs, active=active, titles=titles,
        history=history_rows(entity, record_id, actor, titles)
        if builtins & {"history", "stage_history"} else [],
        files=record_files(entity, record_id) if "files" in builtins else [],
        file_count=file_count, favourite=favourite,
        can_edit=k.permissions.allows_record(actor, entity, "edit", record),
        can_delete=entity.delete_policy != "never"
        and k.permissions.allows_record(actor, entity, "delete", record),
        stage=stage, actions=record_actions(entity, record, actor))


def record_actions(entity: Entity, record: dict, actor: Actor) -> list[dict]:
    """Buttons metadata gives a record: conversions, print, send by e-mail."""
    from flask import url_for

    from engine.query.conditions import evaluate

    k = kervan()
    actions = []
    can_edit = k.permissions.allows_record(actor, entity, "edit", record)
    for key, spec in k.model.documents.get("conversions", {}).items():
        if spec["source"] != entity.key or not can_edit:
            continue
        stage = k.workflow.stage_field(entity)
        if spec.get("stage") and stage and record.get(stage) == spec["stage"]:
            continue
        if spec.get("when") and not evaluate(entity, spec["when"], record):
            continue
        actions.append({"key": f"convert-{key}", "label": text_in(spec.get("label"))
                        or _("Convert"), "icon": "bi-arrow-right-circle", "method": "get",
                        "url": url_for("ui.convert", entity_key=entity.key,
                                       record_id=record["id"], conversion=key)})
    if entity.print_spec and k.permissions.scope(actor, entity, "print") != "none":
        actions.append({"key": "print", "label": _("Print"), "icon": "bi-printer",
                        "method": "get", "url": url_for("ui.print_pdf", entity_key=entity.key,
                                                        record_id=record["id"])})
        if entity.print_spec.get("send") and can_edit:
            actions.append({"key": "send", "label": _("Send by e-mail"), "icon": "bi-envelope",
                            "method": "post", "url": url_for(
                                "ui.send_email", entity_key=entity.key, record_id=record["id"])})
    return actions


def _related(entity: Entity, record: dict, ref: str, actor: Actor,
             titles: Titles) -> Related | None:
    k = kervan()
    if related_problems(k.model, entity, ref):
        return None
    other_key, _sep, link_key = ref.partition(".")
    other = k.model.entity(other_key)
    link = other.fields[link_key] if link_key else next(
        f for f in other.fields.values() if f.type == "link" and f.target == entity.key)
    request = parse_list_args(other, MultiDict({link.key: str(record["id"])}))
    request.size = RELATED_LIMIT
    try:
        page = k.records.list(other.key, request, actor=actor)
    except PermissionDenied:
        return None  # a tab the user may not read is left out, not shown empty
    hidden = k.permissions.field_access(actor, other).hidden
    columns = [c for c in list_columns(other, hidden) if c.field.key != link.key][:5]
    titles.load_rows(other, page.rows, [c.field.key for c in columns])  # one query per target
    label = text_in(other.plural)
    if link_key and sum(1 for f in other.fields.values()
                        if f.type == "link" and f.target == entity.key) > 1:
        label = f"{label} ({text_in(link.label)})"
    return Related(entity=other, link=link, label=label, rows=page.rows, more=bool(page.next),
                   count=page.count, columns=columns,
                   can_create=k.permissions.scope(actor, other, "create") != "none")


def history_rows(entity: Entity, record_id: int, actor: Actor, titles: Titles) -> list[HistoryRow]:
    k = kervan()
    rows = []
    for entry in reversed(k.records.history(entity.key, record_id, actor=actor)):
        fld = entity.fields.get(entry["field"]) if entry["field"] else None
        rows.append(HistoryRow(
            at=format_datetime(entry["at"]), who=titles.user(entry["user_id"]) or _("system"),
            action=_action_label(entry["action"]),
            field=text_in(fld.label) if fld else (entry["field"] or ""),
            old=history_value(entity, fld, entry["old"], titles),
            new=history_value(entity, fld, entry["new"], titles)))
    return rows


def _action_label(action: str) -> str:
    return {"create": _("created"), "update": _("changed"), "archive": _("archived"),
            "restore": _("restored"), "delete": _("deleted"),
            "transition": _("moved")}.get(action, action)


def history_value(entity: Entity, fld: Field | None, value, titles: Titles) -> str:
    """An audit value (JSON) in words."""
    if value is None:
        return ""
    if fld is None:
        return ""
    if fld.type == "enum":
        return option_label(fld, value)
    if fld.type == "link":
        return titles.title(fld.target, value)
    if fld.type == "user":
        return titles.user(value)
    if fld.type == "money" and isinstance(value, dict):
        return f"{value.get('amount')} {value.get('currency')}"
    if fld.type == "tags" and isinstance(value, list):
        return ", ".join(value)
    if fld.type == "boolean":
        return _("Yes") if value else _("No")
    return str(value)


def record_files(entity: Entity, record_id: int) -> list[dict]:
    table = kervan().tables.tables["kv_file"]
    with reading(kervan().db) as conn:
        rows = conn.execute(sa.select(table).where(table.c.entity == entity.key,
                                                   table.c.record_id == record_id)
                            .order_by(table.c.id.desc())).mappings().all()
    return [dict(r) for r in rows]


def record_marks(actor: Actor, entity: Entity, record_id: int) -> tuple[bool, int]:
    """Whether the record is the actor's favourite, and how many files it has: one query."""
    favourites, files = kervan().tables.tables["kv_favourite"], kervan().tables.tables["kv_file"]
    favourite = sa.exists().where(favourites.c.user_id == actor.user_id,
                                  favourites.c.entity == entity.key,
                                  favourites.c.record_id == record_id)
    file_count = sa.select(sa.func.count()).select_from(files).where(
        files.c.entity == entity.key, files.c.record_id == record_id).scalar_subquery()
    with reading(kervan().db) as conn:
        row = conn.execute(sa.select(favourite.label("favourite"),
                                     file_count.label("files"))).one()
    return bool(row.favourite), int(row.files)


def record_recent(actor: Actor, entity: Entity, record_id: int) -> None:
    """Remember the view for the user's recently-viewed list."""
    if actor.user_id is None:
        return
    table = kervan().tables.tables["kv_recent"]
    key = (table.c.user_id == actor.user_id, table.c.entity == entity.key,
           table.c.record_id == record_id)
    now = dt.datetime.now(dt.UTC)
    with kervan().records.transaction() as conn:
        if conn.execute(table.update().where(*key).values(viewed_at=now)).rowcount == 0:
            conn.execute(table.insert().values(user_id=actor.user_id, entity=entity.key,
                                               record_id=record_id, viewed_at=now))


def recent_records(actor: Actor, limit: int = 10) -> list[tuple[Entity, int, str]]:
    """The user's recently viewed records that still exist and are still readable."""
    k = kervan()
    table = k.tables.tables["kv_recent"]
    with reading(k.db) as conn:
        rows = conn.execute(sa.select(table.c.entity, table.c.record_id)
                            .where(table.c.user_id == actor.user_id)
                            .order_by(table.c.viewed_at.desc()).limit(limit * 2)).all()
    titles = Titles()
    out = []
    readable = {key: k.records.readable_ids(key, [r for e, r in rows if e == key], actor)
                for key in {e for e, _ in rows}}
    for entity_key, record_id in rows:
        entity = k.model.entities.get(entity_key)
        if entity is None or record_id not in readable.get(entity_key, ()):
            continue
        titles.load(entity_key, [record_id])
        title = titles.title(entity_key, record_id)
        out.append((entity, record_id, title))
        if len(out) >= limit:
            break
    return out
