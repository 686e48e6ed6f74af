"""The record service: the single door for every write."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from engine.records import Conflict, DeleteRefused, NotFound, RecordError, ValidationFailed


def count(kervan, table: str) -> int:
    with kervan.db.connect() as conn:
        t = kervan.tables.tables[table]
        return conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()


def snapshot(kervan) -> dict[str, int]:
    return {t: count(kervan, t) for t in ("customer", "order", "order_line", "kv_audit",
                                          "kv_series_counter")}


def make_customer(shop, **overrides):
    values = {"name": "Anadolu Makina A.Ş.", "tax_number": "1234567890",
              "email": "satis@anadolu.com.tr"}
    values.update(overrides)
    return shop.records.create("customer", values)


def test_create_read_update_archive_restore(shop):
    customer = make_customer(shop, credit={"amount": "15000.5", "currency": "try"},
                             tags="VIP, Fuar2025")
    assert customer["id"] > 0 and customer["version"] == 1
    assert customer["kind"] == "company"  # default applied
    assert customer["credit"] == {"amount": Decimal("15000.50"), "currency": "TRY"}
    assert customer["tags"] == ["VIP", "Fuar2025"]
    assert customer["created_at"].tzinfo is not None

    updated = shop.records.update("customer", customer["id"], {"phone": "+90 (532) 111 22 33"},
                                  version=1)
    assert updated["version"] == 2 and updated["phone"] == "+90 (532) 111 22 33"

    archived = shop.records.archive("customer", customer["id"])
    assert archived["archived_at"] is not None
    assert shop.records.find("customer") == []
    assert len(shop.records.find("customer", include_archived=True)) == 1
    with pytest.raises(RecordError, match="archived; restore it"):
        shop.records.update("customer", customer["id"], {"name": "X"}, version=3)
    restored = shop.records.restore("customer", customer["id"])
    assert restored["archived_at"] is None and restored["version"] == 4
    assert [c["id"] for c in shop.records.find("customer")] == [customer["id"]]


def test_audit_has_one_row_per_changed_field_and_events(shop):
    customer = make_customer(shop)
    shop.records.update("customer", customer["id"],
                        {"name": "Anadolu Makina", "phone": "05321112233", "email":
                         "satis@anadolu.com.tr"}, version=1)
    shop.records.archive("customer", customer["id"])
    shop.records.restore("customer", customer["id"])
    history = shop.records.history("customer", customer["id"])
    assert [h["action"] for h in history] == ["create", "update", "update", "archive", "restore"]
    assert history[0]["new"]["name"] == "Anadolu Makina A.Ş."
    changes = {h["field"]: (h["old"], h["new"]) for h in history if h["action"] == "update"}
    assert changes == {"name": ("Anadolu Makina A.Ş.", "Anadolu Makina"),
                       "phone": (None, "05321112233")}  # unchanged e-mail is not logged
    assert all(h["at"].tzinfo is not None for h in history)


@pytest.mark.parametrize("values, field, message", [
    ({"email": "a@b.co"}, "name", "is required"),
    ({"name": "X", "email": "a@b.co", "kind": "company"}, "tax_number",
     "is required when Kind is Company"),
    ({"name": "X"}, "email", "enter Email or Phone"),
    ({"name": "X", "email": "not-an-email", "kind": "person"}, "email",
     "not a valid e-mail address"),
    ({"name": "X", "email": "a@b.co", "kind": "robot"}, "kind",
     "'robot' is not one of the options"),
    ({"name": "X", "email": "a@b.co", "kind": "person", "credit": "lots"}, "credit",
     "must be a number"),
    ({"name": "X", "email": "a@b.co", "kind": "person", "credit": "1e30"}, "credit",
     "is too large (at most 16 digits before the decimal point)"),
    ({"name": "X", "email": "a@b.co", "kind": "person", "credit": "10.005"}, "credit",
     "must have at most 2 decimal places"),
    ({"name": "X", "email": "a@b.co", "kind": "person", "colour": "red"}, "colour",
     "customer has no field 'colour'"),
    ({"name": "X", "email": "a@b.co", "kind": "person", "created_by": 3}, "created_by",
     "set by the system"),
])
def test_bad_input_names_the_field_and_writes_nothing(shop, values, field, message):
    before = snapshot(shop)
    with pytest.raises(ValidationFailed) as caught:
        shop.records.create("customer", values)
    assert message in caught.value.fields[field]
    assert snapshot(shop) == before


def test_duplicate_unique_value_is_refused(shop):
    first = make_customer(shop)
    before = snapshot(shop)
    with pytest.raises(ValidationFailed) as caught:
        make_customer(shop, name="Other")
    assert caught.value.fields["tax_number"] == (
        f"Tax number '1234567890' is already used by customer #{first['id']}")
    assert snapshot(shop) == before
    other = make_customer(shop, name="Other", tax_number="999")
    with pytest.raises(ValidationFailed, match="attention"):
        shop.records.update("customer", other["id"], {"tax_number": "1234567890"}, version=1)


def test_link_target_must_exist(shop):
    before = snapshot(shop)
    with pytest.raises(ValidationFailed) as caught:
        shop.records.create("order", {"customer": 4242})
    assert caught.value.fields == {"customer": "customer #4242 does not exist"}
    assert snapshot(shop) == before


def test_stale_version_is_a_conflict_never_an_overwrite(shop):
    customer = make_customer(shop)
    shop.records.update("customer", customer["id"], {"name": "First writer"}, version=1)
    with pytest.raises(Conflict) as caught:
        shop.records.update("customer", customer["id"], {"name": "Second writer"}, version=1)
    assert caught.value.current_version == 2
    assert shop.records.get("customer", customer["id"])["name"] == "First writer"
    with pytest.raises(ValidationFailed, match="attention") as missing:
        shop.records.update("customer", customer["id"], {"name": "No version"}, version=None)
    assert "version" in missing.value.fields


def test_order_with_lines_number_series_and_defaults(shop):
    customer = make_customer(shop)
    order = shop.records.create("order", {"customer": customer["id"], "lines": [
        {"description": "Pompa", "quantity": "2", "unit_price": "1250.00"},
        {"description": "Montaj", "quantity": 1, "unit_price": {"amount": 500, "currency": "TRY"}},
    ]})
    year = dt.datetime.now().year
    assert order["number"] == f"S-{year}-0001"
    assert order["ordered_on"] is not None and order["status"] == "draft"
    assert [line["description"] for line in order["lines"]] == ["Pompa", "Montaj"]
    assert order["lines"][0]["quantity"] == Decimal("2")

    first, _second = order["lines"]
    changed = shop.records.update("order", order["id"], {"lines": [
        {"id": first["id"], "quantity": "3"},
        {"description": "Nakliye", "quantity": 1},
    ]}, version=order["version"])
    assert [(line["description"], line["quantity"]) for line in changed["lines"]] == [
        ("Pompa", Decimal("3")), ("Nakliye", Decimal("1"))]
    assert count(shop, "order_line") == 2

    second = shop.records.create("order", {"customer": customer["id"]})
    assert second["number"] == f"S-{year}-0002"


def test_bad_line_rolls_back_the_whole_order_and_its_number(shop):
    customer = make_customer(shop)
    before = snapshot(shop)
    with pytest.raises(ValidationFailed) as caught:
        shop.records.create("order", {"customer": customer["id"], "lines": [
            {"description": "Pompa", "quantity": "2"},
            {"description": "", "quantity": "-1"},
        ]})
    assert caught.value.fields == {"lines.1.description": "is required",
                                   "lines.1.quantity": "must be at least 0"}
    assert snapshot(shop) == before
    order = shop.records.create("order", {"customer": customer["id"]})
    assert order["number"].endswith("-0001")  # the failed attempt did not burn a number


def test_read_only_and_series_fields_cannot_be_edited(shop):
    order = shop.records.create("order", {"customer": make_customer(shop)["id"]})
    with pytest.raises(ValidationFailed) as caught:
        shop.records.update("order", order["id"], {"number": "S-1999-0001"}, version=1)
    assert caught.value.fields == {"number": "is read-only"}


def test_delete_policy_and_links_protect_records(shop):
    customer = make_customer(shop)
    order = shop.records.create("order", {"customer": customer["id"]})
    with pytest.raises(DeleteRefused, match="never deleted"):
        shop.records.delete("order", order["id"])
    with pytest.raises(DeleteRefused, match="1 order record"):
        shop.records.delete("customer", customer["id"])
    lonely = make_customer(shop, name="Lonely", tax_number="55")
    shop.records.delete("customer", lonely["id"])
    with pytest.raises(NotFound):
        shop.records.get("customer", lonely["id"])
    assert [c["id"] for c in shop.records.find("customer")] == [customer["id"]]
    with shop.db.connect() as conn:
        audit = shop.tables.tables["kv_audit"]
        event = conn.execute(sa.select(audit).where(audit.c.action == "delete")).mappings().one()
    assert '"Lonely"' in event["old_value"]


def test_unknown_record_and_entity(shop):
    with pytest.raises(NotFound, match="customer #77 does not exist"):
        shop.records.get("customer", 77)
    with pytest.raises(NotFound):
        shop.records.get("customer", "abc")
    with pytest.raises(NotFound, match="entity"):
        shop.records.create("spaceship", {})


def test_bulk_path_keeps_validation_series_and_audit(shop):
    customer = make_customer(shop)
    rows = [{"customer": customer["id"], "status": "confirmed"} for _ in range(25)]
    ids = shop.records.bulk_create("order", rows, batch_size=10)
    assert len(ids) == 25 == len(set(ids))
    numbers = sorted(o["number"] for o in shop.records.find("order", limit=100))
    year = dt.datetime.now().year
    assert numbers == [f"S-{year}-{n:04d}" for n in range(1, 26)]
    assert count(shop, "kv_audit") == 1 + 25
    before = snapshot(shop)
    bad = [{"customer": customer["id"]}, {"customer": 999}, {"status": "lost",
                                                             "customer": customer["id"]}]
    with pytest.raises(ValidationFailed) as caught:
        shop.records.bulk_create("order", bad)
    assert caught.value.fields == {"1.customer": "customer #999 does not exist",
                                   "2.status": "'lost' is not one of the options: draft, "
                                               "confirmed, shipped"}
    assert snapshot(shop) == before
    dupes = [{"name": "A", "kind": "person", "email": "a@x.co", "tax_number": "T1"},
             {"name": "B", "kind": "person", "email": "b@x.co", "tax_number": "T1"}]
    with pytest.raises(ValidationFailed) as caught:
        shop.records.bulk_create("customer", dupes)
    assert caught.value.fields == {"1.tax_number": "'T1' is repeated (also in row 0)"}
    # batches are checked one ahead of the write: a value taken by the batch before, not
    # yet written, is still a repeat; nothing of the call is kept
    spread = [{"name": f"C{i}", "kind": "person", "email": f"c{i}@x.co",
               "tax_number": f"T-{i % 3}"} for i in range(4)]
    with pytest.raises(ValidationFailed) as caught:
        shop.records.bulk_create("customer", spread, batch_size=1)
    assert caught.value.fields == {"3.tax_number": "'T-0' is repeated (also in row 0)"}
    assert snapshot(shop) == before


def test_the_bulk_pipeline_writes_every_batch_in_order(shop):
    """Batches are written by a second thread while the next is prepared: every row lands
    once, ids follow the rows, each has its audit event, a later batch's refusal keeps none."""
    customer = make_customer(shop)
    rows = [{"name": f"Müşteri {i}", "kind": "person", "phone": f"+90 532 000 {i:04d}"}
            for i in range(23)]
    ids = shop.records.bulk_create("customer", rows, batch_size=4)
    assert ids == sorted(ids) and len(set(ids)) == 23
    assert [shop.records.get("customer", i)["name"] for i in ids] == [r["name"] for r in rows]
    assert count(shop, "kv_audit") == 1 + 23
    before = snapshot(shop)
    late = [{"customer": customer["id"]}] * 9 + [{"customer": 424242}]
    with pytest.raises(ValidationFailed) as caught:
        shop.records.bulk_create("order", late, batch_size=3)
    assert caught.value.fields == {"9.customer": "customer #424242 does not exist"}
    assert snapshot(shop) == before


