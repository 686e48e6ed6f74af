"""The studio's API (admin only); the studio screens use it too."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from engine.records.errors import RecordError

from .api import authenticate, error
from .context import current_actor, kervan

bp = Blueprint("studio_api", __name__, url_prefix="/api/v1/studio")


@bp.before_request
def admins_only():
    refused = authenticate()
    if refused is not None:
        return refused
    actor = current_actor()
    if not kervan().permissions.is_admin(actor):
        return error(403, "access_denied", f"access denied: {actor.username} is not an "
                                           f"administrator; the studio is for admins",
                     {"_permission": "studio"})
    return None


@bp.errorhandler(RecordError)
def record_error(exc: RecordError):
    return error(exc.status, exc.code, exc.message, exc.fields)


def overlay_and_message() -> tuple[str, str]:
    """The overlay as a YAML body (message in ?message=) or JSON {"overlay", "message"}."""
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise RecordError("the JSON body must be an object with `overlay` (YAML text)")
        overlay, message = data.get("overlay"), data.get("message")
        if not isinstance(overlay, str):
            raise RecordError("`overlay` must be YAML text", {"overlay": "must be text"})
        return overlay, message if isinstance(message, str) else ""
    return request.get_data(as_text=True), request.args.get("message", "")


@bp.post("/preview")
def preview():
    overlay, _message = overlay_and_message()
    return jsonify(kervan().studio.preview(overlay).to_json())


@bp.post("/apply")
def apply():
    overlay, message = overlay_and_message()
    revision = kervan().studio.apply(overlay, message, current_actor())
    return jsonify(revision), 201


@bp.get("/revisions")
def revisions():
    return jsonify({"data": kervan().studio.revisions()})


@bp.get("/revisions/<int:revision_id>")
def revision(revision_id: int):
    return jsonify(kervan().studio.revision(revision_id))


@bp.post("/revisions/<int:revision_id>/revert")
def revert(revision_id: int):
    data = request.get_json(silent=True) if request.is_json else None
    message = data.get("message") if isinstance(data, dict) else None
    return jsonify(kervan().studio.revert(revision_id, current_actor(), message)), 201


@bp.get("/export")
def export():
    return Response(kervan().studio.export(), mimetype="application/yaml",
                    headers={"Content-Disposition": 'attachment; filename="kervan-overrides.yaml"'})


