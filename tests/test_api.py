"""The JSON API: filters, sorting, cursors, locking, permissions and error shapes."""

from __future__ import annotations

import re

import pytest


@pytest.fixture
def token(crm):
    return crm.users.create_token(crm.users.by_username("admin"))


@pytest.fixture
def api(app, token):
    client = app.test_client()

    def call(method: str, path: str, json=None, headers=None, **kwargs):
        headers = {"Authorization": f"Bearer {token}", **(headers or {})}
        return client.open(f"/api/v1{path}", method=method, json=json, headers=headers,
                           **kwargs)

    return call


def test_authentication_is_required(app):
    response = app.test_client().get("/api/v1/lead")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthenticated"
    wrong = app.test_client().get("/api/v1/lead", headers={"Authorization": "Bearer kv_nope"})
    assert wrong.status_code == 401


def test_create_read_update_archive_history(api):
    created = api("POST", "/lead", {"full_name": "Deniz Aksoy", "source": "web_form",
                                    "email": "Deniz@Example.com"})
    assert created.status_code == 201, created.get_json()
    lead = created.get_json()
    assert lead["email"] == "deniz@example.com" and lead["version"] == 1
    got = api("GET", f"/lead/{lead['id']}").get_json()
    assert got["full_name"] == "Deniz Aksoy"
    patched = api("PATCH", f"/lead/{lead['id']}", {"version": 1, "company": "Aksoy Ltd"})
    assert patched.status_code == 200 and patched.get_json()["version"] == 2
    stale = api("PATCH", f"/lead/{lead['id']}", {"version": 1, "company": "Other"})
    assert stale.status_code == 409
    assert stale.get_json()["error"]["code"] == "conflict"
    assert "version" in stale.get_json()["error"]["fields"]
    archived = api("POST", f"/lead/{lead['id']}/archive")
    assert archived.get_json()["archived_at"] is not None
    listed = api("GET", "/lead").get_json()
    assert all(r["id"] != lead["id"] for r in listed["data"])
    history = api("GET", f"/lead/{lead['id']}/history").get_json()["data"]
    assert [h["action"] for h in history] == ["create", "update", "archive"]


def test_validation_errors_name_each_field(api):
    response = api("POST", "/lead", {"full_name": "X", "source": "fax", "colour": "red"})
    assert response.status_code == 422
    fields = response.get_json()["error"]["fields"]
    assert "colour" in fields and "source" in fields
    missing = api("POST", "/lead", {"company": "Y"})
    fields = missing.get_json()["error"]["fields"]
    assert fields["source"] == "is required" and "phone" in fields and "email" in fields
    assert api("POST", "/lead", json=[1, 2]).status_code == 400
    assert api("POST", "/lead", data="not json", headers={
        "Content-Type": "application/json"}).status_code == 400
    assert api("PATCH", "/lead/1", {"company": "Z"}).status_code == 422
    assert api("GET", "/spaceship").status_code == 404
    assert api("GET", "/lead/999999").status_code == 404