def test_a_write_the_database_refuses_mid_load_keeps_nothing(shop):
    """A refusal from the database itself (here a DBA's trigger), raised while a later
    batch is being prepared (by the writer thread on PostgreSQL), ends the call with that
    error, rolls the whole load back and leaves the connection pool usable."""
    with shop.db.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.name = 'boom' THEN RAISE EXCEPTION 'boom is not a customer'; END IF; "
                "RETURN NEW; END $$")
            conn.exec_driver_sql("CREATE TRIGGER refuse_boom BEFORE INSERT ON customer "
                                 "FOR EACH ROW EXECUTE FUNCTION refuse_boom()")
        else:
            conn.exec_driver_sql("CREATE TRIGGER refuse_boom BEFORE INSERT ON customer "
                                 "WHEN new.name = 'boom' BEGIN "
                                 "SELECT RAISE(ABORT, 'boom is not a customer'); END")
    before = snapshot(shop)
    rows = [{"name": "boom" if i == 7 else f"Müşteri {i}", "kind": "person",
             "email": f"m{i}@x.co"} for i in range(12)]
    with pytest.raises(sa.exc.DatabaseError, match="boom is not a customer"):
        shop.records.bulk_create("customer", rows, batch_size=3)
    assert snapshot(shop) == before
    assert shop.records.bulk_create("customer", rows[:7], batch_size=3)  # the pool is fine
    assert count(shop, "customer") == before["customer"] + 7


