"""The studio screens (admin): they build YAML overlays and go through the studio API."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required

from engine.definitions.model import SYSTEM_FIELDS
from engine.security.permissions import ACTIONS

from .context import current_actor, kervan

bp = Blueprint("studio_ui", __name__, url_prefix="/studio")


@bp.before_request
@login_required
def admins_only():
    actor = current_actor()
    if not kervan().permissions.is_admin(actor):
        from engine.security.permissions import PermissionDenied

        raise PermissionDenied(actor, next(iter(kervan().model.entities.values())),
                               "administer", "(the studio)")


@bp.get("/")
@bp.get("/<entity_key>")
def studio(entity_key: str | None = None):
    model = kervan().model
    entities = sorted((e for e in model.entities.values()), key=lambda e: (e.order, e.key))
    entity = model.entities.get(entity_key) if entity_key else None
    stage_field, pipeline_key, series, roles, pipe = None, None, [], {}, None
    if entity is not None:
        stage_key = kervan().workflow.stage_field(entity)
        stage_field = entity.fields.get(stage_key) if stage_key else None
        pipe = kervan().workflow.pipeline_for(entity)
        pipeline_key = pipe["key"] if pipe else None
        series = entity.series
        roles = {key: (role.get("entities") or {}).get(entity.key, {})
                 for key, role in kervan().permissions.roles.items() if not role.get("admin")}
    return render_template("studio/studio.html", entities=entities, entity=entity,
                           field_types=[t for t in kervan().field_types.names()
                                        if t not in ("multi_enum",)],
                           system_fields=list(SYSTEM_FIELDS), stage_field=stage_field,
                           pipeline=pipe if entity is not None and pipeline_key else None,
                           pipeline_key=pipeline_key, series=series, roles=roles,
                           actions=ACTIONS, scopes=("none", "own", "team", "all"))


@bp.get("/revisions")
def revisions():
    return render_template("studio/revisions.html")
