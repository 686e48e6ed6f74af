"""The Flask application factory: it only wires things together."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask, render_template

from .config import PROJECT_ROOT
from .runtime import Kervan


def create_app(config: dict | None = None, kervan: Kervan | None = None) -> Flask:
    """Build the web application around a Kervan runtime."""
    kervan = kervan or Kervan()
    app = Flask(__name__, template_folder=str(PROJECT_ROOT / "ui_templates"),
                instance_path=str(kervan.settings.instance))
    app.config.update(SECRET_KEY=kervan.settings.secret_key)
    app.config.from_prefixed_env("KERVAN_FLASK")
    app.config.update(config or {})
    app.extensions["kervan"] = kervan

    @app.get("/")
    def home():
        model = kervan.model
        counts = {}
        with kervan.db.connect() as conn:
            for entity in model.entities.values():
                table = kervan.tables.tables[entity.table_name]
                capped = sa.select(table.c.id).limit(10_001).subquery()  # cheap on big tables
                counts[entity.key] = conn.execute(
                    sa.select(sa.func.count()).select_from(capped)).scalar_one()
        return render_template("home.html", model=model, counts=counts)

    return app
