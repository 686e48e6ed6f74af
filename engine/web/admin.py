"""Admin screens: users, teams and roles (roles are metadata; the studio edits them)."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required

from engine.definitions.problems import MetadataError
from engine.records.errors import RecordError
from engine.security.permissions import ACTIONS, PermissionDenied

from .context import current_actor, kervan

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
@login_required
def admins_only():
    actor = current_actor()
    if not kervan().permissions.is_admin(actor):
        entity = kervan().model.entities.get("company_settings") or next(
            iter(kervan().model.entities.values()))
        raise PermissionDenied(actor, entity, "administer", "(the admin screens)")


def teams() -> list[dict]:
    table, links = kervan().tables.tables["kv_team"], kervan().tables.tables["kv_user_team"]
    with kervan().db.connect() as conn:
        rows = conn.execute(
            sa.select(table.c.id, table.c.key, table.c.name, sa.func.count(links.c.user_id))
            .select_from(table.outerjoin(links, links.c.team_id == table.c.id))
            .group_by(table.c.id, table.c.key, table.c.name).order_by(table.c.key)).all()
    return [{"id": r[0], "key": r[1], "name": r[2], "members": r[3]} for r in rows]


@bp.get("/users")
def users():
    return render_template("admin/users.html", users=kervan().users.all(), teams=teams(),
                           roles=kervan().permissions.role_keys())


def _form_lists():
    roles = request.form.getlist("roles")
    team_keys = [t.strip() for t in request.form.get("teams", "").split(",") if t.strip()]
    return roles, team_keys


@bp.post("/users")
def create_user():
    roles, team_keys = _form_lists()
    try:
        user = kervan().users.create(
            request.form.get("username", ""), request.form.get("password", ""), roles,
            email=request.form.get("email") or None,
            full_name=request.form.get("full_name") or None,
            language=request.form.get("language", "en"), teams=team_keys)
    except RecordError as exc:
        return render_template("admin/users.html", users=kervan().users.all(), teams=teams(),
                               roles=kervan().permissions.role_keys(), errors=exc.fields,
                               form=request.form), 422
    flash(_("User %(name)s created.", name=user.username), "success")
    return redirect(url_for("admin.users"))


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
def edit_user(user_id: int):
    try:
        user = kervan().users.get(user_id)
    except RecordError:
        abort(404)
    errors: dict[str, str] = {}
    if request.method == "POST":
        roles, team_keys = _form_lists()
        unknown = [r for r in roles if r not in kervan().permissions.role_keys()]
        if unknown:
            errors["roles"] = _("unknown role(s): %(roles)s", roles=", ".join(unknown))
        elif user.id == current_actor().user_id and "active" not in request.form:
            errors["active"] = _("you cannot deactivate yourself")
        else:
            kervan().users.update(user.id, roles=roles, teams=team_keys,
                                  active="active" in request.form,
                                  full_name=request.form.get("full_name") or None,
                                  email=request.form.get("email") or None,
                                  language=request.form.get("language") or None)
            password = request.form.get("password", "")
            try:
                if password:
                    kervan().users.set_password(user.id, password)
            except RecordError as exc:
                errors.update(exc.fields)
            if not errors:
                flash(_("Changes saved."), "success")
                return redirect(url_for("admin.users"))
        user = kervan().users.get(user_id)
    return render_template("admin/user.html", user=user, roles=kervan().permissions.role_keys(),
                           errors=errors), (422 if errors else 200)


@bp.post("/teams")
def create_team():
    key = request.form.get("key", "").strip().lower()
    name = request.form.get("name", "").strip() or key.title()
    table = kervan().tables.tables["kv_team"]
    if not key or not key.replace("_", "").isalnum():
        flash(_("A team key is lower-case letters, digits and underscores."), "danger")
        return redirect(url_for("admin.users"))
    with kervan().records.transaction() as conn:
        if conn.execute(sa.select(table.c.id).where(table.c.key == key)).first():
            flash(_("Team %(key)s already exists.", key=key), "warning")
        else:
            conn.execute(table.insert().values(key=key, name=name))
            flash(_("Team %(name)s created.", name=name), "success")
    return redirect(url_for("admin.users"))


@bp.get("/roles")
def roles():
    model = kervan().model
    perms = kervan().permissions
    matrix = []
    for role_key in perms.role_keys():
        role = perms.roles[role_key]
        rows = []
        for entity in sorted(model.entities.values(), key=lambda e: (e.order, e.key)):
            if entity.child_of:
                continue
            grants = role.get("entities", {})
            grant = grants.get(entity.key, grants.get("*", {}))
            rows.append((entity, {a: ("all" if role.get("admin") else
                                      {True: "all", False: "none", None: "none"}.get(
                                          grant.get(a), grant.get(a))) for a in ACTIONS}))
        fields = role.get("fields", {})
        matrix.append({"key": role_key, "role": role, "rows": rows, "fields": fields})
    return render_template("admin/roles.html", matrix=matrix, actions=ACTIONS)


@bp.get("/packs")
def packs():
    """Sector packs with the same preview as `kervan pack install NAME --dry-run`."""
    preview_key = request.args.get("preview")
    plan_lines, error = None, None
    if preview_key:
        try:
            info = kervan().packs.get(preview_key)
            plan, _model = (kervan().packs.plan_uninstall(preview_key) if info.installed
                            else kervan().packs.plan_install(preview_key))
            plan_lines = plan.lines()
        except RecordError as exc:
            error = exc.message
        except MetadataError as exc:
            error = "; ".join(str(p) for p in exc.problems[:5])
    return render_template("admin/packs.html", packs=kervan().packs.available(),
                           preview=preview_key, plan=plan_lines, error=error)


@bp.post("/packs/<key>/<any(install, uninstall):action>")
def pack_action(key: str, action: str):
    from engine.demo import DemoError, load_demo

    try:
        if action == "install":
            kervan().packs.install(key, current_actor())
            if request.form.get("demo"):
                folder = kervan().settings.packs / key / "demo"
                load_demo(kervan(), sorted(folder.glob("*.y*ml")) if folder.is_dir() else [])
        else:
            kervan().packs.uninstall(key, current_actor())
    except (RecordError, DemoError) as exc:
        flash(getattr(exc, "message", str(exc)), "danger")
    except MetadataError as exc:
        flash("; ".join(str(p) for p in exc.problems[:5]), "danger")
    else:
        flash(_("Pack %(key)s installed.", key=key) if action == "install"
              else _("Pack %(key)s uninstalled; its data is kept.", key=key), "success")
    return redirect(url_for("admin.packs"))
