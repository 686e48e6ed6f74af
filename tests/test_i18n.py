"""Three languages: every UI string translated, numbers, money and dates written as Turkish
and Persian readers write them, Jalali dates typed and stored as Gregorian, Turkish search."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.i18n import catalog, formats, jalali
from engine.i18n.numerals import ascii_digits, persian_digits
from engine.i18n.text import contains_folded, fold

from .conftest import sign_in

ROOT = Path(__file__).resolve().parent.parent


# -- catalogs ---------------------------------------------------------------------------

def test_every_ui_string_is_in_every_catalog_and_translated():
    """A new `_()` in a template or in Python fails here until tr and fa translate it
    (`python -m engine.i18n.catalog update`, then fill the empty msgstr)."""
    assert catalog.untranslated() == []


def test_compiled_catalogs_are_what_their_po_files_compile_to(monkeypatch):
    assert catalog.stale_compiled() == []
    # a translation changed in the .po but not compiled is caught; the Babel version a
    # .mo names in its header is not a change
    read = catalog.read

    def edited(language):
        found = read(language)
        if language == "tr":
            found["Save"].string = "Kaydet!"
        return found

    monkeypatch.setattr(catalog, "read", edited)
    assert catalog.stale_compiled() == [
        "engine/translations/tr/LC_MESSAGES/messages.mo is not compiled from its .po"]


def test_the_check_catches_a_new_string_and_an_untranslated_entry():
    template = catalog.extract()
    template.add("A string nobody has translated yet", locations=[("ui_templates/x.html", 1)])
    template["Save"].string = ""
    found = catalog.untranslated(template)
    assert "tr: 'A string nobody has translated yet' is not in the catalog " \
           "(ui_templates/x.html)" in found
    assert any(line.startswith("fa: 'A string nobody") for line in found)


def test_message_tables_looked_up_at_run_time_are_extracted():
    ids = {m.id for m in catalog.extract()}
    assert {"Stock & warehouse", "Stage history", "starts with", "is required"} <= ids


def test_right_to_left_bootstrap_is_the_version_bootstrap_flask_serves():
    import flask_bootstrap

    def version(css: Path) -> str:
        return re.search(r"Bootstrap\s+v(\d+\.\d+\.\d+)", css.read_text()[:400]).group(1)

    ltr = Path(flask_bootstrap.__file__).parent / "static" / "bootstrap5" / "css" / \
        "bootstrap.min.css"
    rtl = ROOT / "engine" / "web" / "static" / "vendor" / "bootstrap" / "bootstrap.rtl.min.css"
    assert version(rtl) == version(ltr)


# -- formatting helpers against known values ---------------------------------------------

@pytest.mark.parametrize("language, expected", [
    ("en", "1,234.56"), ("tr", "1.234,56"), ("fa", "۱٬۲۳۴٫۵۶")])
def test_numbers(language, expected):
    assert formats.format_number(Decimal("1234.56"), language) == expected


@pytest.mark.parametrize("amount, currency, language, expected", [
    ("1234.56", "TRY", "tr", "₺1.234,56"),
    ("1234.56", "TRY", "en", "₺1,234.56"),
    ("1234.5", "EUR", "tr", "€1.234,50"),
    ("12500000", "IRR", "fa", "۱۲٬۵۰۰٬۰۰۰ ریال"),
    ("12500000.00", "IRR", "en", "12,500,000\u00a0IRR"),
    ("99.9", "USD", "fa", "۹۹٫۹۰ دلار"),
])
def test_money(amount, currency, language, expected):
    assert formats.format_money(Decimal(amount), currency, language) == expected


def test_rials_as_tomans_are_divided_by_ten():
    assert formats.format_money(Decimal("12500000"), "IRR", "fa", toman=True) == \
        "۱٬۲۵۰٬۰۰۰ تومان"
    assert formats.format_money(Decimal("125"), "EUR", "fa", toman=True) == "۱۲۵٫۰۰ یورو"


@pytest.mark.parametrize("language, expected", [("en", "12.5%"), ("tr", "%12,5"),
                                                ("fa", "۱۲٫۵٪")])
def test_percentages(language, expected):
    assert formats.format_percent(Decimal("12.5"), language) == expected


@pytest.mark.parametrize("gregorian, shown", [
    (dt.date(2026, 11, 22), "1405/09/01"),  # 1 Azar 1405
    (dt.date(2026, 3, 21), "1405/01/01"),   # Nowruz 1405
    (dt.date(2025, 3, 20), "1403/12/30"),   # last day of the leap year 1403
])
def test_jalali_dates_both_ways(gregorian, shown):
    assert jalali.jalali_text(gregorian) == shown
    assert jalali.parse_date(shown) == gregorian
    assert jalali.parse_date(persian_digits(shown)) == gregorian
    assert formats.format_date(gregorian, "fa") == persian_digits(shown)


def test_dates_in_each_language():
    day = dt.date(2026, 11, 22)
    assert formats.format_date(day, "tr") == "22.11.2026"
    assert formats.format_date(day, "en") == "22 Nov 2026"
    moment = dt.datetime(2026, 11, 22, 14, 30)
    assert formats.format_datetime(moment, "tr") == "22.11.2026 14:30"
    assert formats.format_datetime(moment, "fa") == "۱۴۰۵/۰۹/۰۱ ۱۴:۳۰"
    assert formats.month_title(day, "fa") == "آذر ۱۴۰۵"
    assert formats.month_title(day, "tr") == "Kasım 2026"
    assert formats.weekday_name(day, "tr") == "Pazar"


def test_typed_jalali_dates_that_name_no_day_are_refused():
    with pytest.raises(ValueError):
        jalali.parse_date("1404/12/30")  # 1404 is not a leap year
    assert jalali.parse_date("next tuesday") is None
    assert jalali.parse_date("2026-11-22") == dt.date(2026, 11, 22)  # Gregorian still works
    assert jalali.parse_datetime("۱۴۰۵/۰۹/۰۱ ۰۹:۰۵") == dt.datetime(2026, 11, 22, 9, 5)


def test_persian_calendar_months_are_jalali_months_in_saturday_weeks():
    from engine.i18n.calendar import calendar_range

    shown = calendar_range("month", dt.date(2026, 12, 5), "fa")  # in Azar 1405
    assert shown.start == dt.date(2026, 11, 21)  # the Saturday before 1 Azar (a Sunday)
    assert shown.end == dt.date(2026, 12, 26)    # after the week of 30 Azar
    assert (shown.previous, shown.following) == (dt.date(2026, 10, 23), dt.date(2026, 12, 22))
    assert {formats.weekday_name(d, "fa") for d in shown.days[::7]} == {"شنبه"}
    turkish = calendar_range("month", dt.date(2026, 11, 22), "tr")
    assert (turkish.start, turkish.end) == (dt.date(2026, 10, 26), dt.date(2026, 12, 7))
    assert calendar_range("week", dt.date(2026, 11, 22), "fa").start == dt.date(2026, 11, 21)


@pytest.mark.parametrize("typed, language, read", [
    ("1.234,56", "tr", "1234.56"), ("12,5", "tr", "12.5"), ("1.234", "tr", "1234"),
    ("1234.50", "tr", "1234.50"), ("1,234.56", "en", "1234.56"),
    ("۱٬۲۳۴٫۵", "fa", "1234.5"), ("١٢٣", "fa", "123")])
def test_typed_numbers_in_each_language(typed, language, read):
    assert formats.read_number_input(typed, language) == read


def test_both_digit_sets():
    assert ascii_digits("۰۹۱۲ ١٢٣ 45") == "0912 123 45"
    assert persian_digits("1405/09/01") == "۱۴۰۵/۰۹/۰۱"


# -- Turkish and Persian search -------------------------------------------------------------

def test_folding_treats_the_four_i_as_one_letter():
    assert fold("IŞIK") == fold("ışık") == fold("Işık")
    assert fold("İSTANBUL") == fold("istanbul") == fold("Istanbul")
    assert fold("ŞEKER ÇİÇEK") == fold("şeker çiçek")
    assert fold("علي ۱۲") == fold("علی 12")


@pytest.mark.parametrize("typed, found", [
    ("ışık", {"IŞIK Aydınlatma"}), ("iŞiK", {"IŞIK Aydınlatma"}),
    ("istanbul", {"İSTANBUL Tekstil", "Istanbul Trading"}),
    ("şeker", {"ŞEKERCİ Gıda"}), ("ÇİÇEK", {"çiçek evi"}),
    ("علی", {"علي رضایی"}), ("50%", set())])
def test_folded_search_on_the_real_database(database_url, typed, found):
    engine = sa.create_engine(database_url)
    table = sa.Table("i18n_search", sa.MetaData(), sa.Column("name", sa.String(100)))
    names = ["IŞIK Aydınlatma", "İSTANBUL Tekstil", "Istanbul Trading", "ŞEKERCİ Gıda",
             "çiçek evi", "علي رضایی", "Ankara Makina"]
    try:
        with engine.begin() as conn:
            table.create(conn)
            conn.execute(table.insert(), [{"name": n} for n in names])
            rows = conn.execute(sa.select(table.c.name)
                                .where(contains_folded(table.c.name, typed))).scalars()
            assert set(rows) == found
    finally:
        engine.dispose()


def test_turkish_user_finds_capitals_with_small_letters(csrf_free_app, crm):
    crm.records.create("lead", {"company": "IŞIK AYDINLATMA", "source": "referral",
                                "phone": "+90 532 000 11 22"})
    client = sign_in(csrf_free_app.test_client(), "admin")
    page = client.get("/lead/?q=ışık aydınlatma").get_data(as_text=True)
    assert "IŞIK AYDINLATMA" in page


# -- through the screens --------------------------------------------------------------------

def meeting_form(**values) -> dict:
    form = {f"{k}__present": "1" for k in values}
    form.update(values)
    return form


def test_a_jalali_date_typed_in_persian_is_stored_as_the_gregorian_date(csrf_free_app, crm):
    client = sign_in(csrf_free_app.test_client(), "reza")
    form = client.get("/task/new").get_data(as_text=True)
    assert 'class="form-control kv-jalali"' in form and 'placeholder="۱۴۰۵/۰۹/۰۱"' in form
    response = client.post("/task/new", data=meeting_form(
        subject="پیگیری پیش‌فاکتور", start_date="1405/09/01", due_date="۱۴۰۵/۰۹/۰۵"))
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    task_id = int(response.location.rstrip("/").split("/")[-1])
    stored = crm.records.get("task", task_id)
    assert stored["start_date"] == dt.date(2026, 11, 22)
    assert stored["due_date"] == dt.date(2026, 11, 26)
    detail = client.get(f"/task/{task_id}").get_data(as_text=True)
    assert "۱۴۰۵/۰۹/۰۱" in detail and "۱۴۰۵/۰۹/۰۵" in detail
    edit = client.get(f"/task/{task_id}/edit").get_data(as_text=True)
    assert 'value="۱۴۰۵/۰۹/۰۱"' in edit  # shown back in Jalali for editing


def test_a_jalali_moment_is_read_in_the_company_time_zone(csrf_free_app, crm):
    client = sign_in(csrf_free_app.test_client(), "reza")
    response = client.post("/meeting/new", data=meeting_form(
        subject="جلسه با تأمین‌کننده", start_at="۱۴۰۵/۰۹/۰۱ ۱۴:۳۰"))
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    meeting = crm.records.get("meeting", int(response.location.rstrip("/").split("/")[-1]))
    # KERVAN_TIMEZONE of the test instance is Europe/Istanbul (UTC+3)
    assert meeting["start_at"] == dt.datetime(2026, 11, 22, 11, 30, tzinfo=dt.UTC)
    detail = client.get(f"/meeting/{meeting['id']}").get_data(as_text=True)
    assert "۱۴۰۵/۰۹/۰۱ ۱۴:۳۰" in detail


def test_a_jalali_date_that_does_not_exist_is_an_error_in_persian(csrf_free_app):
    client = sign_in(csrf_free_app.test_client(), "reza")
    response = client.post("/task/new", data=meeting_form(subject="x", due_date="1404/12/30"))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'data-error-for="due_date"' in page and "باید تاریخی به شکل" in page
    assert 'value="۱۴۰۴/۱۲/۳۰"' in page  # what was typed stays, to be corrected


def test_turkish_amounts_are_typed_and_shown_the_turkish_way(csrf_free_app, crm):
    client = sign_in(csrf_free_app.test_client(), "ayse")
    response = client.post("/lead/new", data=meeting_form(
        company="Işık Aydınlatma", source="referral", phone="+90 532 000 11 22",
        estimated_value="1.234,56", estimated_value__currency="TRY"))
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    lead = crm.records.get("lead", int(response.location.rstrip("/").split("/")[-1]))
    assert lead["estimated_value"] == {"amount": Decimal("1234.56"), "currency": "TRY"}
    detail = client.get(response.location).get_data(as_text=True)
    assert "₺1.234,56" in detail
    assert 'value="1234,56"' in client.get(response.location + "/edit").get_data(as_text=True)


def test_persian_pages_run_right_to_left_with_persian_digits(csrf_free_app, crm):
    for n in range(12):
        crm.records.create("lead", {"full_name": f"مشتری {n}", "source": "referral",
                                    "phone": f"+98 912 000 00 {n:02d}",
                                    "owner": crm.users.by_username("reza").id})
    client = sign_in(csrf_free_app.test_client(), "reza")
    page = client.get("/lead/").get_data(as_text=True)
    assert '<html lang="fa" dir="rtl">' in page
    assert "bootstrap.rtl.min.css" in page
    assert re.search(r'data-testid="record-count">۱۲<', page)
    assert "نمایش همه" in page


def test_errors_are_shown_in_the_users_language(csrf_free_app):
    client = sign_in(csrf_free_app.test_client(), "reza")
    page = client.post("/lead/new", data=meeting_form(full_name="", source="")) \
        .get_data(as_text=True)
    assert "الزامی است" in page  # "is required"
    assert "نام شخص یا نام شرکت را وارد کنید." in page  # the rule's own Persian message
    denied = client.get("/invoice/new").get_data(as_text=True)
    assert "نقش شما اجازه ایجاد فاکتورها را نمی‌دهد." in denied


def test_signed_in_users_switch_language_and_it_sticks(csrf_free_app):
    client = sign_in(csrf_free_app.test_client(), "ayse")
    assert 'lang="tr"' in client.get("/").get_data(as_text=True)
    switched = client.get("/?lang=fa").get_data(as_text=True)
    assert 'dir="rtl"' in switched and 'href="/?lang=en"' in switched
    assert 'lang="fa" dir="rtl"' in client.get("/lead/").get_data(as_text=True)
    client.post("/logout")
    # the next person on this browser gets their own language, not the last one picked
    sign_in(client, "admin")
    assert '<html lang="en" dir="ltr">' in client.get("/").get_data(as_text=True)


def test_switching_language_on_a_list_keeps_its_filters(csrf_free_app):
    """The switcher links to the same page with `lang=`: on a list that word is the page's
    language, never a filter on a field named so (no field may be named `lang`)."""
    client = sign_in(csrf_free_app.test_client(), "ayse")
    page = client.get("/lead/")
    assert 'href="/lead/?lang=fa"' in page.get_data(as_text=True)
    switched = client.get("/lead/?stage=new&lang=fa")
    text = switched.get_data(as_text=True)
    assert switched.status_code == 200 and 'lang="fa" dir="rtl"' in text
    assert "lang" not in text.split('data-testid="filter-sentence"')[1].split("</div>")[0]
    assert "has no field" not in text and "مشکلی دارد" not in text
    assert 'data-testid="record-count"' in text


def test_persian_users_may_read_rials_as_tomans(csrf_free_app, crm):
    account = crm.records.create("account", {"name": "تجارت پارس", "kind": "individual",
                                             "credit_limit": {"amount": "12500000",
                                                              "currency": "IRR"}})
    client = sign_in(csrf_free_app.test_client(), "sara")
    client.get("/?lang=fa")
    assert "۱۲٬۵۰۰٬۰۰۰ ریال" in client.get(f"/account/{account['id']}").get_data(as_text=True)
    client.get("/?irr=toman")
    assert "۱٬۲۵۰٬۰۰۰ تومان" in client.get(f"/account/{account['id']}").get_data(as_text=True)


def test_moments_are_shown_in_the_company_time_zone(csrf_free_app, crm):
    meeting = crm.records.create("meeting", {
        "subject": "Fuar", "start_at": dt.datetime(2026, 11, 22, 21, 30, tzinfo=dt.UTC),
        "owner": crm.users.by_username("ayse").id})
    client = sign_in(csrf_free_app.test_client(), "ayse")
    detail = client.get(f"/meeting/{meeting['id']}").get_data(as_text=True)
    assert "23.11.2026 00:30" in detail  # Istanbul is UTC+3: already the next day


def test_the_record_count_reads_right_for_one_and_for_many(csrf_free_app, crm):
    admin = sign_in(csrf_free_app.test_client(), "admin")
    ayse = sign_in(csrf_free_app.test_client(), "ayse")
    crm.records.create("lead", {"full_name": "Tek Aday", "source": "referral",
                                "email": "tek@example.com",
                                "owner": crm.users.by_username("ayse").id})

    def count_line(client) -> str:
        page = client.get("/lead/").get_data(as_text=True)
        return re.search(r'data-testid="record-count">([^<]*)</strong> (\w+)', page).groups()

    assert count_line(admin) == ("1", "record")
    assert count_line(ayse) == ("1", "kayıt")
    crm.records.create("lead", {"full_name": "İkinci Aday", "source": "referral",
                                "email": "iki@example.com",
                                "owner": crm.users.by_username("ayse").id})
    assert count_line(admin) == ("2", "records")
    assert count_line(ayse) == ("2", "kayıt")
