"""Sign in, sign out and password reset; sessions live in the database."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from engine.records.errors import RecordError
from engine.security.users import LoginThrottled

from .context import kervan

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = None


class SessionUser(UserMixin):
    """Flask-Login's user: the database session token is its id."""

    def __init__(self, token: str, user):
        self.token = token
        self.user = user

    def get_id(self) -> str:
        return self.token


@login_manager.user_loader
def load_session(token: str):
    user = kervan().users.session_user(token)
    return SessionUser(token, user) if user else None


@login_manager.request_loader
def load_bearer(req):
    header = req.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        user = kervan().users.token_user(header[7:].strip())
        if user:
            return SessionUser("", user)
    return None


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("ui_extra.dashboard")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("ui_extra.dashboard"))
    error = None
    username = ""
    if request.method == "POST":
        username = request.form.get("username", "")
        try:
            user = kervan().users.authenticate(username, request.form.get("password", ""),
                                               ip=request.remote_addr)
        except LoginThrottled as exc:
            error = _("Too many failed attempts. Try again in a few minutes or reset your "
                      "password.")
            current_app.logger.warning("login throttled: %s", exc.message)
        except RecordError:
            error = _("Wrong username or password, or the account is inactive.")
        else:
            session.clear()  # a fresh session on every sign-in
            token = kervan().users.start_session(user, ip=request.remote_addr)
            login_user(SessionUser(token, user))
            return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", error=error, username=username), \
        (401 if error else 200)


@bp.post("/logout")
def logout():
    if current_user.is_authenticated and current_user.token:
        kervan().users.end_session(current_user.token)
    logout_user()
    session.clear()
    flash(_("You have signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot_password():
    sent = False
    if request.method == "POST":
        from .mail import send_password_reset

        username_or_email = request.form.get("username", "").strip().lower()
        users = kervan().users
        user = users.by_username(username_or_email) or next(
            (u for u in users.all() if u.email and u.email == username_or_email), None)
        if user and user.active and user.email:
            token = users.create_reset(user)
            send_password_reset(user, url_for("auth.reset_password", token=token,
                                              _external=True))
        sent = True  # the same answer whether or not the account exists
    return render_template("auth/forgot.html", sent=sent)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    error = None
    if request.method == "POST":
        password = request.form.get("password", "")
        if password != request.form.get("confirm", ""):
            error = _("The two passwords differ.")
        else:
            try:
                kervan().users.reset_password(token, password)
            except RecordError as exc:
                error = exc.fields.get("password") or exc.message
            else:
                flash(_("Your password was changed. Sign in with the new one."), "success")
                return redirect(url_for("auth.login"))
    if not token:
        abort(404)
    return render_template("auth/reset.html", error=error, token=token)
