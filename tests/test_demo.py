"""Demo data is loaded through the record service and loading it twice changes nothing."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.demo import DemoError, demo_files, load_demo

from .conftest import SHOP_METADATA

DEMO = {
    "roles/sales.yaml": """
        sales:
          label: {en: Sales}
          entities:
            "*": {read: team, create: true, edit: own}
    """,
    "demo/10_customers.yaml": """
        _users:
          - {username: ayse, full_name: Ayşe Yılmaz, email: ayse@example.com, language: tr,
             password: Kervan-2026!, roles: [sales], teams: [north]}
        customer:
          - {_key: c_anadolu, _created: 400, _owner: ayse, name: Anadolu Makina A.Ş.,
             tax_number: "1234567890", email: info@anadolu.com.tr, tags: [VIP]}
          - {_key: c_pars, _created: 30, name: شرکت پارس, kind: person, phone: "۰۹۱۲۳۴۵۶۷۸۹"}
    """,
    "demo/20_orders.yaml": """
        order:
          - _key: o1
            _created: 200
            customer: "@c_anadolu"
            ordered_on: today-200
            lines:
              - {description: Pompa, quantity: 2, unit_price: 1250}
    """,
}


def test_demo_loads_once_with_references_dates_and_owners(metadata_dir, make_kervan):
    base = metadata_dir({**SHOP_METADATA, **DEMO})
    kervan = make_kervan(base)
    first = load_demo(kervan)
    assert first.created == {"customer": 2, "order": 1} and first.users == 1
    again = load_demo(kervan)
    assert again.total == 0 and again.skipped == 3

    customers = {c["name"]: c for c in kervan.records.find("customer")}
    anadolu = customers["Anadolu Makina A.Ş."]
    assert anadolu["owner"] is not None
    age = dt.datetime.now(dt.UTC) - anadolu["created_at"]
    assert 399 <= age.days <= 400
    assert customers["شرکت پارس"]["phone"] == "09123456789"  # Persian digits normalised
    order = kervan.records.get("order", kervan.records.find("order")[0]["id"])
    assert order["customer"] == anadolu["id"] and len(order["lines"]) == 1
    assert abs((dt.date.today() - order["ordered_on"]).days - 200) <= 1


def test_bad_demo_record_names_file_entity_and_field(metadata_dir, make_kervan):
    base = metadata_dir({**SHOP_METADATA, "demo/10.yaml": """
        customer:
          - {_key: bad, name: X, kind: company, email: x@example.com}
    """})
    kervan = make_kervan(base)
    with pytest.raises(DemoError, match=r"10.yaml: customer\[0\] \(bad\).*tax_number: is required"):
        load_demo(kervan, demo_files([base]))
    assert kervan.records.find("customer") == []
