"""The generated screens in a real browser: what a sales person does in a day, click by click.

Chromium (Debian's /usr/bin/chromium) drives the app served over HTTP by `live_server`;
data the stories start from is written through `crm.records`, as another user would have.
Every main screen is saved to tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from .conftest import PASSWORD, browser_sign_in, screenshot

PDF = b"%PDF-1.4\n% Kervan browser test\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture(autouse=True)
def short_waits(page):
    """A screen that does not show up in 10 s is broken; say so quickly."""
    page.set_default_timeout(10_000)
    expect.set_options(timeout=10_000)


def user_id(crm, username: str) -> int:
    return crm.users.by_username(username).id


def first_column(page) -> list[str]:
    """The texts in the first column of the list table, top to bottom."""
    return page.locator("table.kv-table tbody tr td:first-child").all_inner_texts()


def drag_card(card, column) -> None:
    """Drag a kanban card onto a column with the mouse (HTML5 drag and drop).

    The column must be on screen: at 1366 px the board scrolls sideways and Won/Lost are
    past the edge, where a Playwright drag drops nothing (it works at 1920 px).
    """
    card.drag_to(column.locator(".kv-cards"))


# -- 1-4: sign in, create a lead (fixing a mistake), find it, filter and sort the list --------

def test_sales_rep_creates_a_lead_finds_it_and_works_the_list(page, crm):
    admin = user_id(crm, "admin")
    for name, source in [("Bora Şahin", "google"), ("Cem Öztürk", "meta"),
                         ("Ali Yıldız", "google"), ("Deniz Kaya", "google")]:
        crm.records.create("lead", {"full_name": name, "source": source, "owner": admin,
                                    "email": f"{name.split()[0].lower()}@example.com"})
    crm.records.create("contact", {"first_name": "Leyla", "last_name": "Aydınlı",
                                   "email": "leyla@example.com", "owner": admin})

    # 1. The login form.
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
    expect(page.locator("#username")).to_be_visible()
    screenshot(page, "login")
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/")
    expect(page.locator("h1")).to_contain_text("Ada Admin")
    screenshot(page, "dashboard")

    # 2. A new lead with the required source left out: the error sits next to that field.
    page.goto("/lead/")
    page.locator(".kv-actions a", has_text="New").click()
    page.wait_for_url("**/lead/new")
    form = page.get_by_test_id("record-form")
    form.locator("#full_name").fill("Kemal Aydın")
    form.locator("#company").fill("Aydın Tekstil")
    form.locator("#phone").fill("+90 532 000 11 22")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("form-errors")).to_be_visible()
    error = page.locator("[data-error-for=source]")
    expect(error).to_be_visible()
    expect(error).to_contain_text("required")
    # ...next to it: the message is in the same form group as the Source select.
    group = page.locator("div.col-md-6", has=page.locator("select#source"))
    expect(group.locator("[data-error-for=source]")).to_be_visible()
    expect(page.locator("select#source")).to_have_class(re.compile(r"\bis-invalid\b"))
    expect(form.locator("#full_name")).to_have_value("Kemal Aydın")  # what was typed is kept
    screenshot(page, "lead-form-with-errors")

    page.select_option("select#source", "referral")
    page.get_by_test_id("save").click()
    page.wait_for_url(re.compile(r"/lead/\d+$"))
    expect(page.locator("h1")).to_contain_text("Kemal Aydın")
    expect(page.locator(".kv-header")).to_contain_text("Referral")
    expect(page.locator(".kv-tab-body")).to_contain_text("+90 532 000 11 22")
    lead_url = page.url
    screenshot(page, "lead-detail")

    # 3. The search box in the top bar finds it; results come grouped by entity.
    box = page.locator(".kv-topbar input[name=q]")
    box.fill("Aydın")
    box.press("Enter")
    page.wait_for_url("**/search?q=*")
    leads = page.get_by_test_id("results-lead")
    expect(leads).to_contain_text("Kemal Aydın")
    expect(leads.locator(".card-header")).to_contain_text("Leads")
    contacts = page.get_by_test_id("results-contact")
    expect(contacts).to_contain_text("Leyla Aydınlı")
    expect(contacts.locator(".card-header")).to_contain_text("Contacts")
    screenshot(page, "search-results")
    leads.get_by_role("link", name="Kemal Aydın").click()
    expect(page).to_have_url(lead_url)

    # 4. The lead list: choose a source, Apply, read the sentence; sort by a column header.
    page.locator(".kv-sidebar a", has_text="Leads").click()
    page.wait_for_url("**/lead/")
    assert len(first_column(page)) == 5
    page.select_option("#f-source", "google")
    page.locator("#filters button[type=submit]").click()
    page.wait_for_url("**/lead/?*source=google*")
    expect(page.get_by_test_id("filter-sentence")).to_contain_text("Source is Google")
    expect(page.get_by_test_id("filter-sentence")).to_contain_text(re.compile(r"·\s*3\s+records"))
    header = page.locator("a.kv-sort", has_text="Full name")
    header.click()
    page.wait_for_url("**_sort=full_name*")
    assert first_column(page) == ["Ali Yıldız", "Bora Şahin", "Deniz Kaya"]
    page.locator("a.kv-sort", has_text="Full name").click()
    page.wait_for_url("**_sort=-full_name*")
    assert first_column(page) == ["Deniz Kaya", "Bora Şahin", "Ali Yıldız"]
    expect(page.get_by_test_id("filter-sentence")).to_contain_text("Source is Google")
    expect(page.locator("#f-source")).to_have_value("google")
    screenshot(page, "lead-list")


# -- 5 and 8: an account's tabs, and a file uploaded then downloaded ---------------------------

def test_account_tabs_list_its_people_and_deals_and_keep_its_files(page, crm, tmp_path):
    admin = user_id(crm, "admin")
    account = crm.records.create("account", {"name": "Anadolu Makina", "kind": "company",
                                             "sector": "machinery", "tax_number": "1234567890",
                                             "owner": admin})
    crm.records.create("contact", {"first_name": "Ece", "last_name": "Demir",
                                   "account": account["id"], "owner": admin})
    crm.records.create("opportunity", {"name": "Pres hattı yenileme", "account": account["id"],
                                       "owner": admin})
    browser_sign_in(page, "admin")

    # 5. Open the account from the list and walk every tab.
    page.goto("/account/")
    page.get_by_role("link", name="Anadolu Makina").click()
    page.wait_for_url(f"**/account/{account['id']}")
    expect(page.locator("h1")).to_contain_text("Anadolu Makina")
    tabs = page.locator("[data-testid^=tab-]")
    keys = [t.get_attribute("data-testid").removeprefix("tab-") for t in tabs.all()]
    assert keys[0] == "general" and {"contacts", "opportunities", "files", "history"} <= set(keys)
    for key in keys:
        page.get_by_test_id(f"tab-{key}").click()
        page.wait_for_url(f"**?tab={key}")
        expect(page.get_by_test_id(f"tab-{key}")).to_have_class(re.compile(r"\bactive\b"))
        if key == "contacts":
            related = page.get_by_test_id("related-contact")
            expect(related).to_contain_text("Ece")
            expect(related).to_contain_text("Demir")
        elif key == "opportunities":
            expect(page.get_by_test_id("related-opportunity")).to_contain_text(
                "Pres hattı yenileme")
        elif key == "history":
            expect(page.get_by_test_id("history")).to_contain_text("created")
        screenshot(page, f"account-detail-{key}")

    # 8. Upload a file on the Files tab and download it back, byte for byte.
    page.get_by_test_id("tab-files").click()
    page.wait_for_url("**?tab=files")
    page.get_by_test_id("file-input").set_input_files(
        files=[{"name": "teklif.pdf", "mimeType": "application/pdf", "buffer": PDF}])
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url("**?tab=files")
    expect(page.get_by_role("alert")).to_contain_text("File uploaded")
    files = page.get_by_test_id("files")
    expect(files).to_contain_text("teklif.pdf")
    expect(page.get_by_test_id("tab-files")).to_contain_text("1")
    screenshot(page, "files")
    with page.expect_download() as info:
        files.get_by_role("link", name="teklif.pdf").click()
    download = info.value
    assert download.suggested_filename == "teklif.pdf"
    saved = tmp_path / "downloaded.pdf"
    download.save_as(saved)
    assert Path(saved).read_bytes() == PDF


# -- 6 and 7: the pipeline board, a refused move, the history; then the calendar --------------

def test_opportunity_moves_on_the_board_and_the_history_shows_it(page, crm):
    admin = user_id(crm, "admin")
    account = crm.records.create("account", {"name": "Ege Pompa", "kind": "individual",
                                             "owner": admin})
    pump = crm.records.create("opportunity", {"name": "Pompa projesi", "account": account["id"],
                                              "amount": {"amount": "125000", "currency": "TRY"},
                                              "owner": admin})
    valve = crm.records.create("opportunity", {"name": "Vana projesi", "account": account["id"],
                                               "owner": admin})
    zone = ZoneInfo("Europe/Istanbul")
    today = dt.datetime.now(zone).replace(hour=10, minute=0, second=0, microsecond=0)
    crm.records.create("meeting", {"subject": "Pompa sunumu", "start_at": today.isoformat(),
                                   "end_at": (today + dt.timedelta(hours=1)).isoformat(),
                                   "owner": admin})
    browser_sign_in(page, "admin")

    # 6. Drag "Pompa projesi" from First contact to Negotiation.
    page.goto("/opportunity/kanban")
    first = page.get_by_test_id("column-first_contact")
    negotiation = page.get_by_test_id("column-negotiation")
    card = page.get_by_test_id(f"card-{pump['id']}")
    expect(first.get_by_test_id(f"card-{pump['id']}")).to_be_visible()
    with page.expect_response(f"**/opportunity/{pump['id']}/move") as moved:
        drag_card(card, negotiation)
    assert moved.value.status == 200
    expect(negotiation.get_by_test_id(f"card-{pump['id']}")).to_be_visible()
    expect(negotiation.locator(".kv-count")).to_have_text("1")
    expect(page.get_by_test_id("board-error")).to_be_hidden()
    page.reload()
    expect(page.get_by_test_id("column-negotiation").get_by_test_id(
        f"card-{pump['id']}")).to_be_visible()
    assert crm.records.get("opportunity", pump["id"])["stage"] == "negotiation"
    screenshot(page, "kanban")

    # A refused move: someone else changed "Vana projesi" after the board was drawn.
    crm.records.update("opportunity", valve["id"], {"next_step": "Fiyatı yeniden sor"},
                       version=valve["version"])
    valve_card = page.get_by_test_id(f"card-{valve['id']}")
    with page.expect_response(f"**/opportunity/{valve['id']}/move") as refused:
        drag_card(valve_card, page.get_by_test_id("column-quote_sent"))
    assert refused.value.status == 409
    expect(page.get_by_test_id("column-first_contact").get_by_test_id(
        f"card-{valve['id']}")).to_be_visible()
    expect(page.get_by_test_id("column-quote_sent").locator(".kv-card")).to_have_count(0)
    board_error = page.get_by_test_id("board-error")
    expect(board_error).to_be_visible()
    expect(board_error).to_have_text(refused.value.json()["error"]["reason"])  # the server's why
    screenshot(page, "kanban-refused")
    assert crm.records.get("opportunity", valve["id"])["stage"] == "first_contact"

    # 7. The History tab of the moved opportunity: Stage, First contact -> Negotiation.
    page.get_by_test_id(f"card-{pump['id']}").get_by_role("link").click()
    page.wait_for_url(f"**/opportunity/{pump['id']}")
    expect(page.get_by_test_id("stage")).to_have_text("Negotiation")
    page.get_by_test_id("tab-history").click()
    page.wait_for_url("**?tab=history")
    change = page.get_by_test_id("history").locator("tbody tr", has_text="Stage")
    expect(change).to_have_count(1)
    cells = change.locator("td").all_inner_texts()
    assert cells[1] == "Ada Admin" and cells[3:] == ["Stage", "First contact", "→",
                                                      "Negotiation"], cells
    screenshot(page, "opportunity-history")
    page.get_by_test_id("tab-stage_history").click()
    page.wait_for_url("**?tab=stage_history")
    expect(page.get_by_test_id("history")).to_contain_text("Negotiation")
    screenshot(page, "opportunity-stage-history")

    # The calendar, month view, from the sidebar.
    page.locator(".kv-sidebar a", has_text="Calendar").click()
    page.wait_for_url("**/calendar")
    calendar = page.get_by_test_id("calendar")
    expect(calendar).to_be_visible()
    expect(page.locator("a.btn-primary", has_text="Month")).to_be_visible()
    expect(calendar.locator(".kv-today")).to_contain_text("Pompa sunumu")
    expect(calendar.locator(".kv-today")).to_contain_text("10:00")
    screenshot(page, "calendar")