def test_an_unknown_owner_is_refused(shop):
    with pytest.raises(ValidationFailed) as caught:
        make_customer(shop, owner=987)
    assert caught.value.fields == {"owner": "user #987 does not exist"}


def test_the_bulk_path_stores_every_type_as_a_single_create_does(shop):
    """Bulk rows go to the database by the driver's fastest way (executemany on SQLite,
    COPY on PostgreSQL); each value must come back exactly as through `create`."""
    values = {"name": "Çağla Öz", "kind": "person", "email": "cagla@x.co",
              "phone": "+90 (532) 111-22-33", "credit": {"amount": "1234.56", "currency": "EUR"},
              "tags": ["vip", "İzmir"]}
    one = shop.records.create("customer", dict(values, tax_number="T-1"))
    (bulk_id,) = shop.records.bulk_create("customer", [dict(values, tax_number="T-2")])
    many = shop.records.get("customer", bulk_id)
    ignore = {"id", "created_at", "updated_at", "tax_number"}
    assert {k: v for k, v in many.items() if k not in ignore} == \
        {k: v for k, v in one.items() if k not in ignore}
    customer = shop.records.table("customer")
    with shop.db.connect() as conn:
        stored = conn.execute(sa.select(customer.c.phone__digits, customer.c.created_at)
                              .where(customer.c.id == bulk_id)).one()
    assert stored.phone__digits == "905321112233"
    assert abs(stored.created_at.replace(tzinfo=dt.UTC) - dt.datetime.now(dt.UTC)) < \
        dt.timedelta(minutes=5)
    (order_id,) = shop.records.bulk_create("order", [{"customer": one["id"],
                                                      "ordered_on": "2026-03-01"}])
    assert shop.records.get("order", order_id)["ordered_on"] == dt.date(2026, 3, 1)


