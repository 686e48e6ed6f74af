"""A salesperson builds a quote in the browser: live totals while typing, then saves it."""

from __future__ import annotations

from playwright.sync_api import expect

from .conftest import browser_sign_in, screenshot


def test_quote_line_editor_shows_live_totals_and_saves(page, crm):
    account = crm.records.create("account", {"name": "Canlı Toplam A.Ş.", "kind": "individual"})
    browser_sign_in(page, "admin")
    page.goto(f"/quote/new?account={account['id']}")
    page.fill("#quote_date", "2026-11-20")
    page.select_option("#currency", "try")
    lines = page.get_by_test_id("lines-lines")
    for _ in range(2):
        lines.get_by_test_id("add-line").click()
    rows = lines.locator("tbody tr")
    expect(rows).to_have_count(2)
    first, second = rows.nth(0), rows.nth(1)
    first.locator("[name$='-description']").fill("Pompa")
    first.locator("[name$='-quantity']").fill("2")
    first.locator("[name$='-unit_price']").fill("1000")
    first.locator("[name$='-vat_rate']").fill("20")
    second.locator("[name$='-description']").fill("Montaj")
    second.locator("[name$='-quantity']").fill("1")
    second.locator("[name$='-unit_price']").fill("500")
    second.locator("[name$='-vat_rate']").fill("10")
    totals = page.get_by_test_id("live-totals")
    expect(totals.locator("[data-total=grand_total]")).to_contain_text("2,950.00")
    expect(first.locator("[data-computed]")).to_contain_text("2,000.00")
    screenshot(page, "quote-form-live-totals")
    page.get_by_test_id("save").click()
    expect(page.locator("h1")).to_contain_text("T-")
    quote = crm.records.find("quote")[0]
    assert str(quote["grand_total"]["amount"]) == "2950.00"
    expect(page.get_by_test_id("action-print")).to_be_visible()
    screenshot(page, "quote-detail")
