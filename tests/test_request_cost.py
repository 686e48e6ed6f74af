"""What a request costs beyond the scale test: team names in lists and related tabs in one
query (no N+1), and the signed-in user with roles and teams in one query per request —
still refused on the very next request once a session ends, a token is revoked or the user
is deactivated, whoever wrote that to the database (nothing about users is kept in memory).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from flask import Flask

from bench.probe import SqlRecorder, queries
from engine.app import create_app
from engine.config import normalise_database_url
from engine.runtime import Kervan
from engine.storage import database
from engine.storage.database import make_engine, reading

from .conftest import PASSWORD, PG_SERVER, module_crm, sign_in, write_tree

#: Lists and the lead's conversion tab (opportunities) that show the owning team.
TEAM_COLUMNS = {
    "entities/lead.yaml": """
        lead:
          list:
            columns: [full_name, team, stage, owner, created_at]
    """,
    "entities/opportunity.yaml": """
        opportunity:
          list:
            columns: [name, team, stage, owner]
    """,
}
TEAMS = {"istanbul": "Istanbul", "ankara": "Ankara", "tehran": "Tehran"}


@dataclass
class World:
    kervan: Kervan
    app: Flask
    recorder: SqlRecorder
    few: int  # a lead with one opportunity
    many: int  # a lead with twelve


@pytest.fixture(scope="module")
def world(tmp_path_factory, pg_database):
    """The base CRM with team columns; 120 leads and a lead with one and one with twelve
    opportunities, owned in turn by sellers of three teams."""
    folder = tmp_path_factory.mktemp("request_cost")
    overlay = write_tree(folder / "team_columns", TEAM_COLUMNS)
    kervan = module_crm(folder, pg_database, overlays=(overlay,))
    users = kervan.users
    admin = users.actor(users.create("admin", PASSWORD, ["admin"], full_name="Ada Admin"))
    sellers = [users.create(f"seller.{team}", PASSWORD, ["sales"], teams=[team]).id
               for team in TEAMS]
    bulk = kervan.records.bulk_create
    leads = bulk("lead", [{"full_name": f"Aday {i}", "source": "referral",
                           "phone": f"0532 000 {i:04d}", "owner": sellers[i % 3]}
                          for i in range(120)], actor=admin)
    few, many = leads[0], leads[1]
    bulk("opportunity", [{"name": "Tek fırsat", "lead": few, "owner": sellers[0]}] + [
        {"name": f"Fırsat {i}", "lead": many, "owner": sellers[i % 3]} for i in range(12)],
        actor=admin)
    yield World(kervan, create_app({"TESTING": True, "WTF_CSRF_ENABLED": False}, kervan=kervan),
                SqlRecorder(kervan.db), few, many)
    kervan.close()


def visit(world: World, client, path: str) -> tuple[str, list]:
    """The page and the queries of its second visit (a first one may warm caches)."""
    client.get(path)
    with world.recorder.capture() as statements:
        response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response.get_data(as_text=True), queries(statements)


def team_reads(statements) -> int:
    return sum(1 for s in statements if s.reads("kv_team"))


def test_a_team_column_costs_one_query_for_10_or_100_rows(world):
    client = sign_in(world.app.test_client(), "admin")
    _page, statements_10 = visit(world, client, "/lead/?_size=10")
    page_100, statements_100 = visit(world, client, "/lead/?_size=100")
    assert len(statements_10) == len(statements_100)
    assert team_reads(statements_10) == team_reads(statements_100) == 1
    assert all(f">{name}<" in page_100 for name in TEAMS.values())


def test_a_related_tab_shows_teams_in_one_query_for_1_or_12_rows(world):
    client = sign_in(world.app.test_client(), "admin")
    _page, statements_1 = visit(world, client, f"/lead/{world.few}?tab=conversion")
    page_12, statements_12 = visit(world, client, f"/lead/{world.many}?tab=conversion")
    assert len(statements_1) == len(statements_12)
    assert team_reads(statements_1) == team_reads(statements_12) == 1
    assert all(f">{name}<" in page_12 for name in TEAMS.values())
    general, statements = visit(world, client, f"/lead/{world.many}?tab=general")
    assert "Fırsat 0" not in general and team_reads(statements) == 0  # the tab is not shown


def test_a_user_is_read_with_roles_and_teams_in_one_query(world):
    kervan, users = world.kervan, world.kervan.users
    user = users.create("melis", PASSWORD, ["sales", "finance"], full_name="Melis Ak",
                        teams=["tehran", "ankara", "istanbul"])
    teams = kervan.tables.tables["kv_team"]
    with kervan.db.connect() as conn:
        ids = dict(conn.execute(sa.select(teams.c.key, teams.c.id)).all())
    with world.recorder.capture() as statements:
        read = users.get(user.id)
        actor = users.actor(read)
    assert len(queries(statements)) == 1
    assert (read.roles, read.teams) == (["finance", "sales"], ["ankara", "istanbul", "tehran"])
    assert actor.team_ids == frozenset(ids[t] for t in read.teams)
    assert actor.team_id == min(actor.team_ids) and actor.roles == {"sales", "finance"}
    bare = users.create("bora", PASSWORD, [])
    assert (bare.roles, bare.teams, users.actor(bare).team_id) == ([], [], None)
    assert users.by_username(" Melis ") == read and users.by_username("nobody") is None
    everyone = {u.username: u for u in users.all()}
    assert everyone["melis"] == read and everyone["bora"].roles == []
    assert list(everyone) == sorted(everyone)


def test_a_request_reads_its_user_in_one_query(world):
    users = world.kervan.users
    headers = {"Authorization": f"Bearer {users.create_token(users.by_username('admin'))}"}
    client = world.app.test_client()
    client.get("/api/v1/lead?_size=5", headers=headers)
    with world.recorder.capture() as statements:
        assert client.get("/api/v1/lead?_size=5", headers=headers).status_code == 200
    auth = [s for s in queries(statements) if "kv_user" in s.sql or "kv_api_token" in s.sql]
    assert len(auth) == 1
    browser = sign_in(world.app.test_client(), "admin")
    _page, statements = visit(world, browser, "/lead/?_size=5")
    assert sum(1 for s in statements if "kv_session" in s.sql) == 1


def test_the_files_a_page_loads_cost_no_query(world):
    """A page's stylesheets, scripts, icons and fonts depend on no metadata and no user:
    serving them asks the database nothing (a page used to pay one metadata-version query
    for each). Every other request still picks up metadata changes."""
    browser = sign_in(world.app.test_client(), "admin")
    page = browser.get("/lead/?_size=5").get_data(as_text=True)
    files = [path for path in re.findall(r'(?:href|src)="(/[^"?]+\.(?:css|js|svg))"', page)]
    assert any("/static/" in f and f.endswith(".css") for f in files), files
    assert any(f.endswith(".js") for f in files), files
    for path in [*files, "/favicon.ico"]:
        with world.recorder.capture() as statements:
            response = browser.get(path)
        assert response.status_code == 200, path
        response.close()
        assert queries(statements) == [], path
    with world.recorder.capture() as statements:
        assert browser.get("/lead/?_size=5").status_code == 200
    assert any("metadata_version" in s.sql for s in queries(statements))


def test_sign_out_revocation_and_deactivation_count_on_the_next_request(world):
    """Written straight into the database, as another web process or a command would."""
    kervan, users = world.kervan, world.kervan.users
    user = users.create("deniz", PASSWORD, ["sales"], teams=["istanbul"])
    tables = kervan.tables.tables

    def write(statement):
        with kervan.records.transaction() as conn:
            conn.execute(statement)

    def signed_in(client) -> bool:
        return client.get("/lead/").status_code == 200

    token = users.create_token(user)
    api = world.app.test_client()

    def api_status() -> int:
        return api.get("/api/v1/lead", headers={"Authorization": f"Bearer {token}"}).status_code

    browser = sign_in(world.app.test_client(), "deniz")
    assert signed_in(browser) and api_status() == 200
    roles = tables["kv_user_role"]
    write(roles.delete().where(roles.c.user_id == user.id))  # no roles: nothing to read
    assert api_status() == 403
    write(roles.insert().values(user_id=user.id, role="sales"))
    assert api_status() == 200

    sessions = tables["kv_session"]
    write(sessions.update().where(sessions.c.user_id == user.id)
          .values(ended_at=dt.datetime.now(dt.UTC)))
    assert not signed_in(browser)
    tokens = tables["kv_api_token"]
    write(tokens.update().where(tokens.c.user_id == user.id)
          .values(revoked_at=dt.datetime.now(dt.UTC)))
    assert api_status() == 401

    token = users.create_token(user)
    browser = sign_in(world.app.test_client(), "deniz")
    assert signed_in(browser) and api_status() == 200
    people = tables["kv_user"]
    write(people.update().where(people.c.id == user.id).values(active=False))
    assert not signed_in(browser) and api_status() == 401


def test_a_session_is_kept_alive_at_most_every_five_minutes(world):
    kervan, users = world.kervan, world.kervan.users
    user = users.create("sevda", PASSWORD, ["sales"])
    session = users.start_session(user)
    sessions = kervan.tables.tables["kv_session"]

    def set_last_seen(moment: dt.datetime) -> None:
        with kervan.records.transaction() as conn:
            conn.execute(sessions.update().where(sessions.c.user_id == user.id)
                         .values(last_seen_at=moment))

    with world.recorder.capture() as statements:
        assert users.session_user(session).username == "sevda"
    assert [s.sql.split()[0].upper() for s in queries(statements)] == ["SELECT"]
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)
    set_last_seen(long_ago)
    assert users.session_user(session).username == "sevda"
    with kervan.db.connect() as conn:
        seen = conn.execute(sa.select(sessions.c.last_seen_at)
                            .where(sessions.c.user_id == user.id)).scalar_one()
    assert (seen if seen.tzinfo else seen.replace(tzinfo=dt.UTC)) > long_ago
    set_last_seen(long_ago - dt.timedelta(hours=13))  # idle longer than a working day: gone
    assert users.session_user(session) is None


@pytest.mark.skipif(not PG_SERVER, reason="PostgreSQL's pooled connections (SQLite has none)")
def test_a_pooled_connection_is_pinged_only_after_idling(database_url, monkeypatch):
    """A request's three or four uses of the pool take the same warm connection (last in,
    first out) without a ping each; one idle for longer than PING_AFTER_IDLE_SECONDS is
    pinged first and, found dead (a restarted server), replaced without an error. A
    connection that dies within that second fails the statement that meets it, and the
    pool is renewed for the next."""
    engine = make_engine(normalise_database_url(database_url))
    server = sa.create_engine(normalise_database_url(database_url),
                              isolation_level="AUTOCOMMIT")

    def backend() -> int:
        with reading(engine) as conn:
            return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()

    def kill(pid: int) -> None:
        with server.connect() as conn:
            conn.exec_driver_sql("SELECT pg_terminate_backend(%s)", (pid,))

    try:
        first = backend()
        assert backend() == backend() == first
        kill(first)
        monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)
        time.sleep(0.01)
        second = backend()  # pinged, found dead, replaced
        assert second != first
        monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 3600.0)
        kill(second)
        with pytest.raises(sa.exc.OperationalError) as failed:
            backend()
        assert failed.value.connection_invalidated
        assert backend() not in (first, second)
    finally:
        engine.dispose()
        server.dispose()
