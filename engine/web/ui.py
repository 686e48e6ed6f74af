"""Generated screens for every entity: list, detail, form and record actions."""

from __future__ import annotations

import csv
import datetime as dt
import io
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_login import login_required
from werkzeug.datastructures import MultiDict

from engine.definitions.model import Entity
from engine.query.listing import MAX_PAGE_SIZE, QueryError
from engine.records.errors import RecordError, ValidationFailed
from engine.storage.database import reading

from .context import current_actor, kervan, text_in
from .display import Titles, compose_title, display, local_time
from .forms import editable_fields, form_sections, read_form, read_lines
from .listview import PAGE_SIZES, PRESETS, build_list_view, preset_label
from .record_view import build_detail, record_recent

bp = Blueprint("ui", __name__)


def entity_or_404(key: str) -> Entity:
    entity = kervan().model.entities.get(key)
    if entity is None or entity.child_of:
        abort(404)
    return entity


@bp.app_template_global()
def url_with(**changes) -> str:
    """The current URL with some query arguments changed (None removes one)."""
    args = MultiDict(request.args)
    for key, value in changes.items():
        args.poplist(key)
        if value not in (None, ""):
            args[key] = value
    query = urlencode(list(args.items(multi=True)))
    return f"{request.path}?{query}" if query else request.path


@bp.app_template_global()
def label_of(labels) -> str:
    return text_in(labels)


@bp.get("/<entity_key>/")
@login_required
def list_view(entity_key: str):
    entity = entity_or_404(entity_key)
    actor = current_actor()
    if entity.singleton:  # company settings: one record, opened directly
        existing = kervan().records.find(entity.key, limit=1)
        if existing:
            return redirect(url_for("ui.detail", entity_key=entity.key,
                                    record_id=existing[0]["id"]))
        return redirect(url_for("ui.create", entity_key=entity.key))
    args = request.args
    try:
        view = build_list_view(entity, args, actor)
    except QueryError as exc:
        flash(_("This list request has a problem: %(details)s", details="; ".join(
            f"{k}: {v}" for k, v in exc.fields.items()) or exc.message), "danger")
        return redirect(request.path)
    return render_template("list.html", view=view, entity=entity, presets=PRESETS,
                           preset_label=preset_label, page_sizes=PAGE_SIZES,
                           saved=saved_searches(entity, actor),
                           can_create=kervan().permissions.scope(actor, entity, "create") != "none",
                           can_export=kervan().permissions.scope(actor, entity, "export") != "none")


@bp.get("/<entity_key>/export.csv")
@login_required
def export_csv(entity_key: str):
    """The filtered list as CSV, every page of it, as text the user sees on screen."""
    entity = entity_or_404(entity_key)
    actor = current_actor()
    args = MultiDict(request.args)
    args.poplist("_next")
    first = build_list_view(entity, args, actor, action="export", size=MAX_PAGE_SIZE)

    def rows():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([c.label for c in first.columns])
        view = first
        while True:
            for record in view.page.rows:
                writer.writerow([view.cell(record, c.field.key) for c in first.columns])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if not view.page.next:
                break
            args["_next"] = view.page.next
            view = build_list_view(entity, args, actor, action="export", size=MAX_PAGE_SIZE)

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M")
    return Response(stream_with_context(rows()), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition":
                             f'attachment; filename="{entity.key}-{stamp}.csv"'})


def saved_searches(entity: Entity, actor) -> list[dict]:
    table = kervan().tables.tables["kv_saved_search"]
    with reading(kervan().db) as conn:
        rows = conn.execute(sa.select(table).where(table.c.user_id == actor.user_id,
                                                   table.c.entity == entity.key)
                            .order_by(table.c.name)).mappings().all()
    return [dict(r) for r in rows]


@bp.post("/<entity_key>/searches")
@login_required
def save_search(entity_key: str):
    entity = entity_or_404(entity_key)
    actor = current_actor()
    name = request.form.get("name", "").strip()[:128]
    query = request.form.get("query", "")
    if not name:
        flash(_("Give the search a name."), "warning")
        return redirect(url_for("ui.list_view", entity_key=entity.key) + "?" + query)
    table = kervan().tables.tables["kv_saved_search"]
    with kervan().records.transaction() as conn:
        conn.execute(table.insert().values(user_id=actor.user_id, entity=entity.key, name=name,
                                           query=query, created_at=dt.datetime.now(dt.UTC)))
    flash(_("Search “%(name)s” saved.", name=name), "success")
    return redirect(url_for("ui.list_view", entity_key=entity.key) + "?" + query)


