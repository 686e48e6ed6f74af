"""Dashboard, global search, kanban, calendar, attachments and link lookups."""

from __future__ import annotations

import datetime as dt
import hashlib
import mimetypes
from decimal import Decimal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import (
    Blueprint,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_login import login_required
from werkzeug.datastructures import MultiDict
from werkzeug.utils import secure_filename

from engine.definitions.model import Entity
from engine.i18n.calendar import calendar_range
from engine.query.listing import ListRequest
from engine.query.params import parse_list_args
from engine.records.errors import RecordError, ValidationFailed
from engine.security.permissions import PermissionDenied
from engine.storage.database import reading

from .context import current_actor, current_language, kervan, text_in
from .display import Titles, compose_title, format_money, option_label
from .listview import expand_ui_args, list_columns
from .record_view import recent_records
from .ui import entity_or_404

bp = Blueprint("ui_extra", __name__)

ALLOWED_TYPES = {
    "application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp", "text/plain",
    "text/csv", "application/zip", "application/vnd.ms-excel", "application/msword",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text", "application/vnd.oasis.opendocument.spreadsheet",
    "text/vcard", "text/calendar", "message/rfc822",
}
#: The first bytes of types whose content we check against the name.
SIGNATURES = {"application/pdf": [b"%PDF"], "image/png": [b"\x89PNG"],
              "image/jpeg": [b"\xff\xd8\xff"], "image/gif": [b"GIF8"],
              "application/zip": [b"PK"]}


def readable(actor, entity: Entity) -> bool:
    return kervan().permissions.scope(actor, entity, "read") != "none"


@bp.app_template_global()
def navigation():
    """Modules and their entities, as the guides group them, for the signed-in user."""
    actor = current_actor()
    modules: dict[str, list[Entity]] = {}
    for entity in sorted(kervan().model.entities.values(), key=lambda e: (e.order, e.key)):
        if entity.child_of or not readable(actor, entity):
            continue
        modules.setdefault(entity.module or "other", []).append(entity)
    return modules


MODULE_LABELS = {"sales": "Sales", "operations": "Operations", "stock": "Stock & warehouse",
                 "finance": "Finance", "marketing": "Marketing", "support": "Support",
                 "organisation": "Organisation", "settings": "Settings", "other": "Other"}


@bp.app_template_global()
def module_label(key: str) -> str:
    return _(MODULE_LABELS.get(key, key.replace("_", " ").capitalize()))


@bp.get("/")
@login_required
def dashboard():
    actor = current_actor()
    model = kervan().model
    widgets = []
    for spec in model.documents.get("dashboards", {}).get("home", {}).get("widgets", []):
        widget = _widget(spec, actor)
        if widget:
            widgets.append(widget)
    return render_template("dashboard.html", widgets=widgets, recent=recent_records(actor),
                           favourites=favourite_records(actor))


def _widget(spec: dict, actor) -> dict | None:
    entity = kervan().model.entities.get(spec.get("entity", ""))
    if entity is None or not readable(actor, entity):
        return None
    args = MultiDict(spec.get("filter") or {})
    if spec.get("mine"):
        args["owner"] = "me"
    if spec.get("sort"):
        args["_sort"] = spec["sort"]
    request_ = parse_list_args(entity, expand_ui_args(entity, args, actor))
    request_.size = spec.get("limit", 8)
    page = kervan().records.list(entity.key, request_, actor=actor)
    widget = {"spec": spec, "entity": entity, "label": text_in(spec.get("label")),
              "kind": spec.get("kind", "list"), "page": page, "titles": Titles()}
    if widget["kind"] == "sum":
        widget["value"] = _sum(entity, request_, spec["field"], actor)
    hidden = kervan().permissions.field_access(actor, entity).hidden
    widget["columns"] = [c for c in list_columns(entity, hidden)][:4]
    widget["titles"].load_rows(entity, page.rows, [c.field.key for c in widget["columns"]])
    widget["link"] = url_for("ui.list_view", entity_key=entity.key) + "?" + "&".join(
        f"{k}={v}" for k, v in args.items())
    return widget


def _sum(entity: Entity, request_: ListRequest, field_key: str, actor) -> list[str]:
    """Totals of a money field per currency (or of a number), within the actor's scope."""
    from engine.query.listing import build_select

    k = kervan()
    table = k.records.table(entity)
    fld = entity.fields[field_key]
    scope = k.permissions.row_condition(actor, entity, table)
    base = build_select(entity, table, request_, scope, dialect=k.db.dialect.name).subquery()
    with reading(k.db) as conn:
        if fld.type == "money":
            rows = conn.execute(sa.select(base.c[f"{field_key}__currency"],
                                          sa.func.sum(base.c[field_key]))
                                .group_by(base.c[f"{field_key}__currency"])).all()
            return [format_money(Decimal(str(total or 0)), currency or "TRY")
                    for currency, total in rows if total]
        total = conn.execute(sa.select(sa.func.sum(base.c[field_key]))).scalar()
        return [str(total or 0)]


def favourite_records(actor) -> list[tuple[Entity, int, str]]:
    table = kervan().tables.tables["kv_favourite"]
    with reading(kervan().db) as conn:
        rows = conn.execute(sa.select(table.c.entity, table.c.record_id)
                            .where(table.c.user_id == actor.user_id)
                            .order_by(table.c.created_at.desc()).limit(20)).all()
    titles = Titles()
    out = []
    readable = {key: kervan().records.readable_ids(key, [r for e, r in rows if e == key], actor)
                for key in {e for e, _ in rows}}
    for entity_key, record_id in rows:
        entity = kervan().model.entities.get(entity_key)
        if entity is not None and record_id in readable.get(entity_key, ()):
            out.append((entity, record_id, titles.title(entity_key, record_id)))
    return out


@bp.get("/search")
@login_required
def search():
    """One box for names, phones, e-mails, numbers, across every entity, grouped."""
    text = request.args.get("q", "").strip()
    actor = current_actor()
    groups = []
    if len(text) >= 2:
        groups = [(entity, page.rows, bool(page.next))
                  for entity, page in kervan().records.search_all(text, actor)]
    if request.args.get("_format") == "json":
        return jsonify({"groups": [{"entity": e.key, "label": text_in(e.plural), "records": [
            {"id": r["id"], "title": compose_title(e, r),
             "url": url_for("ui.detail", entity_key=e.key, record_id=r["id"])} for r in rows]}
            for e, rows, _more in groups]})
    return render_template("search.html", text=text, groups=groups, compose_title=compose_title)


@bp.get("/<entity_key>/lookup")
@login_required
def lookup(entity_key: str):
    """Search-as-you-type for link pickers: [{id, title}] the user may read."""
    entity = kervan().model.entities.get(entity_key)
    if entity is None or entity.child_of:  # lines are reached through their document
        abort(404)
    text = request.args.get("q", "").strip()
    req = ListRequest(search=text or None, size=15, count=False,
                      sort=parse_list_args(entity, MultiDict()).sort)
    try:
        page = kervan().records.list(entity.key, req, actor=current_actor())
    except PermissionDenied:
        return jsonify([])
    return jsonify([{"id": r["id"], "title": compose_title(entity, r)} for r in page.rows])


@bp.get("/<entity_key>/kanban")
@login_required
def kanban(entity_key: str):
    entity = entity_or_404(entity_key)
    if not entity.stage_field:
        abort(404)
    actor = current_actor()
    stage = entity.fields[entity.stage_field]
    hidden = kervan().permissions.field_access(actor, entity).hidden
    card_fields = [c.field.key for c in list_columns(entity, hidden)
                   if c.field.key not in (stage.key,) and c.field.key not in entity.title_fields()
                   ][:3]
    total_field = entity.list_spec.get("sum")
    if total_field in hidden:
        total_field = None
    columns = []
    titles = Titles()
    for option in stage.options:
        args = MultiDict(request.args)
        args[stage.key] = option.key
        req = parse_list_args(entity, args)
        req.size = 50
        page = kervan().records.list(entity.key, req, actor=actor)
        titles.load_rows(entity, page.rows, card_fields)
        columns.append({"option": option, "label": text_in(option.label), "page": page,
                        "total": _sum(entity, req, total_field, actor) if total_field else []})
    return render_template("kanban.html", entity=entity, stage=stage, columns=columns,
                           card_fields=card_fields, titles=titles, compose_title=compose_title)


@bp.post("/<entity_key>/<int:record_id>/move")
@login_required
def move(entity_key: str, record_id: int):
    """Move a card: a stage change through the record service; refusals say why."""
    entity = entity_or_404(entity_key)
    if not entity.stage_field:
        abort(404)
    body = request.get_json(silent=True) or request.form
    try:
        record = kervan().records.update(entity.key, record_id,
                                         {entity.stage_field: body.get("to")},
                                         version=body.get("version"), actor=current_actor())
    except RecordError as exc:
        if isinstance(exc, ValidationFailed):  # name the fields the move still needs
            reason = "; ".join(
                f"{text_in(entity.fields[k].label) if k in entity.fields else k}: {v}"
                for k, v in exc.fields.items())
        else:
            reason = exc.message
        return jsonify({"error": {"code": exc.code, "message": exc.message,
                                  "reason": reason or exc.message,
                                  "fields": exc.fields}}), exc.status
    stage = entity.fields[entity.stage_field]
    return jsonify({"id": record["id"], "version": record["version"],
                    "stage": record[stage.key],
                    "label": option_label(stage, record[stage.key])})


@bp.get("/calendar")
@login_required
def calendar_view():
    """Tasks, meetings and calls by day, week or month, for everyone or one user."""
    actor = current_actor()
    zone = ZoneInfo(kervan().settings.timezone)
    view = request.args.get("view", "month")
    if view not in ("day", "week", "month"):
        view = "month"
    try:
        day = dt.date.fromisoformat(request.args.get("date", ""))
    except ValueError:
        day = dt.datetime.now(zone).date()
    shown = calendar_range(view, day, current_language())
    start, end = shown.start, shown.end
    user = request.args.get("user", "")
    events: dict[dt.date, list[dict]] = {}
    sources = []
    for entity in kervan().model.entities.values():
        spec = entity.calendar_spec
        if not spec or not readable(actor, entity):
            continue
        sources.append(entity)
        fld = entity.fields[spec["start"]]
        args = MultiDict()
        if fld.type == "datetime":
            args[f"{fld.key}__gte"] = dt.datetime.combine(start, dt.time(), zone).isoformat()
            args[f"{fld.key}__lt"] = dt.datetime.combine(end, dt.time(), zone).isoformat()
        else:
            args[f"{fld.key}__gte"] = start.isoformat()
            args[f"{fld.key}__lt"] = end.isoformat()
        if user.isdigit():
            args["owner"] = user
        req = parse_list_args(entity, args)
        req.size = 500
        req.sort = parse_list_args(entity, MultiDict({"_sort": fld.key})).sort
        page = kervan().records.list(entity.key, req, actor=actor)
        for record in page.rows:
            moment = record[fld.key]
            when = moment.astimezone(zone) if isinstance(moment, dt.datetime) else None
            date = when.date() if when else moment
            events.setdefault(date, []).append({
                "entity": entity, "record": record, "title": compose_title(entity, record),
                "time": f"{when:%H:%M}" if when else "",
                "url": url_for("ui.detail", entity_key=entity.key, record_id=record["id"])})
    days, previous, following = shown.days, shown.previous, shown.following
    from .ui import active_users

    return render_template("calendar.html", view=view, day=day, days=days, events=events,
                           sources=sources, users=active_users(), user=user,
                           previous=previous, following=following,
                           today=dt.datetime.now(zone).date())


@bp.post("/<entity_key>/<int:record_id>/files")
@login_required
def upload(entity_key: str, record_id: int):
    entity = entity_or_404(entity_key)
    actor = current_actor()
    record = kervan().records.get(entity.key, record_id, actor=actor, with_lines=False)
    kervan().permissions.require_record(actor, entity, "edit", record)
    upload_ = request.files.get("file")
    if upload_ is None or not upload_.filename:
        flash(_("Choose a file to upload."), "warning")
        return redirect(url_for("ui.detail", entity_key=entity.key, record_id=record_id,
                                tab="files"))
    try:
        store_file(upload_, entity.key, record_id, actor)
    except RecordError as exc:
        flash(exc.message, "danger")
    else:
        flash(_("File uploaded."), "success")
    return redirect(url_for("ui.detail", entity_key=entity.key, record_id=record_id,
                            tab="files"))


def store_file(upload_, entity_key: str | None, record_id: int | None, actor) -> int:
    """Check and store an uploaded file under the instance folder; returns its id."""
    name = secure_filename(upload_.filename) or "file"
    data = upload_.read()
    limit = kervan().settings.max_upload_mb * 1024 * 1024
    if len(data) > limit:
        raise RecordError(_("The file is larger than %(mb)s MB.",
                            mb=kervan().settings.max_upload_mb))
    if not data:
        raise RecordError(_("The file is empty."))
    guessed = mimetypes.guess_type(upload_.filename)[0] or "application/octet-stream"
    if guessed not in ALLOWED_TYPES:
        raise RecordError(_("Files of type %(type)s are not accepted.", type=guessed))
    signatures = SIGNATURES.get(guessed)
    if signatures and not any(data.startswith(s) for s in signatures):
        raise RecordError(_("The file's content does not match its name (%(name)s).",
                            name=name))
    digest = hashlib.sha256(data).hexdigest()
    folder = kervan().settings.instance / "files" / digest[:2]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / digest
    if not path.exists():
        path.write_bytes(data)
    table = kervan().tables.tables["kv_file"]
    with kervan().records.transaction() as conn:
        return conn.execute(table.insert().values(
            entity=entity_key, record_id=record_id, filename=name, content_type=guessed,
            size=len(data), sha256=digest,
            path=str(path.relative_to(kervan().settings.instance)),
            created_at=dt.datetime.now(dt.UTC), created_by=actor.user_id)
            .returning(table.c.id)).scalar_one()


def _file_row(file_id: int):
    table = kervan().tables.tables["kv_file"]
    with reading(kervan().db) as conn:
        row = conn.execute(sa.select(table).where(table.c.id == file_id)).mappings().first()
    if row is None:
        abort(404)
    actor = current_actor()
    if row["entity"]:
        entity = kervan().model.entities.get(row["entity"])
        if entity is None:
            abort(404)
        kervan().records.get(entity.key, row["record_id"], actor=actor, with_lines=False)
    elif row["created_by"] != actor.user_id and not kervan().permissions.is_admin(actor):
        abort(404)  # not yet attached to a record: only its uploader sees it
    return row


@bp.get("/files/<int:file_id>")
@login_required
def download(file_id: int):
    row = _file_row(file_id)
    return send_file(kervan().settings.instance / row["path"], mimetype=row["content_type"],
                     as_attachment=True, download_name=row["filename"])


@bp.post("/files/<int:file_id>/delete")
@login_required
def delete_file(file_id: int):
    row = _file_row(file_id)
    actor = current_actor()
    entity = kervan().model.entity(row["entity"])
    record = kervan().records.get(entity.key, row["record_id"], actor=actor, with_lines=False)
    kervan().permissions.require_record(actor, entity, "edit", record)
    table = kervan().tables.tables["kv_file"]
    with kervan().records.transaction() as conn:
        conn.execute(table.delete().where(table.c.id == file_id))
    flash(_("File deleted."), "success")
    return redirect(url_for("ui.detail", entity_key=entity.key, record_id=row["record_id"],
                            tab="files"))


@bp.app_template_global()
def notifications() -> dict:
    """The signed-in user's latest notifications (deal won, task assigned…), with the
    number of unread ones on each row: one query (a user without any has none unread)."""
    from .display import format_datetime

    actor = current_actor()
    table = kervan().tables.tables["kv_notification"]
    unread = sa.select(sa.func.count()).select_from(table).where(
        table.c.user_id == actor.user_id, table.c.read_at.is_(None)).scalar_subquery()
    with reading(kervan().db) as conn:
        rows = conn.execute(sa.select(table, unread.label("unread"))
                            .where(table.c.user_id == actor.user_id)
                            .order_by(table.c.id.desc()).limit(8)).mappings().all()
    items = [{"id": r["id"], "message": r["message"], "read_at": r["read_at"],
              "when": format_datetime(r["created_at"] if r["created_at"].tzinfo else
                                      r["created_at"].replace(tzinfo=dt.UTC))} for r in rows]
    return {"entries": items, "unread": rows[0]["unread"] if rows else 0}


@bp.get("/notifications/<int:note_id>")
@login_required
def open_notification(note_id: int):
    """Mark a notification read and open the record it is about."""
    table = kervan().tables.tables["kv_notification"]
    actor = current_actor()
    with kervan().records.transaction() as conn:
        row = conn.execute(sa.select(table).where(table.c.id == note_id,
                                                  table.c.user_id == actor.user_id)
                           ).mappings().first()
        if row is None:
            abort(404)
        conn.execute(table.update().where(table.c.id == note_id)
                     .values(read_at=dt.datetime.now(dt.UTC)))
    if row["entity"] and row["record_id"] and row["entity"] in kervan().model.entities:
        return redirect(url_for("ui.detail", entity_key=row["entity"],
                                record_id=row["record_id"]))
    return redirect(url_for("ui_extra.dashboard"))
