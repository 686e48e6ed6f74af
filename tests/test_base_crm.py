"""The base CRM as its users meet it, on the real base metadata and a real database.

Every record type can be kept, read, changed and archived; the required fields of the ONE CRM
guide block saving with a message naming the field; quotes, invoices, payments and projects are
never deleted; quotes are numbered T-<year>-0001; and the demo data loads once into every
entity of a fresh database.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import yaml

from engine.definitions.resolve import resolve_metadata
from engine.demo import load_demo
from engine.plugins import field_type_registry, make_plugin_manager
from engine.query.listing import ListRequest
from engine.records import DeleteRefused, RecordError, ValidationFailed

from .conftest import PROJECT_ROOT

BASE = PROJECT_ROOT / "metadata"
MODEL = resolve_metadata([BASE], field_type_registry(make_plugin_manager()))
TOP_LEVEL = sorted(key for key, entity in MODEL.entities.items() if not entity.child_of)
LINES = {key: entity.child_of for key, entity in MODEL.entities.items() if entity.child_of}
SERIES = yaml.safe_load((BASE / "series.yaml").read_text(encoding="utf-8"))

#: Base entities the demo data cannot fill, and why.
NOT_IN_DEMO = {"document": "its file is a required attachment; demo YAML cannot carry files"}
DEMO_USERS = ["admin", "ayse", "mehmet", "reza", "zeynep", "ali", "sara", "murat"]
DEMO_PASSWORD = "kervan-demo"

TODAY = dt.date.today()
NOON = dt.datetime.combine(TODAY, dt.time(12, 0), tzinfo=ZoneInfo("Europe/Istanbul"))

#: Demo-like values each base entity accepts; "@entity" is a record of that entity made first.
VALID: dict[str, dict] = {
    "account": {"name": "Anadolu Makina San. ve Tic. A.Ş.", "kind": "company",
                "sector": "machinery", "region": "marmara", "segment": "active",
                "source": "trade_fair", "tax_office": "Tuzla", "tax_number": "9848255371",
                "phone": "+90 216 333 36 22", "email": "info@anadolumakina.com.tr",
                "billing_city": "İstanbul", "payment_term_days": 30,
                "credit_limit": {"amount": "250000", "currency": "TRY"}, "tags": ["vip"]},
    "contact": {"salutation": "mr", "first_name": "Tolga", "last_name": "Aksoy",
                "account": "@account", "job_title": "Satın Alma Müdürü", "is_primary": True,
                "mobile": "0506 773 14 95", "email": "tolga.aksoy@anadolumakina.com.tr"},
    "lead": {"full_name": "مریم رضایی", "company": "شرکت سیمان هرمزگان نو",
             "phone": "۰۹۱۲ ۳۴۵ ۶۷۸۹", "city": "بندرعباس", "region": "iran_south",
             "source": "whatsapp", "stage": "contacted",
             "estimated_value": {"amount": "2500000000", "currency": "IRR"},
             "first_message": "سلام، برای پرس هیدرولیک ۲۰۰ تن پیش‌فاکتور می‌خواستم."},
    "opportunity": {"name": "Anadolu Makina - CNC torna hattı", "account": "@account",
                    "stage": "negotiation", "amount": {"amount": "85138.29", "currency": "EUR"},
                    "probability": 70, "expected_close_date": TODAY + dt.timedelta(days=30),
                    "next_step": "Ödeme planı ve iskonto görüşmesi"},
    "quote": {"subject": "CNC torna hattı", "account": "@account", "quote_date": TODAY,
              "valid_until": TODAY + dt.timedelta(days=15), "currency": "eur",
              "exchange_rate": "48.9", "payment_terms": "%40 avans, %60 sevkiyat öncesi",
              "lines": [{"line_no": 1, "product": "@product",
                         "description": "CNC Torna Tezgahı CT-450", "quantity": 1,
                         "unit_price": {"amount": "84500", "currency": "EUR"}, "discount": 5,
                         "vat_rate": 20},
                        {"line_no": 2, "description": "Kurulum ve Devreye Alma", "quantity": 4,
                         "unit": "day", "unit_price": {"amount": "490", "currency": "EUR"},
                         "vat_rate": 20}]},
    "order": {"subject": "Kompresör yenileme", "account": "@account", "customer_po": "SAS-438354",
              "order_date": TODAY, "status": "confirmed", "currency": "usd",
              "total": {"amount": "52200", "currency": "USD"}},
    "product": {"name": "Hidrolik Pres HP-200", "sku": "KRV-HP-200", "category": "finished_good",
                "unit": "set", "price": {"amount": "1250000", "currency": "TRY"},
                "cost": {"amount": "912500", "currency": "TRY"}, "vat_rate": 20,
                "min_stock": 2},
    "project": {"name": "شرکت صنایع پارس - خرید پرس هیدرولیک", "account": "@account",
                "stage": "production", "planned_start": TODAY,
                "planned_end": TODAY + dt.timedelta(days=110), "progress": 35,
                "contract_value": {"amount": "52000000000", "currency": "IRR"},
                "stages": [{"line_no": 1, "name": "برنامه‌ریزی", "status": "done"},
                           {"line_no": 2, "name": "تولید", "status": "in_progress"}]},
    "task": {"subject": "Teklif takibi: Anadolu Makina", "start_date": TODAY,
             "due_date": TODAY + dt.timedelta(days=3), "priority": "high",
             "reminder": "day_before", "account": "@account"},
    "meeting": {"subject": "Teklif sunumu ve saha ziyareti", "start_at": NOON,
                "duration_minutes": 90, "location": "İstanbul - müşteri tesisi",
                "online_url": "https://meet.google.com/deo-nkmo-byd", "account": "@account"},
    "call": {"subject": "پیگیری پیش‌فاکتور", "direction": "outbound", "call_at": NOON,
             "duration_minutes": 12, "status": "held", "result": "reached",
             "phone_number": "+98 21 8876 5432", "account": "@account"},
    "note": {"subject": "İhtiyaç analizi", "body": "Kapasite artışı planlıyorlar; bütçe çeyrek "
                                                   "sonunda onaylanacak.", "account": "@account"},
    "document": {"name": "Satış sözleşmesi", "file": "@file", "category": "contract",
                 "revision": "R2", "valid_until": TODAY + dt.timedelta(days=365),
                 "account": "@account"},
    "case": {"subject": "Presde hidrolik yağ kaçağı", "account": "@account", "type": "problem",
             "channel": "whatsapp", "priority": "urgent"},
    "campaign": {"name": "WIN Eurasia Fuarı - Stand Daveti", "type": "trade_fair",
                 "status": "planning", "start_date": TODAY,
                 "end_date": TODAY + dt.timedelta(days=4),
                 "budget": {"amount": "450000", "currency": "TRY"}, "impressions": 3800},
    "target_list": {"name": "VIP Müşteriler", "type": "default"},
    "email_template": {"name": "Teklif Gönderimi", "applies_to": "quote", "language": "tr",
                       "subject": "{{ quote.number }} numaralı fiyat teklifimiz",
                       "body": "Sayın {{ contact.first_name }},\n\nTeklifimiz ektedir."},
    "invoice": {"account": "@account", "invoice_date": TODAY,
                "due_date": TODAY + dt.timedelta(days=30), "status": "issued",
                "currency": "try", "accounting_ref": "LOGO-4198460",
                "lines": [{"line_no": 1, "product": "@product", "description": "Rulman 6205-2RS",
                           "quantity": 400, "unit_price": {"amount": "95", "currency": "TRY"},
                           "vat_rate": 20}]},
    "payment": {"account": "@account", "amount": {"amount": "148380", "currency": "TRY"},
                "payment_date": TODAY, "method": "cheque", "reference": "Çek No: 4417021",
                "bank": "Türkiye İş Bankası", "cheque_due_date": TODAY + dt.timedelta(days=60)},
    "warehouse": {"name": "İstanbul Merkez Depo", "code": "IST-01", "city": "İstanbul",
                  "phone": "+90 216 593 40 50"},
    "stock_movement": {"type": "in", "movement_date": TODAY, "product": "@product",
                       "quantity": 20, "to_warehouse": "@warehouse",
                       "unit_cost": {"amount": "95000", "currency": "TRY"},
                       "document_ref": "İRS-1184532"},
    "employee": {"first_name": "سارا", "last_name": "احمدی", "job_title": "مدیر مالی",
                 "department": "finance", "mobile": "0917 251 6379",
                 "email": "sara.ahmadi@kervanendustri.com.tr", "hire_date": TODAY},
    "company_settings": {"company_name": "Kervan Endüstriyel Çözümler San. ve Tic. A.Ş.",
                         "city": "İstanbul", "tax_office": "Tuzla", "tax_number": "5470128834",
                         "main_currency": "try", "default_vat_rate": 20,
                         "vat_rates": ["0", "1", "10", "20"]},
}

TEXT_FIELDS = ("description", "notes", "body", "address")


class Factory:
    """Makes records from VALID values; linked records are made once per test and shared."""

    def __init__(self, kervan):
        self.kervan = kervan
        self.linked: dict[str, int] = {}

    def values(self, entity: str, **overrides) -> dict:
        return self.resolve({**VALID[entity], **overrides})

    def make(self, entity: str, **overrides) -> dict:
        return self.kervan.records.create(entity, self.values(entity, **overrides))

    def resolve(self, value):
        if isinstance(value, str) and value.startswith("@"):
            return self.link(value[1:])
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        return value

    def link(self, entity: str) -> int:
        if entity not in self.linked:
            self.linked[entity] = (self.stored_file() if entity == "file"
                                   else self.make(entity)["id"])
        return self.linked[entity]

    def stored_file(self) -> int:
        # There is no file service yet; a row in kv_file is what an upload leaves behind.
        files = self.kervan.tables.tables["kv_file"]
        with self.kervan.db.begin() as conn:
            return conn.execute(files.insert().values(
                filename="satis-sozlesmesi.pdf", content_type="application/pdf", size=48213,
                sha256="0" * 64, path="files/satis-sozlesmesi.pdf",
                created_at=dt.datetime.now(dt.UTC)).returning(files.c.id)).scalar_one()


@pytest.fixture
def crm(make_kervan):
    """The base CRM, migrated on a fresh test database."""
    return make_kervan(BASE)


@pytest.fixture
def factory(crm):
    return Factory(crm)


def count(kervan, entity: str) -> int:
    table = kervan.tables.tables[entity]
    with kervan.db.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_every_base_entity_has_demo_like_values_here():
    assert sorted(VALID) == TOP_LEVEL
    assert len(MODEL.entities) == 26 and set(LINES) == {"quote_line", "invoice_line",
                                                        "project_stage"}


@pytest.mark.parametrize("entity", TOP_LEVEL)
def test_a_record_is_created_read_updated_and_archived(crm, factory, entity):
    given = factory.values(entity)
    created = crm.records.create(entity, given)
    assert created["id"] > 0 and created["version"] == 1

    fields = crm.model.entity(entity).fields
    record = crm.records.get(entity, created["id"])
    for key, value in given.items():
        field = fields[key]
        if field.type == "child_table":
            assert len(record[key]) == len(value), key
        else:
            assert record[key] == field.field_type.coerce(field, value), key

    text = next(k for k in TEXT_FIELDS if k in fields)
    updated = crm.records.update(entity, created["id"], {text: "Müşteriyle görüşüldü; "
                                                               "güncellendi."}, version=1)
    assert updated["version"] == 2 and updated[text] == "Müşteriyle görüşüldü; güncellendi."

    archived = crm.records.archive(entity, created["id"])
    assert archived["archived_at"] is not None
    assert created["id"] not in [r["id"] for r in crm.records.find(entity)]
    assert created["id"] in [r["id"] for r in crm.records.find(entity, include_archived=True)]


@pytest.mark.parametrize("line_entity", sorted(LINES))
def test_lines_are_kept_through_their_parent_only(crm, factory, line_entity):
    parent = LINES[line_entity]
    lines_field = next(k for k, f in crm.model.entity(parent).child_tables.items()
                       if f.spec["entity"] == line_entity)
    record = factory.make(parent)
    lines = record[lines_field]
    assert len(lines) == len(VALID[parent][lines_field]) and lines[0][parent] == record["id"]

    with pytest.raises(RecordError, match=f"created through their {parent} record"):
        crm.records.create(line_entity, {parent: record["id"], **VALID[parent][lines_field][0]})

    first = lines[0]
    change = ({"name": "Planlama (revize)"} if line_entity == "project_stage"
              else {"quantity": 3})
    updated = crm.records.update(parent, record["id"], {lines_field: [{"id": first["id"],
                                                                      **change}]}, version=1)
    assert [line["id"] for line in updated[lines_field]] == [first["id"]]
    for key, value in change.items():
        assert updated[lines_field][0][key] == value


@pytest.mark.parametrize("entity, values, expected", [
    ("lead", {"full_name": None, "company": None},
     {"full_name": "Enter a name or a company.", "company": "Enter a name or a company."}),
    ("lead", {"phone": None, "email": None},
     {"phone": "Enter a phone number or an e-mail address.",
      "email": "Enter a phone number or an e-mail address."}),
    ("lead", {"source": None}, {"source": "is required"}),
    ("account", {"name": None}, {"name": "is required"}),
    ("account", {"tax_number": None},
     {"tax_number": "is required when Customer type is Company"}),
    ("account", {"sector": None}, {"sector": "is required when Customer type is Company"}),
    ("quote", {"account": None}, {"account": "is required"}),
    ("quote", {"quote_date": None}, {"quote_date": "is required"}),
    ("quote", {"currency": None}, {"currency": "is required"}),
], ids=["lead-name-or-company", "lead-phone-or-email", "lead-source", "account-name",
        "account-tax-number", "account-sector", "quote-customer", "quote-date",
        "quote-currency"])
def test_required_fields_of_the_guide_block_saving(crm, factory, entity, values, expected):
    given = factory.values(entity, **values)
    before = count(crm, entity)
    with pytest.raises(ValidationFailed) as caught:
        crm.records.create(entity, given)
    assert caught.value.fields == expected
    for field, message in expected.items():
        assert f"{field}: {message}" in str(caught.value)
    assert count(crm, entity) == before


def test_an_individual_customer_and_a_bare_lead_need_only_what_the_guide_asks(crm, factory):
    person = crm.records.create("account", {"name": "Elif Kaya", "kind": "individual",
                                            "mobile": "0541 357 21 70"})
    assert person["tax_number"] is None and person["sector"] is None
    lead = crm.records.create("lead", {"company": "Afyon Mermer İşletmeleri A.Ş.",
                                       "email": "satinalma@afyonmermer.com.tr",
                                       "source": "trade_fair"})
    assert lead["stage"] == "new"
    quote = crm.records.create("quote", {"account": person["id"]})
    assert quote["currency"] == "try" and quote["quote_date"] is not None


@pytest.mark.parametrize("entity", ["invoice", "payment", "project", "quote"])
def test_critical_records_are_never_deleted(crm, factory, entity):
    record = factory.make(entity)
    with pytest.raises(DeleteRefused, match="never deleted; archive or cancel it instead"):
        crm.records.delete(entity, record["id"])
    assert crm.records.get(entity, record["id"])["id"] == record["id"]


def test_a_lead_entered_by_mistake_can_be_deleted(crm, factory):
    lead = factory.make("lead")
    crm.records.delete("lead", lead["id"])
    assert count(crm, "lead") == 0


def test_quote_numbers_look_like_the_guide(crm, factory):
    year = dt.datetime.now(ZoneInfo("Europe/Istanbul")).year
    first, second = factory.make("quote"), factory.make("quote")
    assert (first["number"], second["number"]) == (f"T-{year}-0001", f"T-{year}-0002")

    with pytest.raises(ValidationFailed) as caught:
        crm.records.update("quote", first["id"], {"number": f"T-{year}-0999"}, version=1)
    assert caught.value.fields == {"number": "is read-only"}

    last_year = crm.records.create("quote", factory.values("quote"),
                                   at=dt.datetime(year - 1, 6, 2, 9, tzinfo=dt.UTC))
    assert last_year["number"] == f"T-{year - 1}-0001"  # each year starts again


@pytest.mark.parametrize("name, series", sorted(SERIES.items()))
def test_every_numbered_record_gets_its_number(crm, factory, name, series):
    year = dt.datetime.now(ZoneInfo("Europe/Istanbul")).year
    expected = series["pattern"].replace("{YYYY}", str(year)).replace("{####}", "0001")
    assert factory.make(series["entity"])[series["field"]] == expected


def test_demo_data_loads_into_every_entity_once(crm):
    first = load_demo(crm)
    assert set(first.created) == set(TOP_LEVEL) - set(NOT_IN_DEMO)
    assert first.users == len(DEMO_USERS) and first.total >= 350
    again = load_demo(crm)
    assert (again.total, again.users, again.skipped) == (0, 0, first.total)

    users = {name: crm.users.authenticate(name, DEMO_PASSWORD) for name in DEMO_USERS}
    assert users["admin"].roles == ["admin"] and users["admin"].language == "en"
    assert (users["ayse"].roles, users["ayse"].teams) == (["sales"], ["istanbul"])
    assert (users["reza"].teams, users["reza"].language) == (["tehran"], "fa")
    assert {u.roles[0] for u in users.values()} == {
        "admin", "sales", "operations", "warehouse", "finance", "management"}

    # a Persian-named customer, owned by the Tehran sales user, Persian digits normalised
    [pars] = crm.records.find("account", {"field": "name", "op": "eq", "value": "شرکت صنایع پارس"})
    assert (pars["region"], pars["owner"]) == ("tehran", users["reza"].id)
    [negar] = crm.records.find("account", {"field": "name", "op": "eq", "value": "نگار فرهادی"})
    assert re.fullmatch(r"0\d{3} \d{3} \d{4}", negar["mobile"])

    # quotes: numbered, with lines, in every currency
    quotes = crm.records.find("quote", limit=1000)
    assert {q["currency"] for q in quotes} == {"try", "eur", "usd", "irr"}
    assert all(re.fullmatch(r"T-\d{4}-\d{4}", q["number"]) for q in quotes)
    approved = next(q for q in quotes if q["status"] == "approved")
    lines = crm.records.get("quote", approved["id"])["lines"]
    assert lines and all(line["unit_price"]["currency"] in ("TRY", "EUR", "USD", "IRR")
                         for line in lines)

    # eighteen months of history, some of it archived
    now = dt.datetime.now(dt.UTC)
    ages = [(now - a["created_at"]).days for a in crm.records.find("account",
                                                                   include_archived=True)]
    assert max(ages) >= 500 and min(ages) <= 60
    assert len(crm.records.find("lead", include_archived=True)) > len(crm.records.find("lead"))
    assert count(crm, "company_settings") == 1

    # "assigned to me": a sales user sees her own customers
    ayse = crm.users.actor(users["ayse"])
    page = crm.records.list("account", ListRequest(size=100), actor=ayse)
    owned = crm.records.find("account", {"field": "owner", "op": "eq",
                                         "value": users["ayse"].id})
    assert page.count == len(owned) > 0
    assert {row["owner"] for row in page.rows} == {users["ayse"].id}