@bp.post("/<entity_key>/searches/<int:search_id>/delete")
@login_required
def delete_search(entity_key: str, search_id: int):
    entity = entity_or_404(entity_key)
    table = kervan().tables.tables["kv_saved_search"]
    with kervan().records.transaction() as conn:
        conn.execute(table.delete().where(table.c.id == search_id,
                                          table.c.user_id == current_actor().user_id))
    return redirect(url_for("ui.list_view", entity_key=entity.key))


@bp.get("/<entity_key>/<int:record_id>")
@login_required
def detail(entity_key: str, record_id: int):
    entity = entity_or_404(entity_key)
    actor = current_actor()
    view = build_detail(entity, record_id, actor, request.args.get("tab"))
    record_recent(actor, entity, record_id)
    return render_template("detail.html", view=view, entity=entity)


def _form_page(entity: Entity, record: dict | None, values: dict, errors: dict[str, str],
               status: int = 200):
    actor = current_actor()
    hidden = kervan().permissions.field_access(actor, entity).hidden
    editable = set(editable_fields(entity, hidden))
    titles = Titles()
    for key, fld in entity.fields.items():
        if fld.type == "link" and values.get(key):
            titles.load(fld.target, [values.get(key)])
    return render_template("form.html", entity=entity, record=record, values=values,
                           errors=errors, sections=form_sections(entity), editable=editable,
                           hidden=hidden, titles=titles, users=active_users()), status


def active_users() -> list[tuple[int, str]]:
    table = kervan().tables.tables["kv_user"]
    with reading(kervan().db) as conn:
        rows = conn.execute(sa.select(table.c.id, table.c.full_name, table.c.username)
                            .where(table.c.active.is_(True)).order_by(table.c.full_name))
        return [(r.id, r.full_name or r.username) for r in rows]


@bp.route("/<entity_key>/new", methods=["GET", "POST"])
@login_required
def create(entity_key: str):
    entity = entity_or_404(entity_key)
    actor = current_actor()
    kervan().permissions.require(actor, entity, "create")
    if entity.singleton and kervan().records.find(entity.key, limit=1):
        return redirect(url_for("ui.list_view", entity_key=entity.key))
    if request.method == "GET":
        # "add related" pre-fills links (and any other field) from the query string
        values = new_record_defaults(entity, actor)
        values.update({k: v for k, v in request.args.items() if k in entity.user_fields})
        values.setdefault("owner", actor.user_id)
        return _form_page(entity, None, values, {})
    hidden = kervan().permissions.field_access(actor, entity).hidden
    values = read_form(entity, request.form, hidden)
    try:
        attach_uploads(entity, values, actor)
        created = kervan().records.create(entity.key, values, actor=actor)
        claim_uploads(entity, created)
    except ValidationFailed as exc:
        return _form_page(entity, None, _echo(entity, values), exc.fields, 422)
    flash(_("%(entity)s “%(title)s” created.", entity=text_in(entity.label),
            title=compose_title(entity, created)), "success")
    if request.form.get("_action") == "save_new":
        return redirect(url_for("ui.create", entity_key=entity.key))
    return redirect(url_for("ui.detail", entity_key=entity.key, record_id=created["id"]))


@bp.route("/<entity_key>/<int:record_id>/edit", methods=["GET", "POST"])
@login_required
def edit(entity_key: str, record_id: int):
    entity = entity_or_404(entity_key)
    actor = current_actor()
    record = kervan().records.get(entity.key, record_id, actor=actor)
    kervan().permissions.require_record(actor, entity, "edit", record)
    if request.method == "GET":
        return _form_page(entity, record, record, {})
    hidden = kervan().permissions.field_access(actor, entity).hidden
    values = read_form(entity, request.form, hidden)
    try:
        attach_uploads(entity, values, actor)
        updated = kervan().records.update(entity.key, record_id, values,
                                          version=request.form.get("version"), actor=actor)
        claim_uploads(entity, updated)
    except ValidationFailed as exc:
        return _form_page(entity, record, {**record, **_echo(entity, values)}, exc.fields, 422)
    except RecordError as exc:
        if exc.status == 409:
            flash(exc.message, "danger")
            return _form_page(entity, kervan().records.get(entity.key, record_id, actor=actor),
                              {**record, **_echo(entity, values)}, exc.fields, 409)
        raise
    flash(_("Changes saved."), "success")
    if request.form.get("_action") == "save_new":
        return redirect(url_for("ui.create", entity_key=entity.key))
    return redirect(url_for("ui.detail", entity_key=entity.key, record_id=updated["id"]))


