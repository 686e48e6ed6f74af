"""Lists: filters, sorting, keyset pages that never repeat or skip, counts and search."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from engine.query.listing import QueryError
from engine.query.params import parse_list_args


@pytest.fixture
def customers(shop):
    people = [
        ("Ayşe Yılmaz", "person", "+90 532 111 22 33", ["vip"], "100"),
        ("Mehmet Demir", "person", "0532 444 55 66", [], "250"),
        ("Anadolu Makina", "company", "0212 555 00 11", ["vip", "fuar"], "100"),
        ("Pars Kimya", "company", "+98 21 8888 7777", ["fuar"], None),
        ("Zeynep Kaya", "person", "0533 999 88 77", [], "250"),
        ("Ege Tekstil", "company", "0232 333 22 11", ["vip"], "100"),
    ]
    for index, (name, kind, phone, tags, credit) in enumerate(people):
        shop.records.create("customer", {
            "name": name, "kind": kind, "phone": phone, "tags": tags,
            "tax_number": f"TN{index}" if kind == "company" else None,
            "credit": credit})
    return shop


def page(kervan, **args):
    entity = kervan.model.entity("customer")
    return kervan.records.list("customer", parse_list_args(entity, MultiDict(args)))


def names(result):
    return [r["name"] for r in result.rows]


def test_filters_and_operators(customers):
    assert set(names(page(customers, kind="company"))) == {"Anadolu Makina", "Pars Kimya",
                                                           "Ege Tekstil"}
    assert names(page(customers, name__startswith="an")) == ["Anadolu Makina"]
    assert set(names(page(customers, name__contains="ya"))) == {"Zeynep Kaya", "Pars Kimya"}
    assert set(names(page(customers, credit__gte="200"))) == {"Mehmet Demir", "Zeynep Kaya"}
    assert names(page(customers, credit__isnull="true")) == ["Pars Kimya"]
    assert set(names(page(customers, tags="fuar"))) == {"Anadolu Makina", "Pars Kimya"}
    assert set(names(page(customers, name__in="Pars Kimya,Ege Tekstil"))) == {"Pars Kimya",
                                                                              "Ege Tekstil"}
    assert set(names(page(customers, kind__ne="company"))) == {"Ayşe Yılmaz", "Mehmet Demir",
                                                               "Zeynep Kaya"}


def test_search_matches_names_and_phone_digits(customers):
    assert names(page(customers, q="mehmet")) == ["Mehmet Demir"]
    assert names(page(customers, q="532-111-2233")) == ["Ayşe Yılmaz"]
    assert names(page(customers, q="8888 7777")) == ["Pars Kimya"]


def test_sorting_both_directions(customers):
    assert names(page(customers, _sort="name"))[:2] == ["Anadolu Makina", "Ayşe Yılmaz"]
    assert names(page(customers, _sort="-name"))[0] == "Zeynep Kaya"


@pytest.mark.parametrize("sort", ["credit", "-credit", "kind,-name", "-created_at", "name"])
def test_keyset_pages_never_repeat_or_skip_with_equal_sort_values(customers, sort):
    seen, cursor = [], None
    for _ in range(10):
        args = {"_sort": sort, "_size": "2"}
        if cursor:
            args["_next"] = cursor
        result = page(customers, **args)
        seen.extend(r["id"] for r in result.rows)
        cursor = result.next
        if not cursor:
            break
    assert sorted(seen) == sorted(r["id"] for r in page(customers, _size="50").rows)
    assert len(seen) == len(set(seen)) == 6


def test_counts_and_archived(customers):
    first = customers.records.find("customer", where={"field": "name", "value": "Ege Tekstil"})
    customers.records.archive("customer", first[0]["id"])
    assert page(customers).count == 5
    assert page(customers, _archived="1").count == 6


@pytest.mark.parametrize("args, field, message", [
    ({"colour": "red"}, "colour", "customer has no field 'colour'"),
    ({"name__like": "x"}, "name__like", "unknown operator 'like'"),
    ({"credit__gt": "lots"}, "credit", "must be a number"),
    ({"_sort": "lines"}, "_sort", "customer has no field 'lines'"),
    ({"_size": "5000"}, "_size", "between 1 and 500"),
    ({"_next": "garbage!"}, "_next", "cursor"),
])
def test_bad_list_requests_name_the_problem(customers, args, field, message):
    with pytest.raises(QueryError) as caught:
        page(customers, **args)
    assert message in caught.value.fields[field]
