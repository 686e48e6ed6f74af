"""Generated screens through the Flask test client: the whole request path, real database."""

from __future__ import annotations

import csv
import io
import re

import pytest

from .conftest import sign_in


@pytest.fixture
def client(csrf_free_app):
    return sign_in(csrf_free_app.test_client(), "admin")


def lead_form(**values):
    form = {f"{k}__present": "1" for k in values}
    form.update(values)
    return form


def test_pages_need_a_session_and_logout_ends_it(csrf_free_app):
    anonymous = csrf_free_app.test_client()
    response = anonymous.get("/lead/")
    assert response.status_code == 302 and "/login" in response.location
    client = sign_in(csrf_free_app.test_client(), "admin")
    assert client.get("/lead/").status_code == 200
    client.post("/logout")
    assert client.get("/lead/").status_code == 302


def test_wrong_password_is_refused_with_a_message(csrf_free_app):
    response = csrf_free_app.test_client().post("/login", data={"username": "admin",
                                                                "password": "nope-nope"})
    assert response.status_code == 401
    assert "Wrong username or password" in response.get_data(as_text=True)


def test_csrf_is_required_on_forms(app):
    client = app.test_client()
    response = client.post("/login", data={"username": "admin", "password": "x"})
    assert response.status_code == 400
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    ok = client.post("/login", data={"username": "admin", "password": "Kervan-2026!",
                                     "csrf_token": token})
    assert ok.status_code == 302


def test_create_lead_errors_show_next_to_fields_then_succeeds(client):
    bad = client.post("/lead/new", data=lead_form(full_name="Kemal Aydın", source=""))
    assert bad.status_code == 422
    page = bad.get_data(as_text=True)
    assert 'data-error-for="source"' in page and "is required" in page
    assert 'data-error-for="phone"' in page
    assert 'value="Kemal Aydın"' in page  # what was typed is kept
    good = client.post("/lead/new", data=lead_form(full_name="Kemal Aydın", source="referral",
                                                   phone="+90 532 000 11 22"))
    assert good.status_code == 302
    detail = client.get(good.location).get_data(as_text=True)
    assert "Kemal Aydın" in detail and "+90 532 000 11 22" in detail


def test_list_filters_sort_sentence_and_csv(client, crm):
    for name, source in [("Bora", "google"), ("Cem", "meta"), ("Ali", "google")]:
        crm.records.create("lead", {"full_name": name, "source": source,
                                    "email": f"{name.lower()}@example.com"})
    page = client.get("/lead/?source=google&_sort=full_name").get_data(as_text=True)
    assert page.index(">Ali<") < page.index(">Bora<") and ">Cem<" not in page
    assert "Source is Google" in page
    exported = client.get("/lead/export.csv?source=google&_sort=-full_name")
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True))))
    assert [r[0] for r in rows[1:]] == ["Bora", "Ali"]


def test_detail_tabs_related_history_and_favourite(client, crm):
    account = crm.records.create("account", {"name": "Anadolu Makina", "kind": "individual"})
    crm.records.create("contact", {"first_name": "Ece", "last_name": "Demir",
                                   "account": account["id"]})
    detail = client.get(f"/account/{account['id']}").get_data(as_text=True)
    assert "Anadolu Makina" in detail
    tabs = re.findall(r'data-testid="tab-([a-z_]+)"', detail)
    assert "history" in tabs and len(tabs) >= 3
    related = next(t for t in tabs if "contact" in client.get(
        f"/account/{account['id']}?tab={t}").get_data(as_text=True).lower()
        and "Ece" in client.get(f"/account/{account['id']}?tab={t}").get_data(as_text=True))
    assert related
    history = client.get(f"/account/{account['id']}?tab=history").get_data(as_text=True)
    assert "created" in history
    client.post(f"/account/{account['id']}/favourite")
    assert "Anadolu Makina" in client.get("/").get_data(as_text=True)


def test_search_groups_by_entity_and_matches_phone_digits(client, crm):
    crm.records.create("lead", {"full_name": "Selin Kara", "source": "web_form",
                                "phone": "0 (532) 765 43 21"})
    page = client.get("/search?q=5327654321").get_data(as_text=True)
    assert "Selin Kara" in page and 'data-testid="results-lead"' in page


def test_sales_user_gets_access_denied_not_a_crash(csrf_free_app):
    client = sign_in(csrf_free_app.test_client(), "ayse")
    response = client.get("/invoice/new")
    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert "invoice.create" in page  # the page names the missing permission (in Turkish)


def test_upload_download_and_delete_a_file(client, crm):
    account = crm.records.create("account", {"name": "Dosya Ltd", "kind": "individual"})
    url = f"/account/{account['id']}/files"
    refused = client.post(url, data={"file": (io.BytesIO(b"MZ\x90\x00"), "tool.exe")},
                          content_type="multipart/form-data", follow_redirects=True)
    assert "are not accepted" in refused.get_data(as_text=True)
    client.post(url, data={"file": (io.BytesIO(b"%PDF-1.4 demo"), "teklif.pdf")},
                content_type="multipart/form-data")
    page = client.get(f"/account/{account['id']}?tab=files").get_data(as_text=True)
    file_id = re.search(r'href="/files/(\d+)">teklif.pdf', page).group(1)
    general = client.get(f"/account/{account['id']}").get_data(as_text=True)
    badge = r'data-testid="tab-files">Files\s*<span class="badge text-bg-light">1</span>'
    assert re.search(badge, page) and re.search(badge, general)  # every tab counts the files
    assert "teklif.pdf" not in general  # but only the files tab lists them
    download = client.get(f"/files/{file_id}")
    assert download.data == b"%PDF-1.4 demo"
    download.close()
    client.post(f"/files/{file_id}/delete")
    assert client.get(f"/files/{file_id}").status_code == 404