def new_record_defaults(entity: Entity, actor) -> dict:
    """Declared defaults, shown in a new form so the user sees what will be saved."""
    from zoneinfo import ZoneInfo

    from engine.records.values import default_value

    now = dt.datetime.now(dt.UTC)
    today = now.astimezone(ZoneInfo(kervan().settings.timezone)).date()
    return {key: default_value(fld, actor, now, today)
            for key, fld in entity.user_fields.items()
            if fld.default is not None and fld.type != "child_table"}


def _echo(entity: Entity, values: dict) -> dict:
    """Submitted values, shown again next to their errors."""
    return dict(values)


@bp.post("/<entity_key>/<int:record_id>/<any(archive, restore, delete):action>")
@login_required
def record_action(entity_key: str, record_id: int, action: str):
    entity = entity_or_404(entity_key)
    actor = current_actor()
    records = kervan().records
    try:
        if action == "archive":
            records.archive(entity.key, record_id, actor=actor)
            flash(_("Archived. It is hidden from daily lists and can be restored."), "success")
        elif action == "restore":
            records.restore(entity.key, record_id, actor=actor)
            flash(_("Restored."), "success")
        else:
            records.delete(entity.key, record_id, actor=actor)
            flash(_("Deleted."), "success")
            return redirect(url_for("ui.list_view", entity_key=entity.key))
    except RecordError as exc:
        if exc.status == 403:
            raise
        flash(exc.message, "danger")
    return redirect(url_for("ui.detail", entity_key=entity.key, record_id=record_id))


@bp.post("/<entity_key>/<int:record_id>/favourite")
@login_required
def favourite(entity_key: str, record_id: int):
    entity = entity_or_404(entity_key)
    actor = current_actor()
    kervan().records.get(entity.key, record_id, actor=actor, with_lines=False)
    table = kervan().tables.tables["kv_favourite"]
    key = (table.c.user_id == actor.user_id, table.c.entity == entity.key,
           table.c.record_id == record_id)
    with kervan().records.transaction() as conn:
        if conn.execute(sa.select(table.c.record_id).where(*key)).first():
            conn.execute(table.delete().where(*key))
        else:
            conn.execute(table.insert().values(user_id=actor.user_id, entity=entity.key,
                                               record_id=record_id,
                                               created_at=dt.datetime.now(dt.UTC)))
    return redirect(url_for("ui.detail", entity_key=entity.key, record_id=record_id))


@bp.app_template_global()
def cell(entity: Entity, key: str, record: dict, titles: Titles) -> str:
    return display(entity, key, record, titles)


@bp.app_template_global()
def currencies() -> list[str]:
    """Currencies offered next to money amounts."""
    return list(kervan().settings.currencies)


@bp.app_template_global()
def local_input(value) -> str:
    """A stored UTC moment as a `datetime-local` input value in the company time zone."""
    if isinstance(value, dt.datetime):
        return local_time(value).strftime("%Y-%m-%dT%H:%M")
    return value or ""


def claim_uploads(entity: Entity, record: dict) -> None:
    """Files chosen in a form belong to the saved record, and follow its permissions."""
    table = kervan().tables.tables["kv_file"]
    ids = {key: record.get(key) for key, f in entity.user_fields.items()
           if f.type == "attachment" and record.get(key)}
    if not ids:
        return
    with kervan().records.transaction() as conn:
        for key, file_id in ids.items():
            conn.execute(table.update().where(table.c.id == file_id, table.c.entity.is_(None))
                         .values(entity=entity.key, record_id=record["id"], field=key))


def attach_uploads(entity: Entity, values: dict, actor) -> None:
    """Files chosen in attachment fields are stored first; the field keeps their id."""
    from .ui_extra import store_file

    for key, fld in entity.user_fields.items():
        upload = request.files.get(f"{key}__file")
        if fld.type == "attachment" and upload is not None and upload.filename:
            values[key] = store_file(upload, None, None, actor)


