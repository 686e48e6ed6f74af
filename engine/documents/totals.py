"""Totals of a lined document (quote, invoice, order…), declared with `totals:` in metadata.

All arithmetic is Decimal.  Each line's total is rounded to the currency's cents; the
document discount is spread over VAT rates; VAT is rounded once per rate, and the grand
total is the sum of the rounded parts, so the printed per-rate lines always add up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

ROUNDING = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN}
CENT = Decimal("0.01")
HUNDRED = Decimal(100)


@dataclass
class RateLine:
    rate: Decimal
    base: Decimal
    vat: Decimal


@dataclass
class Totals:
    currency: str | None
    line_totals: list[Decimal]
    subtotal: Decimal
    line_discounts: Decimal
    document_discount: Decimal
    discount_total: Decimal
    net: Decimal
    vat_total: Decimal
    grand_total: Decimal
    rates: list[RateLine] = field(default_factory=list)


def _d(value) -> Decimal:
    if value is None:
        return Decimal(0)
    if isinstance(value, dict):
        return _d(value.get("amount"))
    return Decimal(str(value))


def compute(lines: list[dict], spec: dict, document_discount=None,
            currency: str | None = None) -> Totals:
    """Totals of the given lines (each a record dict) under a `totals:` spec."""
    mode = ROUNDING[spec.get("rounding", "half_up")]

    def money(value: Decimal) -> Decimal:
        return value.quantize(CENT, rounding=mode)

    doc_rate = _d(document_discount) / HUNDRED
    gross_lines, net_lines, by_rate = [], [], {}
    for line in lines:
        quantity, price = _d(line.get(spec["quantity"])), _d(line.get(spec["price"]))
        discount = _d(line.get(spec.get("discount"))) / HUNDRED if spec.get("discount") else 0
        gross = money(quantity * price)
        net = money(quantity * price * (1 - discount))
        gross_lines.append(gross)
        net_lines.append(net)
        rate = _d(line.get(spec.get("vat_rate"))) if spec.get("vat_rate") else Decimal(0)
        by_rate[rate] = by_rate.get(rate, Decimal(0)) + net
    subtotal = sum(gross_lines, Decimal(0))
    lines_net = sum(net_lines, Decimal(0))
    rates = []
    for rate in sorted(by_rate):
        base = money(by_rate[rate] * (1 - doc_rate))
        rates.append(RateLine(rate=rate.normalize() if rate else Decimal(0), base=base,
                              vat=money(base * rate / HUNDRED)))
    net = sum((r.base for r in rates), Decimal(0))
    vat_total = sum((r.vat for r in rates), Decimal(0))
    document_part = lines_net - net
    return Totals(currency=currency, line_totals=net_lines, subtotal=subtotal,
                  line_discounts=subtotal - lines_net, document_discount=document_part,
                  discount_total=subtotal - net, net=net, vat_total=vat_total,
                  grand_total=net + vat_total, rates=rates)


def document_currency(record: dict, spec: dict) -> str | None:
    value = record.get(spec.get("currency", ""))
    if isinstance(value, dict):
        value = value.get("currency")
    return str(value).upper() if value else None