def test_the_bulk_path_keeps_the_dates_of_an_import(shop):
    customer = make_customer(shop)
    moments = [dt.datetime(2024, 12, 31, 20, 0, tzinfo=dt.UTC),   # 23:00 in Istanbul
               dt.datetime(2024, 6, 1, 9, 0, tzinfo=dt.UTC),
               dt.datetime(2025, 2, 3, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=3, minutes=30)))]
    ids = shop.records.bulk_create("order", [{"customer": customer["id"]}] * 3, at=moments)
    orders = [shop.records.get("order", i) for i in ids]
    assert [o["created_at"] for o in orders] == [m.astimezone(dt.UTC) for m in moments]
    # $today defaults and the yearly series follow the moment each order was made
    assert [o["ordered_on"] for o in orders] == [dt.date(2024, 12, 31), dt.date(2024, 6, 1),
                                                 dt.date(2025, 2, 3)]
    assert [o["number"] for o in orders] == ["S-2024-0001", "S-2024-0002", "S-2025-0001"]
    audit = shop.tables.tables["kv_audit"]
    with shop.db.connect() as conn:
        at = conn.execute(sa.select(audit.c.at).where(audit.c.entity == "order")
                          .order_by(audit.c.record_id)).scalars().all()
    assert [a.replace(tzinfo=dt.UTC) if a.tzinfo is None else a for a in at] == \
        [m.astimezone(dt.UTC) for m in moments]
    with pytest.raises(RecordError, match="2 moments for 3 rows"):
        shop.records.bulk_create("order", [{"customer": customer["id"]}] * 3, at=moments[:2])
    with pytest.raises(RecordError, match="moment 0 has no time zone"):
        shop.records.bulk_create("order", [{"customer": customer["id"]}],
                                 at=[dt.datetime(2025, 1, 1)])