@bp.get("/<entity_key>/<int:record_id>/print")
@login_required
def print_pdf(entity_key: str, record_id: int):
    """The Print button: the PDF in the user's language, kept on the record's files."""
    from engine.documents.pdf import render_pdf

    entity = entity_or_404(entity_key)
    actor = current_actor()
    language = request.args.get("lang") or actor.language
    data, name = render_pdf(kervan(), entity.key, record_id, actor,
                            language if language in ("en", "tr", "fa") else "en")
    return Response(data, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{name}"'})


@bp.post("/<entity_key>/<int:record_id>/send")
@login_required
def send_email(entity_key: str, record_id: int):
    """The Send button: queue the e-mail; the record shows queued, sent or failed."""
    from engine.documents.send import queue_send

    entity = entity_or_404(entity_key)
    try:
        queue_send(kervan(), entity.key, record_id, current_actor(),
                   to=request.form.get("to") or None)
    except ValidationFailed as exc:
        flash("; ".join(exc.fields.values()) or exc.message, "danger")
    else:
        flash(_("The e-mail is on its way; its status shows on the record."), "success")
    return redirect(url_for("ui.detail", entity_key=entity.key, record_id=record_id))


@bp.app_template_global()
def is_admin() -> bool:
    return kervan().permissions.is_admin(current_actor())


@bp.route("/<entity_key>/<int:record_id>/convert/<conversion>", methods=["GET", "POST"])
@login_required
def convert(entity_key: str, record_id: int, conversion: str):
    """Convert a record (lead → customer, contact, opportunity), linking or creating."""
    from engine.workflow.conversion import DuplicateFound

    entity = entity_or_404(entity_key)
    actor = current_actor()
    found = kervan().conversions.for_entity(entity.key, conversion)
    if found is None:
        abort(404)
    key, spec = found
    record = kervan().records.get(entity.key, record_id, actor=actor)
    candidates: dict[str, list] = {}
    errors: dict[str, str] = {}
    values: dict[str, dict] = {}
    if request.method == "POST":
        link = {step["key"]: int(request.form[f"link-{step['key']}"]) for step in spec["create"]
                if request.form.get(f"link-{step['key']}", "").isdigit()}
        for step in spec["create"]:
            target = kervan().model.entity(step["entity"])
            given = {name.split("-", 2)[2]: value for name, value in request.form.items()
                     if name.startswith(f"value-{step['key']}-") and value.strip()}
            if given:
                values[step["key"]] = {k: v for k, v in given.items() if k in target.fields}
        try:
            result = kervan().conversions.convert(
                entity.key, record_id, actor, link=link, values=values,
                create_new=request.form.get("create_new") == "1")
        except DuplicateFound as exc:
            candidates[exc.key] = exc.candidates
            errors[exc.key] = exc.message
        except ValidationFailed as exc:
            errors.update(exc.fields)
        else:
            flash(_("Converted."), "success")
            first = next(iter(result.created or result.linked), None)
            target_key = next((s["entity"] for s in spec["create"] if s["key"] == first), None)
            if first and target_key:
                target_id = (result.created | result.linked)[first]
                return redirect(url_for("ui.detail", entity_key=target_key, record_id=target_id))
            return redirect(url_for("ui.detail", entity_key=entity.key, record_id=record_id))
    steps = []
    for step in spec["create"]:
        target = kervan().model.entity(step["entity"])
        missing = [f for f in target.user_fields.values() if (f.required or f.required_if)
                   and f.key not in (step.get("values") or {}) and f.type != "child_table"
                   and not target.series_for(f.key)]
        steps.append({"key": step["key"], "entity": target, "extra": missing,
                      "candidates": candidates.get(step["key"], [])})
    return render_template("convert.html", entity=entity, record=record, spec=spec,
                           conversion=key, steps=steps, errors=errors, values=values,
                           title=compose_title(entity, record)), (422 if errors else 200)


@bp.post("/<entity_key>/totals")
@login_required
def live_totals(entity_key: str):
    """Totals of the lines on a form being edited: the same Decimal rules as saving."""
    from engine.documents.totals import compute
    from engine.fields.base import FieldValueError

    entity = entity_or_404(entity_key)
    spec = entity.totals_spec
    if not spec:
        abort(404)
    field = entity.fields[spec["lines"]]
    child = kervan().model.entity(field.spec["entity"])
    raw = read_lines(child, request.form, spec["lines"], field.spec.get("link_field", entity.key))
    lines = []
    for values in raw:
        line = {}
        for key, value in values.items():
            fld = child.fields.get(key)
            try:
                line[key] = fld.field_type.coerce(fld, value) if fld else None
            except FieldValueError:
                line[key] = None  # the field shows its error when the form is saved
        lines.append(line)
    currency = (request.form.get(spec.get("currency", "")) or
                kervan().settings.currencies[0]).upper()
    try:
        discount = entity.fields[spec["document_discount"]].field_type.coerce(
            entity.fields[spec["document_discount"]],
            request.form.get(spec["document_discount"])) if spec.get("document_discount") \
            else None
    except FieldValueError:
        discount = None
    totals = compute(lines, spec, discount, currency)
    from .display import format_money

    return jsonify({
        "lines": [format_money(v, currency) for v in totals.line_totals],
        "subtotal": format_money(totals.subtotal, currency),
        "discount_total": format_money(totals.discount_total, currency),
        "vat_total": format_money(totals.vat_total, currency),
        "grand_total": format_money(totals.grand_total, currency),
        "rates": [{"rate": str(r.rate), "base": format_money(r.base, currency),
                   "vat": format_money(r.vat, currency)} for r in totals.rates]})
