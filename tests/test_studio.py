"""The studio through its API: validate → preview → apply → revision; revert; export/import."""

from __future__ import annotations

import pytest

WHATSAPP = """
entities:
  lead:
    fields:
      whatsapp_number:
        type: phone
        label: {en: WhatsApp number, tr: WhatsApp numarası, fa: شماره واتس‌اپ}
        required_if: {field: source, op: eq, value: whatsapp}
"""


@pytest.fixture
def studio(app, crm):
    client = app.test_client()
    admin = crm.users.create_token(crm.users.by_username("admin"))

    def call(method, path, body=None, token=admin, **query):
        headers = {"Authorization": f"Bearer {token}"}
        if isinstance(body, str):
            headers["Content-Type"] = "application/yaml"
            return client.open(f"/api/v1/studio{path}", method=method, data=body,
                               headers=headers, query_string=query)
        return client.open(f"/api/v1/studio{path}", method=method, json=body, headers=headers,
                           query_string=query)

    return call


def test_preview_apply_revert_reapply_keeps_values(studio, crm, app):
    preview = studio("POST", "/preview", WHATSAPP)
    assert preview.status_code == 200, preview.get_json()
    body = preview.get_json()
    assert "add column whatsapp_number to lead (string:255)" in body["plan"]
    assert "+      type: phone" in body["diff"]
    assert "whatsapp_number" not in crm.model.entity("lead").fields  # nothing applied

    applied = studio("POST", "/apply", WHATSAPP, message="WhatsApp leads")
    assert applied.status_code == 201, applied.get_json()
    revision = applied.get_json()
    assert revision["message"] == "WhatsApp leads" and revision["author"] == "admin"

    api = app.test_client()
    token = crm.users.create_token(crm.users.by_username("admin"))
    headers = {"Authorization": f"Bearer {token}"}
    refused = api.post("/api/v1/lead", json={"full_name": "Wa", "source": "whatsapp",
                                             "email": "w@ex.com"}, headers=headers)
    assert refused.status_code == 422
    assert "whatsapp_number" in refused.get_json()["error"]["fields"]
    created = api.post("/api/v1/lead", json={"full_name": "Wa", "source": "whatsapp",
                                             "phone": "+90 555 123 45 67",
                                             "whatsapp_number": "+90 555 123 45 67"},
                       headers=headers)
    assert created.status_code == 201, created.get_json()
    created = created.get_json()

    reverted = studio("POST", f"/revisions/{revision['id']}/revert")
    assert reverted.status_code == 201
    lead = api.get(f"/api/v1/lead/{created['id']}", headers=headers).get_json()
    assert "whatsapp_number" not in lead

    again = studio("POST", "/apply", WHATSAPP, message="WhatsApp leads, again")
    assert again.status_code == 201
    lead = api.get(f"/api/v1/lead/{created['id']}", headers=headers).get_json()
    assert lead["whatsapp_number"] == "+90 555 123 45 67"

    listed = studio("GET", "/revisions").get_json()["data"]
    assert [r["kind"] for r in listed] == ["apply", "revert", "apply"]
    detail = studio("GET", f"/revisions/{revision['id']}").get_json()
    assert detail["overlay"].strip() == WHATSAPP.strip() and detail["active"] is False
    exported = studio("GET", "/export").get_data(as_text=True)
    assert "whatsapp_number:" in exported


@pytest.mark.parametrize("overlay, field, message", [
    ("entities:\n  lead:\n    fields:\n      account2: {type: link, target: nowhere}\n",
     "lead.fields.account2.target", "links to entity 'nowhere'"),
    ("entities:\n  lead:\n    fields:\n      phone: {type: phone}\n      phone: {type: text}\n",
     "studio", "duplicate key 'phone'"),
    ("entities:\n  lead:\n    fields:\n      score: {type: stars}\n",
     "lead.fields.score.type", "unknown field type 'stars'"),
    ("entities: [", "studio", "invalid YAML"),
])
def test_invalid_changes_are_refused_with_the_reason_and_change_nothing(studio, crm, overlay,
                                                                         field, message):
    before = crm.model.fingerprint
    for path in ("/preview", "/apply"):
        response = studio("POST", path, overlay, message="try")
        assert response.status_code == 422
        fields = response.get_json()["error"]["fields"]
        assert any(message in text for text in fields.values()), fields
        assert field in fields, fields
    assert studio("GET", "/revisions").get_json()["data"] == []
    crm.refresh()
    assert crm.model.fingerprint == before


def test_studio_is_for_admins_only(studio, crm):
    token = crm.users.create_token(crm.users.by_username("ayse"))
    response = studio("GET", "/revisions", token=token)
    assert response.status_code == 403
    assert response.get_json()["error"]["fields"] == {"_permission": "studio"}


def test_changes_reach_another_process_at_once(studio, crm, make_kervan):
    from .conftest import BASE_METADATA

    other = make_kervan(BASE_METADATA, migrate=False)  # another worker on the same database
    assert "whatsapp_number" not in other.model.entity("lead").fields
    studio("POST", "/apply", WHATSAPP, message="WhatsApp leads")
    other.refresh()
    assert "whatsapp_number" in other.model.entity("lead").fields
