"""Shared fixtures: a real database per test (SQLite file, or PostgreSQL when
KERVAN_TEST_DATABASE_URL names a server) and Kervan runtimes on test metadata."""

from __future__ import annotations

import os
import shutil
import textwrap
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.config import Settings, normalise_database_url
from engine.runtime import Kervan
from engine.storage.schema_sync import sync_schema

PG_SERVER = os.environ.get("KERVAN_TEST_DATABASE_URL")
# Cheap password hashes: the suite creates many users; production keeps argon2's defaults.
os.environ.setdefault("KERVAN_ARGON2_TIME_COST", "1")
os.environ.setdefault("KERVAN_ARGON2_MEMORY_KIB", "8192")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def pg_database():
    """A PostgreSQL database created for this run and dropped after it."""
    if not PG_SERVER:
        yield None
        return
    server_url = sa.make_url(normalise_database_url(PG_SERVER))
    name = f"kervan_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(server_url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield server_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,))
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()


def clean_database(folder: Path, pg_database: str | None) -> str:
    """An empty database: a new SQLite file in `folder`, or the run's PostgreSQL, emptied."""
    if pg_database is None:
        return f"sqlite:///{folder / 'kervan.db'}"
    engine = sa.create_engine(pg_database, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()
    return pg_database


def module_crm(folder: Path, pg_database: str | None, overlays: tuple[Path, ...] = (),
               **options) -> Kervan:
    """The base CRM (with `overlays` on top) migrated into a database of its own, for a
    module's shared world."""
    options.setdefault("timezone", "Europe/Istanbul")
    kervan = Kervan(Settings.from_env(instance=folder / "instance",
                                      database_url=clean_database(folder, pg_database),
                                      base_metadata=BASE_METADATA, metadata=list(overlays),
                                      secret_key="test", **options))
    sync_schema(kervan.db, kervan.model)
    return kervan


@pytest.fixture
def database_url(tmp_path, pg_database):
    """A clean database for one test."""
    return clean_database(tmp_path, pg_database)


@pytest.fixture
def backend(database_url) -> str:
    return "postgresql" if database_url.startswith("postgresql") else "sqlite"


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write {relative path: YAML text} under root and return root."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


@pytest.fixture
def metadata_dir(tmp_path):
    """A factory writing a metadata layer directory from YAML texts."""
    counter = iter(range(1000))

    def make(files: dict[str, str], name: str | None = None) -> Path:
        root = tmp_path / (name or f"layer{next(counter)}")
        return write_tree(root, files)

    return make


@pytest.fixture
def make_kervan(tmp_path, database_url):
    """Build Kervan runtimes on given metadata layers against this test's database."""
    made: list[Kervan] = []

    def make(base: Path, *overlays: Path, migrate: bool = True, **options) -> Kervan:
        options.setdefault("timezone", "Europe/Istanbul")
        settings = Settings.from_env(instance=tmp_path / "instance", database_url=database_url,
                                     base_metadata=base, metadata=list(overlays),
                                     secret_key="test", **options)
        kervan = Kervan(settings)
        made.append(kervan)
        if migrate:
            sync_schema(kervan.db, kervan.model)
        return kervan

    yield make
    for kervan in made:
        kervan.close()


@pytest.fixture
def cli_env(tmp_path, database_url):
    """Environment for running `kervan` commands against this test's database."""

    def env(base: Path, *overlays: Path) -> dict[str, str]:
        return {"KERVAN_DATABASE_URL": database_url, "KERVAN_INSTANCE": str(tmp_path / "instance"),
                "KERVAN_BASE_METADATA": str(base),
                "KERVAN_METADATA": ":".join(str(p) for p in overlays),
                "KERVAN_SECRET_KEY": "test"}

    return env


SHOP_METADATA = {
    "entities/customer.yaml": """
        customer:
          label: {en: Customer, tr: Müşteri, fa: مشتری}
          title: name
          fields:
            name: {type: string, required: true, searchable: true}
            kind: {type: enum, options: [company, person], default: company}
            tax_number: {type: string, unique: true,
                         required_if: {field: kind, op: eq, value: company}}
            email: {type: email}
            phone: {type: phone, searchable: true}
            credit: {type: money, currency: TRY}
            tags: {type: tags}
          rules:
            - one_of_required: [email, phone]
    """,
    "entities/order.yaml": """
        order:
          label: {en: Order, tr: Sipariş, fa: سفارش}
          title: number
          delete: never
          fields:
            number: {type: string, unique: true, read_only: true}
            customer: {type: link, target: customer, required: true}
            ordered_on: {type: date, default: $today}
            status: {type: enum, default: draft, filterable: true,
                     options: [{key: draft, color: "#999999"}, {key: confirmed}, {key: shipped}]}
            lines: {type: child_table, entity: order_line}
        order_line:
          label: {en: Order line}
          child_of: order
          fields:
            order: {type: link, target: order, required: true}
            description: {type: string, required: true}
            quantity: {type: decimal, required: true, min: 0}
            unit_price: {type: money, currency: TRY}
    """,
    "series.yaml": """
        order_number: {entity: order, field: number, pattern: "S-{YYYY}-{####}", reset: yearly}
    """,
}


@pytest.fixture
def shop(metadata_dir, make_kervan) -> Kervan:
    """A small shop model (entities the engine has never seen), migrated."""
    return make_kervan(metadata_dir(SHOP_METADATA, name="shop"))


BASE_METADATA = PROJECT_ROOT / "metadata"
PASSWORD = "Kervan-2026!"


@pytest.fixture(scope="session")
def base_crm_template(tmp_path_factory):
    """On SQLite, the base CRM migrated once; each test starts from a copy of the file."""
    if PG_SERVER:
        return None
    folder = tmp_path_factory.mktemp("base_template")
    settings = Settings.from_env(instance=folder / "instance", base_metadata=BASE_METADATA,
                                 database_url=f"sqlite:///{folder / 'template.db'}",
                                 metadata=[], secret_key="test")
    kervan = Kervan(settings)
    sync_schema(kervan.db, kervan.model)
    with kervan.db.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    kervan.close()
    return folder / "template.db"


@pytest.fixture
def crm(make_kervan, base_crm_template, database_url):
    """The base CRM (real metadata) on this test's database, with users per role."""
    if base_crm_template is not None:
        shutil.copyfile(base_crm_template, database_url.removeprefix("sqlite:///"))
    kervan = make_kervan(BASE_METADATA, migrate=base_crm_template is None)
    users = kervan.users
    users.create("admin", PASSWORD, ["admin"], full_name="Ada Admin", email="admin@example.com")
    users.create("ayse", PASSWORD, ["sales"], full_name="Ayşe Yılmaz", teams=["istanbul"],
                 language="tr", email="ayse@example.com")
    users.create("reza", PASSWORD, ["sales"], full_name="Reza Tehrani", teams=["tehran"],
                 language="fa")
    users.create("sara", PASSWORD, ["finance"], full_name="Sara Karimi", teams=["tehran"])
    return kervan


@pytest.fixture
def app(crm):
    from engine.app import create_app

    app = create_app({"TESTING": True}, kervan=crm)
    return app


@pytest.fixture
def csrf_free_app(crm):
    from engine.app import create_app

    return create_app({"TESTING": True, "WTF_CSRF_ENABLED": False}, kervan=crm)


def sign_in(client, username: str, password: str = PASSWORD):
    """Sign a Flask test client in through the real login form."""
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 302, response.data[:500]
    return client


ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"


@pytest.fixture
def live_server(app):
    """The app served over real HTTP on a free local port, in a thread."""
    import threading

    from werkzeug.serving import make_server

    def whole_bodies(environ, start_response):
        # Werkzeug's development server leaves a streamed file (a static asset) open when
        # the browser drops the connection mid-response; the file is then closed by the
        # garbage collector, and the suite's warnings-as-errors fails whichever test is
        # running. Reading each body here closes its file before anything is sent.
        body = app(environ, start_response)
        try:
            return [b"".join(body)]
        finally:
            if hasattr(body, "close"):
                body.close()

    server = make_server("127.0.0.1", 0, whole_bodies, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium driven by Playwright (never `playwright install`)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1366, "height": 850}, base_url=live_server)
    page = context.new_page()
    yield page
    context.close()


def screenshot(page, name: str) -> None:
    """Save what the user sees, for a person to look at (tests/artifacts/)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def browser_sign_in(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/")
