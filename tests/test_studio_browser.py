"""The studio in a real browser: an admin adds a WhatsApp number to leads, required when the
source is WhatsApp; reverts it; re-applies it and the values come back."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from .conftest import browser_sign_in, screenshot

WHATSAPP_YAML = """entities:
  lead:
    fields:
      whatsapp_number:
        type: phone
        label: {en: WhatsApp number, tr: WhatsApp numarası, fa: شماره واتس‌اپ}
        required_if: {field: source, op: eq, value: whatsapp}
    list:
      columns: {_append: [whatsapp_number]}
"""


def test_admin_adds_a_required_if_field_reverts_and_reapplies(page, crm, app):
    browser_sign_in(page, "admin")
    page.goto("/studio/lead")
    form = page.get_by_test_id("add-field")
    form.locator("[name=key]").fill("whatsapp_number")
    form.locator("[name=type]").select_option("phone")
    form.locator("[name=label_en]").fill("WhatsApp number")
    form.locator("[name=label_tr]").fill("WhatsApp numarası")
    form.locator("[name=label_fa]").fill("شماره واتس‌اپ")
    form.locator("[name=if_field]").select_option("source")
    form.locator("[name=if_value]").fill("whatsapp")
    page.get_by_test_id("preview").click()
    expect(page.get_by_test_id("plan")).to_contain_text("add column whatsapp_number to lead")
    expect(page.get_by_test_id("diff")).to_contain_text("whatsapp_number")
    screenshot(page, "studio-preview")
    page.get_by_test_id("message").fill("WhatsApp leads from Meta ads")
    page.get_by_test_id("apply").click()
    page.wait_for_url("**/studio/revisions")
    expect(page.get_by_test_id("revisions")).to_contain_text("WhatsApp leads from Meta ads")
    screenshot(page, "studio-revisions")

    page.goto("/lead/new")
    expect(page.locator("label[for=whatsapp_number]")).to_have_text("WhatsApp number")
    page.fill("#full_name", "Nilay Aksoy")
    page.select_option("#source", "whatsapp")
    page.fill("#email", "nilay@example.com")
    page.get_by_test_id("save").click()
    expect(page.locator("[data-error-for=whatsapp_number]")).to_contain_text("is required when")
    page.fill("#whatsapp_number", "+90 555 444 33 22")
    page.get_by_test_id("save").click()
    expect(page.locator("h1")).to_contain_text("Nilay Aksoy")
    lead_url = page.url
    page.goto("/lead/")
    expect(page.locator("table")).to_contain_text("+90 555 444 33 22")
    token = crm.users.create_token(crm.users.by_username("admin"))
    meta = app.test_client().get("/api/v1/meta", headers={"Authorization": f"Bearer {token}"})
    assert "whatsapp_number" in meta.get_json()["entities"]["lead"]["fields"]

    page.goto("/studio/revisions")
    revision = page.locator("[data-testid^=revert-]").first
    revision.click()
    expect(page.get_by_test_id("revisions")).to_contain_text("revert")
    page.goto("/lead/new")
    expect(page.locator("#whatsapp_number")).to_have_count(0)
    page.goto(lead_url)
    expect(page.locator("body")).not_to_contain_text("+90 555 444 33 22")

    page.goto("/studio/")
    page.fill("#overlay", WHATSAPP_YAML)
    page.get_by_test_id("yaml-form").locator(".kv-preview").click()
    expect(page.get_by_test_id("plan")).to_contain_text("no schema changes")  # column kept
    page.get_by_test_id("message").fill("WhatsApp leads again")
    page.get_by_test_id("apply").click()
    page.wait_for_url("**/studio/revisions")
    page.goto(lead_url)
    expect(page.locator("body")).to_contain_text("+90 555 444 33 22")  # the value came back
    screenshot(page, "studio-value-back")


def test_an_invalid_change_is_refused_with_the_reason_and_changes_nothing(page, crm):
    browser_sign_in(page, "admin")
    page.goto("/studio/lead")
    form = page.get_by_test_id("add-field")
    form.locator("[name=key]").fill("partner")
    form.locator("[name=type]").select_option("link")
    page.get_by_test_id("preview").click()
    errors = page.get_by_test_id("studio-errors")
    expect(errors).to_contain_text(re.compile("needs 'target'|target"))
    expect(page.get_by_test_id("apply")).to_be_disabled()
    page.fill("#overlay", "entities:\n  lead:\n    fields:\n      phone: {type: link, "
                          "target: nowhere}\n")
    page.get_by_test_id("yaml-form").locator(".kv-preview").click()
    expect(errors).to_contain_text("links to entity 'nowhere', which does not exist")
    screenshot(page, "studio-refused")
    assert crm.studio.revisions() == []


def test_admin_edits_columns_stages_series_and_permissions(page, crm):
    browser_sign_in(page, "admin")
    page.goto("/studio/opportunity")

    layout = page.get_by_test_id("layout-form")
    layout.locator("[name=columns]").fill("name, account, stage, amount")
    layout.locator(".kv-build").click()
    expect(page.get_by_test_id("diff")).to_contain_text("-    - probability")
    page.get_by_test_id("message").fill("Shorter opportunity list")
    page.get_by_test_id("apply").click()
    page.wait_for_url("**/studio/revisions")

    page.goto("/studio/opportunity")
    stages = page.get_by_test_id("stages-form")
    stages.locator("[name=new_key]").fill("contract")
    stages.locator("[name=new_en]").fill("Contract signed")
    stages.locator("[name=new_tr]").fill("Sözleşme imzalandı")
    stages.locator("[name=new_category]").select_option("open")
    stages.locator("[name=requires-negotiation]").fill("amount, expected_close_date")
    stages.locator(".kv-build").click()
    expect(page.get_by_test_id("diff")).to_contain_text("contract")
    page.get_by_test_id("message").fill("Contract stage")
    page.get_by_test_id("apply").click()
    page.wait_for_url("**/studio/revisions")
    page.goto("/opportunity/kanban")
    expect(page.get_by_test_id("column-contract")).to_contain_text("Contract signed")
    page.goto("/opportunity/")
    headers = page.locator("table thead th")
    expect(headers).to_have_count(4)

    page.goto("/studio/quote")
    series = page.get_by_test_id("series-form").first
    series.locator("[name=pattern]").fill("TK-{YYYY}-{#####}")
    series.locator(".kv-build").click()
    page.get_by_test_id("message").fill("Longer quote numbers")
    page.get_by_test_id("apply").click()
    page.wait_for_url("**/studio/revisions")

    page.goto("/studio/product")
    roles = page.get_by_test_id("roles-form")
    roles.locator("select[name=sales-create]").select_option("all")
    roles.locator(".kv-build").click()
    expect(page.get_by_test_id("diff")).to_contain_text("create: all")
    page.get_by_test_id("message").fill("Sales may add products")
    page.get_by_test_id("apply").click()
    page.wait_for_url("**/studio/revisions")
    screenshot(page, "studio-four-revisions")

    crm.refresh()
    ayse = crm.users.actor(crm.users.by_username("ayse"))
    assert crm.permissions.scope(ayse, crm.model.entity("product"), "create") == "all"
    assert [s.pattern for s in crm.model.entity("quote").series] == ["TK-{YYYY}-{#####}"]
    account = crm.records.create("account", {"name": "Sözleşme", "kind": "individual"})
    opp = crm.records.create("opportunity", {"name": "Yeni aşama", "account": account["id"],
                                             "amount": "5"})
    from engine.records import ValidationFailed

    try:
        crm.workflow.transition("opportunity", opp["id"], "negotiation",
                                crm.users.actor(crm.users.by_username("admin")))
    except ValidationFailed as exc:
        assert "expected_close_date" in exc.fields
    else:
        raise AssertionError("the new requirement was not enforced")