def test_kanban_move_refusal_says_why(client, crm):
    opportunity = crm.records.create("opportunity", {
        "name": "Pompa projesi", "account": crm.records.create(
            "account", {"name": "Ege", "kind": "individual"})["id"], "amount": "5000"})
    moved = client.post(f"/opportunity/{opportunity['id']}/move",
                        json={"to": "negotiation", "version": opportunity["version"]})
    assert moved.status_code == 200 and moved.get_json()["stage"] == "negotiation"
    stale = client.post(f"/opportunity/{opportunity['id']}/move",
                        json={"to": "won", "version": opportunity["version"]})
    assert stale.status_code == 409
    assert "changed by someone else" in stale.get_json()["error"]["message"]
    board = client.get("/opportunity/kanban").get_data(as_text=True)
    assert 'data-testid="column-negotiation"' in board


def test_calendar_views(client, crm):
    crm.records.create("meeting", {"subject": "Fuar hazırlık",
                                   "start_at": "2026-03-10T09:00:00+03:00",
                                   "end_at": "2026-03-10T10:00:00+03:00"})
    for view in ("day", "week", "month"):
        page = client.get(f"/calendar?view={view}&date=2026-03-10").get_data(as_text=True)
        assert "Fuar hazırlık" in page


def test_admin_manages_users_and_teams_and_sees_roles(client, crm, csrf_free_app):
    page = client.get("/admin/users").get_data(as_text=True)
    assert "ayse" in page and "istanbul" in page
    weak = client.post("/admin/users", data={"username": "yeni", "password": "123",
                                             "roles": ["sales"]})
    assert weak.status_code == 422
    assert "at least 8 characters" in weak.get_data(as_text=True)
    made = client.post("/admin/users", data={"username": "yeni", "password": "Guclu-Parola-9",
                                             "roles": ["sales"], "teams": "izmir",
                                             "full_name": "Yeni Kişi", "language": "tr"})
    assert made.status_code == 302
    user = crm.users.by_username("yeni")
    assert user.roles == ["sales"] and user.teams == ["izmir"]
    session = sign_in(csrf_free_app.test_client(), "yeni", "Guclu-Parola-9")
    client.post(f"/admin/users/{user.id}", data={"roles": ["sales"], "teams": "izmir",
                                                 "language": "tr"})  # unchecked: inactive
    assert session.get("/lead/").status_code == 302  # the deactivated user's session died
    roles = client.get("/admin/roles").get_data(as_text=True)
    assert 'data-testid="role-sales"' in roles and "product.cost" in roles
    denied = sign_in(csrf_free_app.test_client(), "ayse").get("/admin/users")
    assert denied.status_code == 403


def test_lead_conversion_screen_and_document_buttons(client, crm):
    lead = crm.records.create("lead", {"full_name": "Murat Şen", "company": "Şen Tekstil",
                                       "email": "murat@sentekstil.example",
                                       "source": "trade_fair"})
    detail = client.get(f"/lead/{lead['id']}").get_data(as_text=True)
    assert 'data-testid="action-convert-lead_to_customer"' in detail
    form = client.get(f"/lead/{lead['id']}/convert/lead_to_customer")
    assert form.status_code == 200 and "value-account-tax_number" in form.get_data(as_text=True)
    refused = client.post(f"/lead/{lead['id']}/convert/lead_to_customer", data={})
    assert refused.status_code == 422
    assert 'data-error-for="account.tax_number"' in refused.get_data(as_text=True)
    done = client.post(f"/lead/{lead['id']}/convert/lead_to_customer", data={
        "value-account-tax_number": "4445556667", "value-account-sector": "textile"})
    assert done.status_code == 302 and "/account/" in done.location
    assert crm.records.get("lead", lead["id"])["stage"] == "converted"
    account_id = int(done.location.rstrip("/").split("/")[-1])
    quote = crm.records.create("quote", {"account": account_id, "currency": "try",
                                         "quote_date": "2026-11-01", "lines": [
                                             {"description": "Kumaş", "quantity": 1,
                                              "unit_price": "100", "vat_rate": "20"}]})
    page = client.get(f"/quote/{quote['id']}").get_data(as_text=True)
    assert 'data-testid="action-print"' in page and 'data-testid="action-send"' in page
    pdf = client.get(f"/quote/{quote['id']}/print")
    assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")


def test_admin_previews_and_installs_a_pack(client, crm):
    page = client.get("/admin/packs?preview=health_tourism").get_data(as_text=True)
    assert 'data-testid="pack-plan"' in page and "install pack health_tourism" in page
    client.post("/admin/packs/health_tourism/install")
    crm.refresh()
    assert "doctor" in crm.model.entities
    listed = client.get("/admin/packs").get_data(as_text=True)
    assert 'data-testid="uninstall-health_tourism"' in listed
