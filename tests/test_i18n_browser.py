"""Persian and Turkish screens in a real browser: a Tehran and an Istanbul sales person go
through list, detail, form, kanban and calendar. Each screen is saved to tests/artifacts/
(fa-list.png, tr-kanban.png, …) for a person to look at."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from .conftest import browser_sign_in, screenshot

PERSIAN_DIGIT = re.compile(r"[۰-۹]")


@pytest.fixture(autouse=True)
def short_waits(page):
    page.set_default_timeout(10_000)
    expect.set_options(timeout=10_000)


PEOPLE = {
    "fa": [("رضا محمدی", "پارس صنعت", "google", "new", "+98 912 111 2233", "450000000"),
           ("مریم احمدی", "آسیا تجارت", "whatsapp", "contacted", "+98 935 222 3344", "12500000"),
           ("علی کریمی", "", "referral", "qualified", "+98 921 333 4455", "98000000"),
           ("سارا حسینی", "نوین دارو", "trade_fair", "new", "+98 919 444 5566", "7500000"),
           ("حمید رضایی", "البرز ماشین", "web_form", "lost", "+98 912 555 6677", "")],
    "tr": [("Işıl Yıldırım", "IŞIK Aydınlatma", "google", "new", "+90 532 111 22 33", "1234.56"),
           ("İsmail Çelik", "Çelik Döküm", "meta", "contacted", "+90 533 222 33 44", "48500"),
           ("Gülşen Öztürk", "", "referral", "qualified", "+90 542 333 44 55", "125000.5"),
           ("Şükrü Ağaoğlu", "Ağaoğlu İnşaat", "trade_fair", "new", "+90 555 444 55 66", "9999"),
           ("Ümit Kaya", "Kaya Lojistik", "web_form", "lost", "+90 505 555 66 77", "")],
}
CURRENCY = {"fa": "IRR", "tr": "TRY"}
USER = {"fa": "reza", "tr": "ayse"}


def seed(crm, language: str) -> dict:
    """Leads, tasks and meetings of one sales person, written through the record service."""
    owner = crm.users.by_username(USER[language]).id
    leads = []
    for name, company, source, stage, phone, value in PEOPLE[language]:
        values = {"full_name": name, "company": company or None, "source": source,
                  "stage": stage, "phone": phone, "owner": owner}
        if stage == "lost":
            values["lost_reason"] = "قیمت" if language == "fa" else "Fiyat"
        if value:
            values["estimated_value"] = {"amount": value, "currency": CURRENCY[language]}
        leads.append(crm.records.create("lead", values))
    zone = ZoneInfo(crm.settings.timezone)
    today = dt.datetime.now(zone).date()
    subjects = {"fa": ["تماس پیگیری", "ارسال پیش‌فاکتور", "بازدید از کارخانه", "جلسه قرارداد"],
                "tr": ["Takip araması", "Teklif gönderimi", "Fabrika ziyareti",
                       "Sözleşme toplantısı"]}
    for offset, subject in zip((0, 2, 5, -3), subjects[language][:3] + [subjects[language][0]],
                               strict=True):
        crm.records.create("task", {"subject": subject, "due_date": today + dt.timedelta(offset),
                                    "owner": owner, "priority": "high" if offset else "normal"})
    crm.records.create("meeting", {
        "subject": subjects[language][3], "owner": owner,
        "start_at": dt.datetime.combine(today + dt.timedelta(1), dt.time(10, 30), zone)})
    return {"leads": leads, "today": today}


def test_persian_screens_run_right_to_left_in_the_jalali_calendar(page, crm):
    data = seed(crm, "fa")
    page.goto("/login?lang=fa")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    screenshot(page, "fa-login")
    browser_sign_in(page, "reza")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.locator("html")).to_have_attribute("lang", "fa")

    # The sidebar sits on the right of the page.
    sidebar = page.locator(".kv-sidebar").bounding_box()
    main = page.locator(".kv-main").bounding_box()
    assert sidebar["x"] > main["x"]

    screenshot(page, "fa-dashboard")

    page.goto("/lead/")
    count = page.get_by_test_id("record-count")
    expect(count).to_have_text("۵")
    created = page.locator("table.kv-table tbody tr").first.locator("td").last
    assert PERSIAN_DIGIT.search(created.inner_text()), created.inner_text()
    screenshot(page, "fa-list")

    lead = data["leads"][0]
    page.goto(f"/lead/{lead['id']}")
    expect(page.locator("h1")).to_contain_text("رضا محمدی")
    expect(page.locator(".kv-tab-body")).to_contain_text("۴۵۰٬۰۰۰٬۰۰۰ ریال")
    jalali_today = re.escape(jalali_digits(data["today"]))
    expect(page.get_by_test_id("record-stamps")).to_contain_text(re.compile(jalali_today))
    screenshot(page, "fa-detail")

    # A task due on 1405/09/05, typed in Persian digits, is stored as 2026-11-26.
    page.goto("/task/new")
    form = page.get_by_test_id("record-form")
    form.locator("#subject").fill("پیگیری پیش‌فاکتور")
    form.locator("#due_date").fill("۱۴۰۵/۰۹/۰۵")
    form.locator("#start_date").fill("1405/09/01")
    screenshot(page, "fa-form")
    page.get_by_test_id("save").click()
    page.wait_for_url(re.compile(r"/task/\d+$"))
    task_id = int(page.url.rsplit("/", 1)[1])
    assert crm.records.get("task", task_id)["due_date"] == dt.date(2026, 11, 26)
    expect(page.locator(".kv-tab-body")).to_contain_text("۱۴۰۵/۰۹/۰۵")

    # A list filtered by a Jalali range: the browser sends the Gregorian dates.
    page.goto("/task/")
    page.select_option("#f-due_date", "custom")
    page.locator('.kv-jalali-filter[data-target="due_date__gte"]').fill("۱۴۰۵/۰۹/۰۴")
    page.locator('.kv-jalali-filter[data-target="due_date__lte"]').fill("1405/09/30")
    page.locator("#filters button[type=submit]").click()
    page.wait_for_url(re.compile(r"due_date__gte=2026-11-25.*due_date__lte=2026-12-21"))
    expect(page.locator('.kv-jalali-filter[data-target="due_date__gte"]')).to_have_value(
        "۱۴۰۵/۰۹/۰۴")
    expect(page.get_by_test_id("filter-sentence")).to_contain_text("۱۴۰۵/۰۹/۰۴")

    # The form again, with the mistakes a user makes, errors in Persian.
    page.goto("/lead/new")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("form-errors")).to_contain_text("لطفاً")
    expect(page.locator('[data-error-for="source"]')).to_have_text("الزامی است")
    screenshot(page, "fa-form-errors")

    page.goto("/lead/kanban")
    expect(page.get_by_test_id("column-new").locator(".kv-count")).to_have_text("۲")
    board = page.locator(".kv-board").bounding_box()
    first = page.get_by_test_id("column-new").bounding_box()
    assert first["x"] + first["width"] > board["x"] + board["width"] - 40  # starts at the right
    screenshot(page, "fa-kanban")

    page.goto("/calendar")
    title = page.get_by_test_id("calendar-title").inner_text()
    assert re.search(r"(فروردین|اردیبهشت|خرداد|تیر|مرداد|شهریور|مهر|آبان|آذر|دی|بهمن|اسفند) "
                     r"[۰-۹]{4}", title), title
    expect(page.get_by_test_id("calendar")).to_contain_text("تماس پیگیری")
    screenshot(page, "fa-calendar")


def jalali_digits(day: dt.date) -> str:
    from engine.i18n.formats import format_date

    return format_date(day, "fa")


def test_turkish_screens_write_numbers_and_dates_the_turkish_way(page, crm):
    data = seed(crm, "tr")
    browser_sign_in(page, "ayse")
    expect(page.locator("html")).to_have_attribute("lang", "tr")
    expect(page.locator("html")).to_have_attribute("dir", "ltr")

    page.goto("/lead/")
    expect(page.get_by_test_id("record-count")).to_have_text("5")
    expect(page.get_by_test_id("filter-sentence")).to_contain_text("gösteriliyor")
    today = data["today"].strftime("%d.%m.%Y")
    expect(page.locator("table.kv-table")).to_contain_text(today)
    screenshot(page, "tr-list")

    lead = data["leads"][0]
    page.goto(f"/lead/{lead['id']}")
    expect(page.locator(".kv-tab-body")).to_contain_text("₺1.234,56")
    expect(page.get_by_test_id("record-stamps")).to_contain_text(today)
    screenshot(page, "tr-detail")

    page.goto(f"/lead/{lead['id']}/edit")
    amount = page.locator("#estimated_value")
    expect(amount).to_have_value("1234,56")
    amount.fill("2.500,75")
    screenshot(page, "tr-form")
    page.get_by_test_id("save").click()
    page.wait_for_url(re.compile(rf"/lead/{lead['id']}$"))
    expect(page.locator(".kv-tab-body")).to_contain_text("₺2.500,75")
    assert crm.records.get("lead", lead["id"])["estimated_value"]["amount"] == \
        Decimal("2500.75")

    page.goto("/lead/kanban")
    expect(page.get_by_test_id("column-new").locator(".kv-count")).to_have_text("2")
    screenshot(page, "tr-kanban")

    page.goto("/calendar")
    title = page.get_by_test_id("calendar-title").inner_text()
    assert re.fullmatch(r"(Ocak|Şubat|Mart|Nisan|Mayıs|Haziran|Temmuz|Ağustos|Eylül|Ekim|"
                        r"Kasım|Aralık) \d{4}", title), title
    expect(page.locator(".kv-cal-head").first).to_have_text("Pazartesi")
    screenshot(page, "tr-calendar")

    # The switcher: the same page in Persian, and back.
    page.get_by_test_id("language-switcher").locator("button").click()
    page.locator('[data-lang="fa"]').click()
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    page.goto("/lead/")
    expect(page.locator("html")).to_have_attribute("lang", "fa")
