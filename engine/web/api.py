"""The JSON REST API, generated from metadata: /api/v1/<entity>[/<id>[/...]]."""

from __future__ import annotations

from flask import Blueprint, Response, abort, jsonify, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError, validate_csrf
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from wtforms.validators import ValidationError as CSRFValidationError

from engine.definitions.model import Entity
from engine.definitions.resolve import related_problems
from engine.query.listing import Page, QueryError
from engine.query.params import parse_list_args
from engine.records.errors import NotFound, RecordError, ValidationFailed
from engine.workflow.conversion import DuplicateFound

from .context import current_actor, kervan
from .openapi import openapi_document
from .schemas import dump_records, entity_schema, load_errors

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def error(status: int, code: str, message: str, fields: dict | None = None):
    return jsonify({"error": {"code": code, "message": message, "fields": fields or {}}}), status


@bp.before_request
def authenticate():
    if not current_user.is_authenticated:
        return error(401, "unauthenticated", "sign in or send 'Authorization: Bearer <token>'")
    bearer = request.headers.get("Authorization", "").lower().startswith("bearer ")
    if request.method not in ("GET", "HEAD", "OPTIONS") and not bearer:
        try:  # a browser session must prove the request comes from our own pages
            validate_csrf(request.headers.get("X-CSRFToken"))
        except (CSRFValidationError, CSRFError):
            return error(400, "csrf", "missing or invalid X-CSRFToken header")
    return None


@bp.errorhandler(RecordError)
def record_error(exc: RecordError):
    return error(exc.status, exc.code, exc.message, exc.fields)


@bp.errorhandler(QueryError)
def query_error(exc: QueryError):
    return error(400, "invalid_request", exc.message, exc.fields)


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    codes = {400: "bad_request", 401: "unauthenticated", 403: "access_denied",
             404: "not_found", 405: "method_not_allowed", 409: "conflict",
             413: "too_large", 415: "unsupported_media_type"}
    return error(exc.code or 400, codes.get(exc.code, "error"), exc.description or exc.name)


def entity_or_404(key: str) -> Entity:
    entity = kervan().model.entities.get(key)
    if entity is None or entity.child_of:
        raise NotFound("entity", key)
    return entity


def body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(400, "the request body must be a JSON object")
    return data


def visible_schema(entity: Entity):
    """The entity's schema without the fields hidden from the caller."""
    hidden = kervan().permissions.field_access(current_actor(), entity).hidden
    return entity_schema(kervan().model, entity, hidden)


def dump(entity: Entity, record: dict) -> dict:
    return dump_many(entity, [record])[0]


def dump_many(entity: Entity, records: list[dict]) -> list[dict]:
    """Records as the caller sees them, the schema worked out once for all of them."""
    return dump_records(visible_schema(entity), records)


def load(entity: Entity, data: dict, partial: bool) -> dict:
    schema = visible_schema(entity)
    try:
        loaded = schema.load(data, partial=partial)
    except ValidationError as exc:
        raise ValidationFailed(entity.key, load_errors(exc)) from None
    return {k: v for k, v in loaded.items() if k in data}


def page_json(entity: Entity, page: Page) -> dict:
    out = {"data": dump_many(entity, page.rows), "next": page.next}
    if page.count is not None:
        out["count"] = page.count
    else:
        out["at_least"] = page.at_least
    return out