def test_after_a_big_load_link_checks_read_by_primary_key(shop, monkeypatch):
    """The next load's link checks (`id IN (…)` on the table just filled) must read by
    primary key. PostgreSQL plans with the statistics of the table's last ANALYZE, and a
    table loaded right after its creation looks empty (700 opportunities/s in the
    benchmark instead of 7,000), so a big bulk load analyses the table it filled. SQLite's
    planner reads a rowid list by its key without statistics."""
    from engine.records import bulk

    monkeypatch.setattr(bulk, "ANALYZE_AFTER", 3)
    rows = [{"name": f"Müşteri {i}", "kind": "person", "email": f"m{i}@x.co"}
            for i in range(5)]
    ids = shop.records.bulk_create("customer", rows)
    with shop.db.connect() as conn:
        if conn.dialect.name == "postgresql":
            tuples = conn.exec_driver_sql(
                "SELECT reltuples FROM pg_class WHERE relname = 'customer'").scalar_one()
            assert tuples == 5
        else:
            plan = conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN SELECT id FROM customer WHERE id IN ({ids[0]}, {ids[1]})"
            ).all()
            assert "USING INTEGER PRIMARY KEY" in " ".join(r[-1] for r in plan)
    # a load small beside what the statistics know of leaves them to autovacuum (sampling
    # a big table costs half a second); one as big as the table refreshes them
    for count, rows_after, counted in ((3, 8, 5), (9, 17, 17)):
        shop.records.bulk_create("customer", [{"name": f"Ek {rows_after}.{i}", "kind": "person",
                                               "email": f"ek{rows_after}.{i}@x.co"}
                                              for i in range(count)])
        with shop.db.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM customer").scalar_one() \
                == rows_after
            if conn.dialect.name == "postgresql":  # what the planner believes
                assert conn.exec_driver_sql("SELECT reltuples FROM pg_class "
                                            "WHERE relname = 'customer'").scalar_one() == counted
