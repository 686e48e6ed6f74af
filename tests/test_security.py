"""Users, authentication and the permission layer in the record service and lists."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from werkzeug.datastructures import MultiDict

from engine.cli import main
from engine.query.listing import QueryError
from engine.query.params import parse_list_args
from engine.records import RecordError, ValidationFailed
from engine.security.permissions import PermissionDenied
from engine.security.users import MAX_FAILURES, LoginThrottled

from .conftest import SHOP_METADATA

ROLES = {
    "roles/sales.yaml": """
        sales:
          label: {en: Sales, tr: Satış, fa: فروش}
          entities:
            customer: {read: team, create: true, edit: own, delete: none, export: own}
            order: {read: own, create: true, edit: own}
          fields:
            customer.credit: hidden
            customer.tax_number: read_only
    """,
    "roles/admin.yaml": """
        admin:
          label: {en: Administrator}
          admin: true
    """,
}


@pytest.fixture
def secured(metadata_dir, make_kervan):
    return make_kervan(metadata_dir({**SHOP_METADATA, **ROLES}, name="secured"))


def actor(kervan, username, team="north", roles=("sales",)):
    user = kervan.users.create(username, "Kervan-2026!", list(roles), teams=[team])
    return kervan.users.actor(user)


def test_user_create_command_and_password_policy(metadata_dir, cli_env, secured):
    env = cli_env(metadata_dir({**SHOP_METADATA, **ROLES}, name="secured"))
    runner = CliRunner()
    ok = runner.invoke(main, ["user", "create", "ayse", "--role", "sales", "--password",
                              "Kervan-2026!", "--email", "ayse@example.com", "--team", "north"],
                       env=env)
    assert ok.exit_code == 0, ok.output
    assert "created user ayse" in ok.output
    weak = runner.invoke(main, ["user", "create", "mehmet", "--role", "sales", "--password",
                                "password1"], env=env)
    assert weak.exit_code == 1 and "password: is one of the most common passwords" in weak.output
    short = runner.invoke(main, ["user", "create", "mehmet", "--role", "boss", "--password",
                                 "short"], env=env)
    assert "password: must be at least 8 characters" in short.output
    assert "roles: unknown role(s) boss" in short.output
    token = runner.invoke(main, ["token", "create", "ayse"], env=env)
    assert token.exit_code == 0
    value = token.output.strip().splitlines()[-1]
    assert value.startswith("kv_") and secured.users.token_user(value).username == "ayse"
    assert runner.invoke(main, ["token", "revoke", value], env=env).exit_code == 0
    assert secured.users.token_user(value) is None


def test_login_throttling_sessions_and_deactivation(secured):
    user = secured.users.create("ali", "Kervan-2026!", ["sales"])
    assert secured.users.authenticate("ali", "Kervan-2026!").id == user.id
    for _ in range(MAX_FAILURES):
        with pytest.raises(RecordError, match="wrong username or password"):
            secured.users.authenticate("ali", "wrong password")
    with pytest.raises(LoginThrottled, match="too many failed sign-in attempts"):
        secured.users.authenticate("ali", "Kervan-2026!")

    session = secured.users.start_session(user)
    assert secured.users.session_user(session).username == "ali"
    secured.users.end_session(session)
    assert secured.users.session_user(session) is None

    second = secured.users.start_session(user)
    secured.users.update(user.id, active=False)
    assert secured.users.session_user(second) is None


def test_password_reset_token_works_once(secured):
    user = secured.users.create("zeynep", "Kervan-2026!", ["sales"])
    token = secured.users.create_reset(user)
    with pytest.raises(ValidationFailed):
        secured.users.reset_password(token, "123456")
    secured.users.reset_password(token, "Yeni-Parola-77")
    assert secured.users.authenticate("zeynep", "Yeni-Parola-77").id == user.id
    with pytest.raises(RecordError, match="invalid, used or expired"):
        secured.users.reset_password(token, "Baska-Parola-88")


def test_scopes_in_lists_reads_and_writes(secured):
    ayse = actor(secured, "ayse", team="north")
    burak = actor(secured, "burak", team="north")
    cem = actor(secured, "cem", team="south")
    records = secured.records
    mine = records.create("customer", {"name": "Ayşe'nin müşterisi", "kind": "person",
                                       "email": "a@example.com"}, actor=ayse)
    theirs = records.create("customer", {"name": "Cem'in müşterisi", "kind": "person",
                                         "email": "c@example.com"}, actor=cem)
    entity = secured.model.entity("customer")

    def names(who):
        page = records.list("customer", parse_list_args(entity, MultiDict()), actor=who)
        return sorted(r["name"] for r in page.rows)

    assert names(ayse) == ["Ayşe'nin müşterisi"]
    assert names(burak) == ["Ayşe'nin müşterisi"]  # same team may read
    assert names(cem) == ["Cem'in müşterisi"]
    with pytest.raises(PermissionDenied, match="access denied: ayse"):
        records.get("customer", theirs["id"], actor=ayse)
    with pytest.raises(PermissionDenied, match="may not edit customer"):
        records.update("customer", mine["id"], {"name": "x"}, version=1, actor=burak)
    with pytest.raises(PermissionDenied, match="may not delete customer"):
        records.delete("customer", mine["id"], actor=ayse)
    updated = records.update("customer", mine["id"], {"name": "Yeni ad"}, version=1, actor=ayse)
    assert updated["name"] == "Yeni ad"


def test_hidden_and_read_only_fields_everywhere(secured):
    ayse = actor(secured, "ayse")
    admin = actor(secured, "root", roles=("admin",))
    created = secured.records.create("customer", {"name": "Gizli", "kind": "person",
                                                  "email": "g@example.com", "credit": "500"},
                                     actor=admin)
    secured.records.update("customer", created["id"], {"owner": ayse.user_id}, version=1,
                           actor=admin)
    seen = secured.records.get("customer", created["id"], actor=ayse)
    assert "credit" not in seen and seen["name"] == "Gizli"
    assert "credit" in secured.records.get("customer", created["id"], actor=admin)
    entity = secured.model.entity("customer")
    page = secured.records.list("customer", parse_list_args(entity, MultiDict()), actor=ayse)
    assert all("credit" not in row for row in page.rows)
    with pytest.raises(QueryError):
        secured.records.list("customer", parse_list_args(entity, MultiDict({"credit__gt": "1"})),
                             actor=ayse)
    history = secured.records.history("customer", created["id"], actor=ayse)
    created_event = next(h for h in history if h["action"] == "create")
    assert "credit" not in created_event["new"] and created_event["new"]["name"] == "Gizli"
    assert all(h["field"] != "credit" for h in history)
    with pytest.raises(ValidationFailed) as caught:
        secured.records.update("customer", created["id"], {"tax_number": "1"}, version=2,
                               actor=ayse)
    assert caught.value.fields == {"tax_number": "you may not change this field"}
