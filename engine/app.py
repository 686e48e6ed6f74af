"""The Flask application factory: it only wires things together."""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from flask_babel import Babel
from flask_bootstrap import Bootstrap5
from flask_wtf.csrf import CSRFError, CSRFProtect

from .config import PROJECT_ROOT
from .records.errors import RecordError
from .runtime import Kervan
from .web.context import RTL, current_language


def create_app(config: dict | None = None, kervan: Kervan | None = None) -> Flask:
    """Build the web application around a Kervan runtime."""
    kervan = kervan or Kervan()
    app = Flask(__name__, template_folder=str(PROJECT_ROOT / "ui_templates"),
                static_folder="web/static", instance_path=str(kervan.settings.instance))
    app.config.update(
        SECRET_KEY=kervan.settings.secret_key,
        BOOTSTRAP_SERVE_LOCAL=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=kervan.settings.max_upload_mb * 1024 * 1024,
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.config.from_prefixed_env("KERVAN_FLASK")
    app.config.update(config or {})
    app.extensions["kervan"] = kervan

    Bootstrap5(app)
    Babel(app, locale_selector=current_language,
          default_translation_directories=str(PROJECT_ROOT / "engine" / "translations"))
    from .web.display import install_template_helpers

    install_template_helpers(app)
    csrf = CSRFProtect(app)

    from .web import admin, api, auth, studio_api, studio_ui, ui, ui_extra

    auth.login_manager.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(studio_ui.bp)
    app.register_blueprint(studio_api.bp)
    csrf.exempt(studio_api.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)  # the API checks X-CSRFToken itself for cookie sessions
    app.register_blueprint(ui_extra.bp)
    app.register_blueprint(ui.bp)
    kervan.pm.hook.register_routes(app=app)

    @app.get("/favicon.ico")
    def favicon():
        return app.send_static_file("favicon.svg")

    @app.before_request
    def pick_up_metadata_changes():
        endpoint = request.endpoint or ""
        if endpoint == "static" or endpoint.endswith(".static") or endpoint == "favicon":
            return  # the stylesheets, scripts and icons a page loads depend on no metadata
        kervan.refresh()  # one cheap query; re-resolves when packs or the studio changed

    @app.context_processor
    def inject():
        language = current_language()
        return {"lang": language, "rtl": language in RTL, "kervan": kervan}

    @app.errorhandler(RecordError)
    def record_error(exc: RecordError):
        if request.path.startswith("/api/"):
            return jsonify({"error": exc.to_dict()}), exc.status
        return render_template("error.html", error=exc), exc.status

    @app.errorhandler(404)
    @app.errorhandler(405)
    def not_found(exc):
        if request.path.startswith("/api/"):
            return jsonify({"error": {"code": "not_found" if exc.code == 404 else
                                      "method_not_allowed", "message": exc.description,
                                      "fields": {}}}), exc.code
        problem = RecordError(exc.description)
        problem.status = exc.code
        return render_template("error.html", error=problem), exc.code

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        if request.path.startswith("/api/"):
            return jsonify({"error": {"code": "csrf", "message": exc.description,
                                      "fields": {}}}), 400
        return render_template("error.html", error=exc, status=400), 400

    return app