@bp.get("/meta")
def meta():
    """The resolved metadata the caller may see."""
    actor = current_actor()
    perms = kervan().permissions
    entities = {}
    for entity in kervan().model.entities.values():
        if perms.scope(actor, entity, "read") == "none":
            continue
        access = perms.field_access(actor, entity)
        entities[entity.key] = {
            "label": entity.label, "plural": entity.plural, "module": entity.module,
            "child_of": entity.child_of, "title": entity.title, "stage_field": entity.stage_field,
            "permissions": {a: perms.scope(actor, entity, a) for a in
                            ("read", "create", "edit", "delete", "export", "import", "print")},
            "fields": {k: {"type": f.type, "label": f.label, "required": f.required,
                           "read_only": f.read_only or k in access.read_only or f.system,
                           "unique": f.unique, "filterable": f.filterable,
                           "sortable": f.sortable, "searchable": f.searchable,
                           "target": f.target, "system": f.system,
                           "options": [{"key": o.key, "label": o.label, "color": o.color,
                                        "category": o.category} for o in f.options] or None}
                       for k, f in entity.fields.items() if k not in access.hidden},
        }
    return jsonify({"fingerprint": kervan().model.fingerprint, "entities": entities})


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document(kervan().model, request.host_url.rstrip("/")))


@bp.get("/<entity_key>")
def list_records(entity_key: str):
    entity = entity_or_404(entity_key)
    req = parse_list_args(entity, request.args)
    page = kervan().records.list(entity.key, req, actor=current_actor())
    return jsonify(page_json(entity, page))


@bp.post("/<entity_key>")
def create(entity_key: str):
    entity = entity_or_404(entity_key)
    values = load(entity, body(), partial=True)
    record = kervan().records.create(entity.key, values, actor=current_actor())
    return jsonify(dump(entity, record)), 201


@bp.get("/<entity_key>/<int:record_id>")
def get(entity_key: str, record_id: int):
    entity = entity_or_404(entity_key)
    return jsonify(dump(entity, kervan().records.get(entity.key, record_id,
                                                     actor=current_actor())))


@bp.patch("/<entity_key>/<int:record_id>")
def update(entity_key: str, record_id: int):
    entity = entity_or_404(entity_key)
    data = body()
    version = data.pop("version", None)
    if not isinstance(version, int) or isinstance(version, bool) or not 0 < version < 2**31:
        raise ValidationFailed(entity.key, {"version": "is required: send the version you read "
                                                       "(an integer)"})
    data.pop("id", None)
    values = load(entity, data, partial=True)
    record = kervan().records.update(entity.key, record_id, values, version=version,
                                     actor=current_actor())
    return jsonify(dump(entity, record))


@bp.delete("/<entity_key>/<int:record_id>")
def delete(entity_key: str, record_id: int):
    entity = entity_or_404(entity_key)
    kervan().records.delete(entity.key, record_id, actor=current_actor())
    return "", 204


@bp.post("/<entity_key>/<int:record_id>/<any(archive, restore):action>")
def archive_restore(entity_key: str, record_id: int, action: str):
    entity = entity_or_404(entity_key)
    data = request.get_json(silent=True) or {}
    version = data.get("version") if isinstance(data, dict) else None
    method = kervan().records.archive if action == "archive" else kervan().records.restore
    record = method(entity.key, record_id, actor=current_actor(),
                    version=version if isinstance(version, int) else None)
    return jsonify(dump(entity, record))


@bp.get("/<entity_key>/<int:record_id>/history")
def history(entity_key: str, record_id: int):
    entity = entity_or_404(entity_key)
    entries = kervan().records.history(entity.key, record_id, actor=current_actor())
    return jsonify({"data": [{**e, "at": e["at"].isoformat()} for e in entries]})


@bp.post("/<entity_key>/<int:record_id>/transition")
def transition(entity_key: str, record_id: int):
    """Move a record to another stage: guards and actions come from its pipeline."""
    entity = entity_or_404(entity_key)
    data = body()
    target = data.get("to")
    version = data.get("version")
    if not isinstance(target, str):
        raise ValidationFailed(entity.key, {"to": "is required: the stage to move to"})
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)
                                or not 0 < version < 2**31):
        raise ValidationFailed(entity.key, {"version": "must be the version you read"})
    record = kervan().workflow.transition(entity.key, record_id, target, current_actor(),
                                          version=version)
    return jsonify(dump(entity, record))


