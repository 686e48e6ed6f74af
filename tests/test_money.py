"""Quote and invoice money: Decimal totals, VAT per rate, rounding, invoices and payments."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.documents.totals import compute

SPEC = {"lines": "lines", "quantity": "quantity", "price": "unit_price", "discount": "discount",
        "vat_rate": "vat_rate", "line_total": "line_total"}

line_strategy = st.fixed_dictionaries({
    "quantity": st.decimals(min_value=0, max_value=10000, places=3),
    "unit_price": st.decimals(min_value=0, max_value=1_000_000, places=2),
    "discount": st.decimals(min_value=0, max_value=100, places=2),
    "vat_rate": st.sampled_from([Decimal(20), Decimal(10), Decimal(1), Decimal(0)]),
})


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(line_strategy, max_size=12),
       document_discount=st.decimals(min_value=0, max_value=100, places=2))
def test_totals_add_up_to_the_cent(lines, document_discount):
    totals = compute(lines, SPEC, document_discount, "TRY")
    cent = Decimal("0.01")
    assert all(value == value.quantize(cent) for value in totals.line_totals)
    assert sum(totals.line_totals, Decimal(0)) == totals.subtotal - totals.line_discounts
    assert sum((r.base for r in totals.rates), Decimal(0)) == totals.net
    assert sum((r.vat for r in totals.rates), Decimal(0)) == totals.vat_total
    assert totals.net + totals.discount_total == totals.subtotal
    assert totals.grand_total == totals.net + totals.vat_total
    for rate in totals.rates:
        assert rate.vat == (rate.base * rate.rate / 100).quantize(cent, rounding="ROUND_HALF_UP")
        assert abs(rate.vat - rate.base * rate.rate / 100) <= Decimal("0.005")
    assert totals.discount_total >= 0 and totals.grand_total >= 0


def test_a_known_quote_by_hand():
    lines = [{"quantity": Decimal(3), "unit_price": Decimal("1000.00"), "discount": Decimal(10),
              "vat_rate": Decimal(20)},
             {"quantity": Decimal("2.5"), "unit_price": Decimal("99.99"), "discount": None,
              "vat_rate": Decimal(10)},
             {"quantity": Decimal(1), "unit_price": Decimal("0.05"), "discount": Decimal(0),
              "vat_rate": Decimal(1)}]
    totals = compute(lines, SPEC, Decimal(5), "TRY")
    assert totals.line_totals == [Decimal("2700.00"), Decimal("249.98"), Decimal("0.05")]
    assert totals.subtotal == Decimal("3250.03")
    assert [(r.rate, r.base, r.vat) for r in totals.rates] == [
        (Decimal(0) + 1, Decimal("0.05"), Decimal("0.00")),
        (Decimal(10), Decimal("237.48"), Decimal("23.75")),
        (Decimal(20), Decimal("2565.00"), Decimal("513.00"))]
    assert totals.grand_total == Decimal("3339.28")


def test_quote_totals_are_kept_on_save_and_invoice_payments_roll_up(crm):
    account = crm.records.create("account", {"name": "Toplam A.Ş.", "kind": "individual"})
    quote = crm.records.create("quote", {
        "account": account["id"], "currency": "try", "quote_date": "2026-03-01",
        "document_discount": "5", "lines": [
            {"description": "Pompa", "quantity": "3", "unit_price": "1000", "discount": "10",
             "vat_rate": "20"},
            {"description": "Montaj", "quantity": "2.5", "unit_price": "99.99", "vat_rate": "10"},
            {"description": "Vida", "quantity": "1", "unit_price": "0.05", "vat_rate": "1"}]})
    assert [line["line_total"]["amount"] for line in quote["lines"]] == [
        Decimal("2700.00"), Decimal("249.98"), Decimal("0.05")]
    assert quote["grand_total"] == {"amount": Decimal("3339.28"), "currency": "TRY"}
    assert quote["vat_total"]["amount"] == Decimal("536.75")
    changed = crm.records.update("quote", quote["id"], {"lines": [
        {"id": quote["lines"][0]["id"], "quantity": "1"}]}, version=quote["version"])
    # the lines sent replace the old ones: one pump left, 900 - 5% + 20% VAT
    assert changed["grand_total"]["amount"] == Decimal("1026.00")

    admin = crm.users.actor(crm.users.by_username("admin"))
    crm.workflow.transition("quote", quote["id"], "sent", admin)
    crm.workflow.transition("quote", quote["id"], "approved", admin)
    result = crm.conversions.convert("quote", quote["id"], admin)
    invoice = crm.records.get("invoice", result.created["invoice"])
    assert invoice["number"].startswith(f"F-{dt.date.today().year}-")
    assert [line["description"] for line in invoice["lines"]] == ["Pompa"]
    assert invoice["grand_total"]["amount"] == Decimal("1026.00")
    assert invoice["balance"]["amount"] == Decimal("1026.00")
    crm.records.create("payment", {"invoice": invoice["id"], "account": account["id"],
                                   "amount": "600", "payment_date": "2026-03-10"})
    crm.records.create("payment", {"invoice": invoice["id"], "account": account["id"],
                                   "amount": "300", "payment_date": "2026-03-20"})
    paid = crm.records.get("invoice", invoice["id"])
    assert paid["paid_amount"]["amount"] == Decimal("900.00")
    assert paid["balance"]["amount"] == Decimal("126.00")


def test_lines_in_another_currency_are_refused(crm):
    account = crm.records.create("account", {"name": "Kur", "kind": "individual"})
    import pytest

    from engine.records import ValidationFailed

    with pytest.raises(ValidationFailed) as caught:
        crm.records.create("quote", {"account": account["id"], "currency": "eur",
                                     "quote_date": "2026-03-01", "lines": [
                                         {"description": "X", "quantity": 1,
                                          "unit_price": {"amount": "10", "currency": "TRY"}}]})
    assert caught.value.fields == {"lines.0.unit_price": "is in TRY but the document is in EUR"}


def test_customer_open_balance_follows_invoices_and_payments(crm):
    account = crm.records.create("account", {"name": "Bakiye Ltd.", "kind": "individual"})
    invoice = crm.records.create("invoice", {
        "account": account["id"], "currency": "try", "invoice_date": "2026-10-01",
        "lines": [{"description": "Hizmet", "quantity": 1, "unit_price": "1000",
                   "vat_rate": "20"}]})
    assert crm.records.get("account", account["id"])["open_balance"]["amount"] == \
        Decimal("1200.00")
    crm.records.create("payment", {"invoice": invoice["id"], "account": account["id"],
                                   "amount": "200", "payment_date": "2026-10-05"})
    assert crm.records.get("account", account["id"])["open_balance"]["amount"] == \
        Decimal("1000.00")
