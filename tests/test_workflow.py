"""Pipelines and workflows: the whole sales path through the API, guards, rollback,
conversion with duplicates, stage history, renamed stages, and the lifecycle job."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from engine.workflow.lifecycle import recompute_lifecycles

from .conftest import BASE_METADATA


@pytest.fixture
def api(app, crm):
    client = app.test_client()
    token = crm.users.create_token(crm.users.by_username("ayse"))

    def call(method: str, path: str, json=None):
        return client.open(f"/api/v1{path}", method=method, json=json,
                           headers={"Authorization": f"Bearer {token}"})

    return call


def test_the_whole_sales_path_through_the_api(api, crm):
    today = dt.datetime.now(ZoneInfo(crm.settings.timezone)).date()  # the CRM's day
    lead = api("POST", "/lead", {"full_name": "Deniz Aksoy", "company": "Aksoy Makina",
                                 "phone": "+90 532 555 44 33", "source": "trade_fair",
                                 "estimated_value": {"amount": "250000", "currency": "TRY"}})
    assert lead.status_code == 201, lead.get_json()
    lead_id = lead.get_json()["id"]

    needs = api("POST", f"/lead/{lead_id}/convert")
    assert needs.status_code == 422  # a company customer needs its tax number and sector
    assert set(needs.get_json()["error"]["fields"]) == {"account.tax_number", "account.sector"}
    assert api("GET", f"/lead/{lead_id}").get_json()["stage"] == "new"  # nothing half-done
    converted = api("POST", f"/lead/{lead_id}/convert", {"values": {"account": {
        "tax_number": "1112223334", "sector": "machinery"}}})
    assert converted.status_code == 200, converted.get_json()
    ids = converted.get_json()
    assert ids["account"]["created"] and ids["contact"]["created"]
    opportunity_id = ids["opportunity"]["id"]
    lead_now = api("GET", f"/lead/{lead_id}").get_json()
    assert lead_now["stage"] == "converted"
    assert lead_now["converted_account"] == ids["account"]["id"]
    opportunity = api("GET", f"/opportunity/{opportunity_id}").get_json()
    assert opportunity["account"] == ids["account"]["id"]
    assert opportunity["amount"] == {"amount": "250000.00", "currency": "TRY"}

    quote = api("POST", "/quote", {
        "account": ids["account"]["id"], "opportunity": opportunity_id, "currency": "try",
        "quote_date": today.isoformat(),
        "lines": [{"description": "Pompa hattı", "quantity": "2",
                   "unit_price": {"amount": "125000", "currency": "TRY"}}]})
    assert quote.status_code == 201, quote.get_json()
    quote = quote.get_json()
    assert quote["number"].startswith(f"T-{today.year}-")

    skipped = api("POST", f"/quote/{quote['id']}/transition", {"to": "approved"})
    assert skipped.status_code == 409
    assert "from Draft it can move to: Sent, Cancelled" in skipped.get_json()["error"]["message"]
    sent = api("POST", f"/quote/{quote['id']}/transition", {"to": "sent"})
    assert sent.status_code == 200, sent.get_json()
    approved = api("POST", f"/quote/{quote['id']}/transition", {"to": "approved"})
    assert approved.status_code == 200, approved.get_json()

    won = api("GET", f"/opportunity/{opportunity_id}").get_json()
    assert won["stage"] == "won" and won["probability"] == "100.0000"
    projects = api("GET", f"/project?opportunity={opportunity_id}").get_json()["data"]
    assert len(projects) == 1
    project = api("GET", f"/project/{projects[0]['id']}").get_json()
    assert project["number"].startswith("P-")
    assert [s["status"] for s in project["stages"]] == ["planned"] * 5
    assert project["stages"][0]["planned_start"] == today.isoformat()
    tasks = api("GET", f"/task?project={project['id']}").get_json()["data"]
    assert len(tasks) == 2
    hand_over = api("GET", f"/task?quote={quote['id']}").get_json()["data"]
    assert hand_over and hand_over[0]["subject"].startswith("Hand over to operations")

    history = api("GET", f"/opportunity/{opportunity_id}/stages").get_json()["data"]
    assert [(h["from"], h["to"]) for h in history] == [(None, "first_contact"),
                                                       ("first_contact", "won")]
    assert history[-1]["to_category"] == "won" and history[-1]["seconds_in_previous"] >= 0


def test_guards_name_missing_fields_and_roles(api, app, crm):
    account = crm.records.create("account", {"name": "Ege", "kind": "individual"})
    opp = crm.records.create("opportunity", {"name": "Kumaş", "account": account["id"],
                                             "owner": crm.users.by_username("ayse").id})
    lost = api("POST", f"/opportunity/{opp['id']}/transition", {"to": "lost"})
    assert lost.status_code == 422
    assert lost.get_json()["error"]["fields"] == {"lost_reason": "is required to move to Lost"}
    admin = crm.users.actor(crm.users.by_username("admin"))
    quote = crm.records.create("quote", {"account": account["id"], "currency": "try",
                                         "quote_date": "2026-01-05", "lines": [
                                             {"description": "x", "quantity": 1}]})
    crm.workflow.transition("quote", quote["id"], "sent", admin)
    crm.users.update(crm.users.by_username("sara").id, roles=["finance", "operations"])
    token = crm.users.create_token(crm.users.by_username("sara"))
    refused = app.test_client().post(f"/api/v1/quote/{quote['id']}/transition",
                                     json={"to": "approved"},
                                     headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code in (403, 409)
    assert "may not" in refused.get_json()["error"]["message"]
    assert crm.records.get("quote", quote["id"])["status"] == "sent"


def test_a_failing_action_rolls_back_the_whole_transition(make_kervan, metadata_dir, crm):
    broken = metadata_dir({"templates.yaml": """
        standard_project:
          entity: project
          values: {name: "", stage: planning}
    """}, name="broken")
    kervan = make_kervan(BASE_METADATA, broken, migrate=False)
    account = kervan.records.create("account", {"name": "Rollback A.Ş.", "kind": "individual"})
    opp = kervan.records.create("opportunity", {"name": "Geri al", "account": account["id"],
                                                "amount": "1000"})
    with pytest.raises(Exception) as caught:
        kervan.workflow.transition("opportunity", opp["id"], "won",
                                   kervan.users.actor(kervan.users.by_username("admin")))
    assert "the create action of opportunity failed, so nothing was changed" in str(caught.value)
    after = kervan.records.get("opportunity", opp["id"])
    assert after["stage"] == "first_contact" and after["version"] == opp["version"]
    with kervan.db.connect() as conn:
        projects = conn.execute(sa.select(sa.func.count()).select_from(
            kervan.tables.tables["project"])).scalar_one()
        moves = conn.execute(sa.select(sa.func.count()).select_from(
            kervan.tables.tables["kv_stage_history"]).where(
            kervan.tables.tables["kv_stage_history"].c.to_stage == "won")).scalar_one()
    assert projects == 0 and moves == 0


def test_conversion_offers_to_link_an_existing_customer(api, crm):
    existing = crm.records.create("account", {"name": "Pars Kimya", "kind": "company",
                                              "tax_number": "9876543210", "sector": "chemicals",
                                              "email": "info@parskimya.ir"})
    lead = crm.records.create("lead", {"company": "Pars Kimya", "full_name": "Reza Karimi",
                                       "email": "info@parskimya.ir", "source": "referral",
                                       "owner": crm.users.by_username("ayse").id})
    offered = api("POST", f"/lead/{lead['id']}/convert")
    assert offered.status_code == 409
    error = offered.get_json()["error"]
    assert error["code"] == "duplicate_found"
    assert error["candidates"][0]["id"] == existing["id"]
    assert error["candidates"][0]["matched_on"] == "email"
    linked = api("POST", f"/lead/{lead['id']}/convert", {"account": existing["id"]})
    assert linked.status_code == 200
    assert linked.get_json()["account"] == {"id": existing["id"], "created": False}
    contact = api("GET", f"/contact/{linked.get_json()['contact']['id']}").get_json()
    assert contact["account"] == existing["id"]


def test_renamed_stages_keep_reports_by_category(make_kervan, metadata_dir, crm):
    renamed = metadata_dir({"entities/opportunity.yaml": """
        opportunity:
          fields:
            stage:
              options:
                _append:
                  - {key: signed, label: {en: Contract signed}, category: won}
    """}, name="renamed")
    kervan = make_kervan(BASE_METADATA, renamed)
    account = kervan.records.create("account", {"name": "Kategori", "kind": "individual"})
    for name, stage in [("A", "won"), ("B", "signed"), ("C", "lost")]:
        opp = kervan.records.create("opportunity", {"name": name, "account": account["id"],
                                                    "amount": "10", "lost_reason": "price"
                                                    if stage == "lost" else None})
        kervan.workflow.transition("opportunity", opp["id"], stage,
                                   kervan.users.actor(kervan.users.by_username("admin")))
    from werkzeug.datastructures import MultiDict

    from engine.query.params import parse_list_args

    entity = kervan.model.entity("opportunity")
    won = kervan.records.list("opportunity", parse_list_args(
        entity, MultiDict({"stage__category": "won"})))
    assert sorted(r["name"] for r in won.rows) == ["A", "B"]


def test_lifecycle_job_sets_segments(crm):
    now = dt.datetime.now(dt.UTC)
    crm.records.create("account", {"name": "Sessiz", "kind": "individual"},
                               at=now - dt.timedelta(days=400))
    buyer = crm.records.create("account", {"name": "Alıcı", "kind": "individual"})
    admin = crm.users.actor(crm.users.by_username("admin"))
    for index in range(2):
        opp = crm.records.create("opportunity", {"name": f"S{index}", "account": buyer["id"],
                                                 "amount": "100"})
        crm.workflow.transition("opportunity", opp["id"], "won", admin)
    old_customer = crm.records.create("account", {"name": "Eski", "kind": "individual"},
                                      at=now - dt.timedelta(days=300))
    sale = crm.records.create("opportunity", {"name": "Eski satış", "account":
                                              old_customer["id"], "amount": "5"},
                              at=now - dt.timedelta(days=200))
    crm.workflow.transition("opportunity", sale["id"], "won", admin)
    recompute_lifecycles(crm, now=now + dt.timedelta(days=120))
    segments = {a["name"]: a["segment"] for a in crm.records.find("account")}
    assert segments["Sessiz"] == "lead"
    assert segments["Alıcı"] == "at_risk"  # two sales, then 120 quiet days
    recompute_lifecycles(crm, now=now)
    segments = {a["name"]: a["segment"] for a in crm.records.find("account")}
    assert segments["Alıcı"] == "active" and segments["Eski"] == "first_sale"


def test_overdue_tasks_and_late_project_stages_are_found(api, crm):
    yesterday = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    ayse = crm.users.by_username("ayse").id
    late = crm.records.create("task", {"subject": "Teklifi ara", "due_date": yesterday,
                                       "owner": ayse})
    crm.records.create("task", {"subject": "Bitti", "due_date": yesterday, "owner": ayse,
                                "status": "completed"})
    crm.records.create("task", {"subject": "Yarın", "owner": ayse,
                                "due_date": (dt.date.today() + dt.timedelta(days=1)).isoformat()})
    overdue = api("GET", "/task?due_date__lt=$today&status__category=planned,active").get_json()
    assert [t["id"] for t in overdue["data"]] == [late["id"]]


def test_won_deal_notifies_operations_in_the_app(crm, csrf_free_app):
    from .conftest import sign_in

    crm.users.create("zeynep", "Kervan-2026!", ["operations"], full_name="Zeynep Ops")
    account = crm.records.create("account", {"name": "Bildirim", "kind": "individual"})
    opp = crm.records.create("opportunity", {"name": "Büyük iş", "account": account["id"],
                                             "amount": "10"})
    crm.workflow.transition("opportunity", opp["id"], "won",
                            crm.users.actor(crm.users.by_username("admin")))
    client = sign_in(csrf_free_app.test_client(), "zeynep")
    page = client.get("/").get_data(as_text=True)
    assert 'data-testid="unread">1<' in page and "Deal won: Büyük iş" in page
    note = re.search(r'href="/notifications/(\d+)"', page).group(1)
    opened = client.get(f"/notifications/{note}")
    assert opened.location.endswith(f"/opportunity/{opp['id']}")
    assert 'data-testid="unread"' not in client.get("/").get_data(as_text=True)