@bp.get("/<entity_key>/<int:record_id>/stages")
def stage_history(entity_key: str, record_id: int):
    """Stage history: who moved it from where to where, when, and how long it stayed."""
    entity = entity_or_404(entity_key)
    rows = kervan().workflow.stage_history(entity.key, record_id, current_actor())
    return jsonify({"data": [{**r, "at": r["at"].isoformat()} for r in rows]})


@bp.post("/<entity_key>/<int:record_id>/convert")
def convert(entity_key: str, record_id: int):
    """Run the entity's conversion; `{"account": 12}` links instead of creating."""
    entity = entity_or_404(entity_key)
    data = request.get_json(silent=True) or {}
    if not isinstance(data, dict):
        abort(400, "the request body must be a JSON object")
    create_new = data.pop("create_new", False) is True
    values = data.pop("values", None) or {}
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        raise ValidationFailed(entity.key, {"values": "must map a created record's key to "
                                                      "field values"})
    link = {}
    for key, value in data.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValidationFailed(entity.key, {key: "must be the id of a record to link to"})
        link[key] = value
    try:
        result = kervan().conversions.convert(entity.key, record_id, current_actor(),
                                              link=link, create_new=create_new, values=values)
    except DuplicateFound as exc:
        return jsonify({"error": {**exc.to_dict(), "candidates": exc.candidates}}), 409
    return jsonify(result.to_json())


@bp.get("/<entity_key>/<int:record_id>/pdf")
def pdf(entity_key: str, record_id: int):
    """The document printed from its template; the PDF is kept on the record's files."""
    from engine.documents.pdf import render_pdf

    entity = entity_or_404(entity_key)
    actor = current_actor()
    language = request.args.get("lang") or actor.language
    if language not in ("en", "tr", "fa"):
        raise ValidationFailed(entity.key, {"lang": "must be en, tr or fa"})
    data, name = render_pdf(kervan(), entity.key, record_id, actor, language)
    return Response(data, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{name}"'})


@bp.post("/<entity_key>/<int:record_id>/send")
def send(entity_key: str, record_id: int):
    """E-mail the document as a PDF, through the background queue."""
    from engine.documents.send import queue_send

    entity = entity_or_404(entity_key)
    data = request.get_json(silent=True) or {}
    if not isinstance(data, dict):
        abort(400, "the request body must be a JSON object")
    to = data.get("to")
    if to is not None and not isinstance(to, str):
        raise ValidationFailed(entity.key, {"to": "must be an e-mail address"})
    template = data.get("template")
    if template is not None and (not isinstance(template, int) or isinstance(template, bool)):
        raise ValidationFailed(entity.key, {"template": "must be the id of an e-mail template"})
    record = queue_send(kervan(), entity.key, record_id, current_actor(), to=to,
                        template_id=template)
    return jsonify(dump(entity, record)), 202


@bp.get("/<entity_key>/<int:record_id>/<relation>")
def related(entity_key: str, record_id: int, relation: str):
    """Lines of a child table, or records of another entity linking to this one."""
    entity = entity_or_404(entity_key)
    actor = current_actor()
    parent = kervan().records.get(entity.key, record_id, actor=actor)
    field = entity.fields.get(relation)
    if field is not None and field.type == "child_table":
        child = kervan().model.entity(field.spec["entity"])
        lines = parent.get(relation) or []
        return jsonify({"data": dump_many(child, lines), "next": None,
                        "count": len(lines)})
    problems = related_problems(kervan().model, entity, relation)
    if problems:
        raise NotFound("relation", f"{entity.key}/{relation}: {problems[0]}")
    other_key, _sep, link_key = relation.partition(".")
    other = kervan().model.entity(other_key)
    link = other.fields[link_key] if link_key else next(
        f for f in other.fields.values() if f.type == "link" and f.target == entity.key)
    args = MultiDict(request.args)
    args[link.key] = str(record_id)
    page = kervan().records.list(other.key, parse_list_args(other, args), actor=actor)
    return jsonify(page_json(other, page))