def test_filters_sorting_and_cursor_pages_with_equal_values(api):
    for index in range(7):
        api("POST", "/lead", {"full_name": f"Kişi {index}", "source":
                              "google" if index % 2 else "meta", "email": f"k{index}@ex.com",
                              "estimated_value": {"amount": "100", "currency": "TRY"}})
    google = api("GET", "/lead?source=google&_sort=full_name").get_json()
    assert [r["full_name"] for r in google["data"]] == ["Kişi 1", "Kişi 3", "Kişi 5"]
    assert google["count"] == 3
    assert api("GET", "/lead?source__in=google,meta").get_json()["count"] == 7
    assert api("GET", "/lead?full_name__startswith=ki&_size=2").get_json()["next"]
    assert api("GET", "/lead?email__contains=k3").get_json()["count"] == 1
    assert api("GET", "/lead?company__isnull=true").get_json()["count"] == 7
    seen, cursor = [], None
    while True:  # every page sorted by an equal value: the id tiebreak keeps it exact
        query = "/lead?_sort=-estimated_value&_size=3" + (f"&_next={cursor}" if cursor else "")
        page = api("GET", query).get_json()
        seen += [r["id"] for r in page["data"]]
        cursor = page["next"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 7
    bad = api("GET", "/lead?nonsense=1&_sort=nothing&_size=900")
    assert bad.status_code == 400
    assert {"nonsense", "_sort", "_size"} <= set(bad.get_json()["error"]["fields"])


def test_permissions_apply_to_the_api(crm, app):
    ayse = crm.users.by_username("ayse")
    token = crm.users.create_token(ayse)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    crm.records.create("lead", {"full_name": "Başkasının", "source": "other",
                                "email": "b@ex.com"})
    assert client.get("/api/v1/lead", headers=headers).get_json()["count"] == 0
    denied = client.get("/api/v1/stock_movement", headers=headers)
    assert denied.status_code == 403
    assert denied.get_json()["error"]["fields"] == {"_permission": "stock_movement.read"}
    meta = client.get("/api/v1/meta", headers=headers).get_json()
    assert "lead" in meta["entities"] and "stock_movement" not in meta["entities"]
    assert "cost" not in meta["entities"]["product"]["fields"]


def test_related_records_and_transition(api):
    account = api("POST", "/account", {"name": "Ege Tekstil", "kind": "individual"}).get_json()
    api("POST", "/contact", {"first_name": "Ece", "last_name": "Ak", "account": account["id"]})
    contacts = api("GET", f"/account/{account['id']}/contact").get_json()
    assert [c["first_name"] for c in contacts["data"]] == ["Ece"]
    opportunity = api("POST", "/opportunity", {"name": "Kumaş", "account": account["id"],
                                               "amount": "1000"})
    moved = api("POST", f"/opportunity/{opportunity.get_json()['id']}/transition",
                {"to": "negotiation"})
    assert moved.status_code == 200 and moved.get_json()["stage"] == "negotiation"
    refused = api("POST", f"/opportunity/{opportunity.get_json()['id']}/transition",
                  {"to": "nowhere"})
    assert refused.status_code == 422


def test_session_cookie_needs_csrf_header_for_writes(app):
    browser = app.test_client()
    page = browser.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    browser.post("/login", data={"username": "admin", "password": "Kervan-2026!",
                                 "csrf_token": csrf})
    assert browser.get("/api/v1/lead").status_code == 200
    refused = browser.post("/api/v1/lead", json={"company": "X", "source": "other",
                                                 "email": "x@ex.com"})
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "csrf"
    # a new session on sign-in means a new CSRF token: take it from a page
    page = browser.get("/lead/").get_data(as_text=True)
    fresh = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    ok = browser.post("/api/v1/lead", json={"company": "X", "source": "other",
                                            "email": "x@ex.com"},
                      headers={"X-CSRFToken": fresh})
    assert ok.status_code == 201


def test_json_records_are_marshmallows_own_dump_byte_for_byte(crm, app):
    """The API dumps a page through `dump_records`, not marshmallow's per-value lookups:
    the same bytes for every field type, lines, hidden fields and keys a record lacks."""
    from werkzeug.datastructures import MultiDict

    from engine.query.params import parse_list_args
    from engine.web.schemas import dump_records, entity_schema

    account = crm.records.create("account", {"name": "Ölçü A.Ş.", "kind": "individual",
                                             "tags": ["vip"], "credit_limit": "1500.50"})
    quote = crm.records.create("quote", {"account": account["id"], "currency": "try",
                                         "quote_date": "2026-01-05", "lines": [
                                             {"description": "Vana", "quantity": 2.5},
                                             {"description": "Boru", "quantity": 1}]})
    crm.records.create("product", {"name": "Pres", "price": {"amount": "12.30",
                                                             "currency": "TRY"},
                                   "cost": {"amount": "9.99", "currency": "TRY"}})
    crm.records.create("lead", {"full_name": "Şule Işık", "source": "other",
                                "email": "sule@example.com", "estimated_value": "10"})
    with app.app_context():
        for username in ("admin", "ayse"):  # ayse may not see a product's cost
            actor = crm.users.actor(crm.users.by_username(username))
            for key in ("account", "quote", "product", "lead"):
                entity = crm.model.entity(key)
                rows = crm.records.list(key, parse_list_args(entity, MultiDict()),
                                        actor=actor).rows
                if key == "quote":
                    rows.append(crm.records.get("quote", quote["id"]))  # with its lines
                rows.append({"id": 7, "version": 1})  # keys a record lacks are left out
                schema = entity_schema(crm.model, entity,
                                       crm.permissions.field_access(actor, entity).hidden)
                assert app.json.dumps(dump_records(schema, rows)) == \
                    app.json.dumps(schema.dump(rows, many=True)), (username, key)
