"""The search index: a trigram index over each entity's search document (PostgreSQL
pg_trgm GIN, SQLite FTS5), kept right through every write and every migration, and used
by the database for the searches users type."""

from __future__ import annotations

import sqlalchemy as sa

from engine.query import search_index
from engine.query.listing import ListRequest, build_select
from engine.storage.schema_sync import plan_sync, sync_schema

SHOP = {"entities/customer.yaml": """
    customer:
      label: {en: Customer}
      title: name
      fields:
        name: {type: string, required: true, searchable: true}
        city: {type: string}
        phone: {type: phone, searchable: true}
        number: {type: integer, searchable: true}
"""}


def lead(kervan, **values) -> dict:
    """A lead as the base CRM requires it (a source; a phone or an e-mail)."""
    values.setdefault("source", "referral")
    if "phone" not in values:
        values.setdefault("email", f"lead{id(values)}@kervan.test")
    return kervan.records.create("lead", values)


def found(kervan, entity: str, text: str) -> list[str]:
    title = "name" if entity == "customer" else "full_name"
    page = kervan.records.list(entity, ListRequest(search=text, size=100))
    return sorted(r[title] for r in page.rows)


def index_rows(kervan, entity: str) -> int | None:
    """Documents in the SQLite FTS table (None on PostgreSQL, where the index has none)."""
    if kervan.db.dialect.name != "sqlite":
        return None
    with kervan.db.connect() as conn:
        name = search_index.fts_table(kervan.model.entity(entity))
        return conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar_one()


def plan_text(kervan, entity: str, text: str) -> str:
    """The database's plan for a list search, with sequential reads priced out on
    PostgreSQL so that a usable index must show up (a tiny table is otherwise read whole)."""
    ent = kervan.model.entity(entity)
    table = kervan.records.table(ent)
    stmt = build_select(ent, table, ListRequest(search=text),
                        dialect=kervan.db.dialect.name).order_by(table.c.id).limit(51)
    with kervan.db.connect() as conn:
        if conn.dialect.name == "sqlite":
            sql = stmt.compile(conn, compile_kwargs={"literal_binds": True})
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
            return "\n".join(r[-1] for r in rows)
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        conn.exec_driver_sql("SET LOCAL enable_indexscan = off")
        compiled = stmt.compile(conn)
        rows = conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params).all()
        return "\n".join(r[0] for r in rows)


def test_the_database_reaches_search_hits_through_the_index(crm):
    lead(crm, **{"full_name": "Şükrü Öztürk", "company": "Anadolu Tekstil"})
    for text in ("öztürk", "anadolu tek", "905321234567"):
        plan = plan_text(crm, "lead", text)
        if crm.db.dialect.name == "sqlite":
            assert "kv_search_lead VIRTUAL TABLE INDEX" in plan, plan
            assert "SEARCH lead USING INTEGER PRIMARY KEY" in plan, plan
        else:
            assert "Bitmap Index Scan on sx_lead" in plan, plan


def test_short_terms_skip_the_index_and_still_match(crm):
    lead(crm, **{"full_name": "Ali Ok", "company": "Ok Ltd"})
    assert "kv_search" not in plan_text(crm, "lead", "ok")
    assert "sx_lead" not in plan_text(crm, "lead", "ok")
    assert found(crm, "lead", "ok") == ["Ali Ok"]
    assert found(crm, "lead", "Al") == ["Ali Ok"]


def test_the_index_follows_every_write(crm):
    r = crm.records
    ayse = lead(crm, **{"full_name": "Ayşe Yılmaz", "company": "İSTANBUL Halı",
                             "phone": "+90 532 111 2233"})
    reza = lead(crm, **{"full_name": "رضا كريمي", "email": "reza@pars.example"})
    # Turkish i's and capitals, Persian yeh/kaf typed either way, phones by their digits
    assert found(crm, "lead", "istanbul hali") == ["Ayşe Yılmaz"]
    assert found(crm, "lead", "AYŞE YILMAZ") == ["Ayşe Yılmaz"]
    assert found(crm, "lead", "رضا کریمی") == ["رضا كريمي"]
    assert found(crm, "lead", "0532 111 22 33") == ["Ayşe Yılmaz"]
    assert found(crm, "lead", "pars.example") == ["رضا كريمي"]
    assert index_rows(crm, "lead") in (None, 2)

    ayse = r.update("lead", ayse["id"], {"full_name": "Ayşe Demir", "phone": "+90 533 999 8877"},
                    version=ayse["version"])
    assert found(crm, "lead", "yılmaz") == []
    assert found(crm, "lead", "demir") == ["Ayşe Demir"]
    assert found(crm, "lead", "532 111") == []
    assert found(crm, "lead", "533 999 88") == ["Ayşe Demir"]

    r.archive("lead", ayse["id"])
    assert found(crm, "lead", "demir") == []
    r.restore("lead", ayse["id"])
    assert found(crm, "lead", "demir") == ["Ayşe Demir"]

    r.delete("lead", reza["id"])
    assert found(crm, "lead", "reza") == []
    assert index_rows(crm, "lead") in (None, 1)

    crm.records.bulk_create("lead", [{"full_name": f"Toplu Kayıt {i}", "source": "referral",
                                      "email": f"toplu{i}@kervan.test"} for i in range(30)])
    assert len(found(crm, "lead", "toplu kay")) == 30
    assert index_rows(crm, "lead") in (None, 31)


def test_typed_wildcards_are_plain_characters(crm):
    lead(crm, **{"full_name": "Yüzde %50 İndirim", "company": "a_b Ltd"})
    lead(crm, **{"full_name": "Yüzde 150 İndirim", "company": "axb Ltd"})
    assert found(crm, "lead", "%50 ind") == ["Yüzde %50 İndirim"]
    assert found(crm, "lead", "a_b ltd") == ["Yüzde %50 İndirim"]


def test_a_field_the_user_cannot_see_is_not_searched(crm):
    """The document holds every searchable field; the exact match after the index
    lookup only looks at the fields the user may see."""
    lead(crm, **{"full_name": "Gizli Numara", "phone": "+90 555 444 3322"})
    entity = crm.model.entity("lead")
    table = crm.records.table(entity)
    with crm.db.connect() as conn:
        for hidden, expected in ((frozenset(), 1), (frozenset({"phone"}), 0)):
            stmt = build_select(entity, table, ListRequest(search="555 444 33"), hidden=hidden,
                                dialect=conn.dialect.name)
            assert len(conn.execute(stmt).all()) == expected


def test_migrations_build_and_rebuild_the_index(metadata_dir, make_kervan):
    base = metadata_dir(SHOP)
    kervan = make_kervan(base)
    assert any("search index" in line for line in plan_sync(kervan.db, kervan.model).lines()
               ) is False
    kervan.records.create("customer", {"name": "Kuzey Gıda", "city": "Trabzon",
                                       "number": 4711})
    assert found(kervan, "customer", "4711") == ["Kuzey Gıda"]
    assert found(kervan, "customer", "trabzon") == []

    # the city becomes searchable: the index is rebuilt from the rows already there
    overlay = metadata_dir({"entities/customer.yaml": """
        customer:
          fields:
            city: {searchable: true, max_length: 400}
    """}, name="city")
    widened = make_kervan(base, overlay, migrate=False)
    lines = plan_sync(widened.db, widened.model).lines()
    assert lines == ["widen column customer.city (string:255 → string:400)",
                     "build search index on customer (rebuild: over name, city, phone__digits, "
                     "number)"]
    sync_schema(widened.db, widened.model)
    assert plan_sync(widened.db, widened.model).lines() == ["no schema changes"]
    assert found(widened, "customer", "trabzon") == ["Kuzey Gıda"]
    # the widened column was copied on SQLite; new rows still reach the index
    widened.records.create("customer", {"name": "Güney Un", "city": "Mersin"})
    assert found(widened, "customer", "mersin") == ["Güney Un"]
    assert index_rows(widened, "customer") in (None, 2)

    # nothing searchable any more: the index goes, search still answers (finds nothing)
    none = metadata_dir({"entities/customer.yaml": """
        customer:
          fields:
            name: {searchable: false}
            phone: {searchable: false}
            number: {searchable: false}
            city: {searchable: false}
    """}, name="none")
    bare = make_kervan(base, overlay, none, migrate=False)
    assert "drop search index on customer (no searchable fields left)" in \
        plan_sync(bare.db, bare.model).lines()
    sync_schema(bare.db, bare.model)
    assert found(bare, "customer", "kuzey") == []
    bare.records.create("customer", {"name": "Batı Süt"})
    with bare.db.connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
        assert "kv_search_customer" not in names
        if conn.dialect.name == "postgresql":
            assert "sx_customer" not in {i["name"] for i in
                                         sa.inspect(conn).get_indexes("customer")}


def test_a_column_the_document_is_made_of_can_change(metadata_dir, make_kervan):
    """PostgreSQL keeps the document in a stored column that depends on the searchable
    columns, and refuses to alter or drop a column while it does: the sync takes the
    index away before a searchable column is widened or converted and builds it again
    after. Records never carry the document."""
    base = metadata_dir(SHOP)
    kervan = make_kervan(base)
    made = kervan.records.create("customer", {"name": "Doğu Lojistik", "number": 88})
    assert "kv_search" not in made and "kv_search" not in kervan.records.get("customer",
                                                                             made["id"])
    wider = metadata_dir({"entities/customer.yaml": """
        customer:
          fields:
            name: {max_length: 500}
    """}, name="wider")
    widened = make_kervan(base, wider, migrate=False)
    assert plan_sync(widened.db, widened.model).lines() == [
        "widen column customer.name (string:255 → string:500)",
        "build search index on customer (rebuild: over name, phone__digits, number)"]
    sync_schema(widened.db, widened.model)
    assert plan_sync(widened.db, widened.model).lines() == ["no schema changes"]
    assert found(widened, "customer", "doğu loj") == ["Doğu Lojistik"]

    converted = metadata_dir({"entities/customer.yaml": """
        customer:
          fields:
            number: {type: string, searchable: true}
    """}, name="converted")
    texts = make_kervan(base, wider, converted, migrate=False)
    assert plan_sync(texts.db, texts.model).lines() == [
        "convert column customer.number (string field number: integer → string:255; 1 of 1 "
        "values convert)",
        "build search index on customer (rebuild: over name, phone__digits, number)"]
    sync_schema(texts.db, texts.model)
    assert found(texts, "customer", "88") == ["Doğu Lojistik"]
    texts.records.create("customer", {"name": "Kuzey Depo", "number": "K-1234"})
    assert found(texts, "customer", "k-123") == ["Kuzey Depo"]


def test_the_lookup_is_a_plain_condition_in_the_sql(crm):
    """SQLite writes a boolean expression it does not know as `(…) = 1`, which hides the
    lookup from its planner; the candidates must stay a plain `id IN (…)`. And the
    statement is cached like any other: the second search with other words compiles
    nothing and still finds its own words."""
    entity = crm.model.entity("lead")
    table = crm.records.table(entity)
    stmt = build_select(entity, table, ListRequest(search="öztürk"),
                        dialect=crm.db.dialect.name)
    sql = str(stmt.compile(crm.db))
    assert ") = 1" not in sql and "= true" not in sql.lower()
    lead(crm, **{"full_name": "Kemal Sunal"})
    lead(crm, **{"full_name": "Adile Naşit"})
    assert found(crm, "lead", "kemal") == ["Kemal Sunal"]
    assert found(crm, "lead", "naşit") == ["Adile Naşit"]


def test_digits_in_an_email_or_name_do_not_search_phones(crm):
    lead(crm, **{"full_name": "Hatice Öztürk", "email": "hatice.ozturk96492@hotmail.com"})
    lead(crm, **{"full_name": "Başka Biri", "phone": "+90 532 964 9211"})
    assert found(crm, "lead", "hatice.ozturk96492@hotmail.com") == ["Hatice Öztürk"]
    assert found(crm, "lead", "96492") == ["Başka Biri", "Hatice Öztürk"]
    assert found(crm, "lead", "532 964 92") == ["Başka Biri"]
    assert found(crm, "lead", "(0532) ۹۶۴-۹۲") == ["Başka Biri"]  # Persian digits


def test_a_refused_bulk_load_leaves_the_index_as_it_was(crm):
    """The bulk path indexes its batches itself, without the insert trigger; a refused
    load rolls back and the trigger is there for the next writer."""
    rows = [{"full_name": f"Parti {i}", "source": "referral", "email": f"p{i}@kervan.test"}
            for i in range(5)] + [{"full_name": "Eksik"}]  # no source, no e-mail
    try:
        crm.records.bulk_create("lead", rows, batch_size=2)
    except Exception as exc:  # noqa: BLE001 - the refusal itself is checked below
        assert "5.source" in str(getattr(exc, "errors", exc))
    else:
        raise AssertionError("a lead without a source was accepted")
    assert found(crm, "lead", "parti") == []
    assert index_rows(crm, "lead") in (None, 0)
    lead(crm, **{"full_name": "Sonraki Kayıt"})
    assert found(crm, "lead", "sonraki") == ["Sonraki Kayıt"]
    assert index_rows(crm, "lead") in (None, 1)


def test_text_many_records_hold_walks_the_list_and_counts_through_the_index(crm, monkeypatch):
    """Above SEARCH_HITS_TO_SORT hits, the page comes from walking the list's own order
    (sorting every hit would cost more) and the count from the index's hits joined as
    they come; rows, order, pages and count are the same as through the index."""
    from engine.query import listing

    ids = [lead(crm, **{"full_name": f"Ortak Müşteri {i}"})["id"] for i in range(8)]
    lead(crm, **{"full_name": "Başka Biri"})
    crm.records.archive("lead", ids[3])

    def walk(size: int) -> tuple[list[int], int | None]:
        seen, cursor, count = [], None, None
        while True:
            page = crm.records.list("lead", ListRequest(search="ortak müş", size=size,
                                                        cursor=cursor))
            count = count if count is not None else page.count
            seen += [r["id"] for r in page.rows]
            cursor = page.next
            if not cursor:
                return seen, count

    through_index = walk(3)
    monkeypatch.setattr(listing, "SEARCH_HITS_TO_SORT", 2)
    with crm.db.connect() as conn:
        assert search_index.common(conn, crm.model.entity("lead"), crm.records.table("lead"),
                                   "ortak müş", 2)
    walked = walk(3)
    assert walked == through_index
    assert sorted(walked[0]) == sorted(i for i in ids if i != ids[3]) and walked[1] == 7


def test_an_email_is_looked_up_by_its_name_part_and_matched_whole(crm):
    lead(crm, **{"full_name": "Seda Erdoğan", "email": "seda.erdogan28767@gmail.com"})
    lead(crm, **{"full_name": "Seda Başka", "email": "seda.erdogan28767@yahoo.com"})
    entity = crm.model.entity("lead")
    assert search_index.terms(entity, "seda.erdogan28767@gmail.com") == [
        ("text", "seda.erdogan28767")]
    assert not search_index.implies_match(entity, "seda.erdogan28767@gmail.com")
    assert found(crm, "lead", "seda.erdogan28767@gmail.com") == ["Seda Erdoğan"]
    assert found(crm, "lead", "SEDA.ERDOGAN28767@") == ["Seda Başka", "Seda Erdoğan"]
    assert found(crm, "lead", "@yahoo.com") == ["Seda Başka"]


def test_pages_are_the_same_below_and_above_the_count_cap(crm, monkeypatch):
    """PostgreSQL reads the count and the page in one statement while the matches fit
    under the cap, and the usual way beyond it; SQLite always the usual way. Either way
    the pages hold the same records in the same order."""
    from engine.query import listing

    for i in range(12):
        lead(crm, **{"full_name": f"Sayfa {i % 5} Kişi {i}"})

    def walk(**options) -> tuple[list[int], int | None, int | None]:
        seen, cursor, first = [], None, None
        while True:
            page = crm.records.list("lead", ListRequest(size=4, cursor=cursor, **options))
            first = first or page
            seen += [r["id"] for r in page.rows]
            cursor = page.next
            if not cursor:
                return seen, first.count, first.at_least

    for options in ({"sort": listing.parse_sort(crm.model.entity("lead"), "full_name")},
                    {"search": "sayfa"}, {}):
        below = walk(**options)
        monkeypatch.setattr(listing, "COUNT_CAP", 5)
        above = walk(**options)
        monkeypatch.undo()
        assert below[0] == above[0] and len(below[0]) == 12
        assert (below[1], below[2]) == (12, None) and (above[1], above[2]) == (None, 5)


def test_a_search_without_matches_still_counts_and_reads_the_index_once(crm):
    """No match gives an empty page with a count of 0 (on PostgreSQL the count comes back
    from the same statement as the page, even when the page is empty), and on PostgreSQL
    a counted search is one statement that reads the trigram index once."""
    for i in range(3):
        lead(crm, **{"full_name": f"Tekil Arama {i}"})
    seen: list[str] = []

    def grab(_conn, _cursor, statement, *_args):
        seen.append(statement)

    sa.event.listen(crm.db, "before_cursor_execute", grab)
    try:
        empty = crm.records.list("lead", ListRequest(search="yokböyle"))
        page = crm.records.list("lead", ListRequest(search="tekil arama", size=2))
    finally:
        sa.event.remove(crm.db, "before_cursor_execute", grab)
    assert (empty.rows, empty.count, empty.next) == ([], 0, None)
    assert page.count == 3 and len(page.rows) == 2 and page.next
    rest = crm.records.list("lead", ListRequest(search="tekil arama", size=2, cursor=page.next))
    assert rest.count == 3 and len(rest.rows) == 1 and rest.next is None
    assert {r["id"] for r in page.rows + rest.rows} == {
        r["id"] for r in crm.records.find("lead", {"field": "full_name", "op": "contains",
                                                    "value": "Tekil"})}
    reads = [s for s in seen if " lead" in s]
    if crm.db.dialect.name == "postgresql":
        assert len(reads) == 2  # one statement per search, the index in it once
        assert [s.count(" LIKE ") for s in reads] == [1, 1]


def test_a_search_counts_up_to_its_own_cap(crm, monkeypatch):
    """A search checks each counted match against the text, so it counts fewer than a
    plain list before saying "at least"; the pages stay whole either way."""
    from engine.query import listing

    for i in range(7):
        lead(crm, **{"full_name": f"Sınır Sayım {i}"})
    monkeypatch.setattr(listing, "SEARCH_COUNT_CAP", 3)
    searched = crm.records.list("lead", ListRequest(search="sınır sayım", size=5))
    assert (searched.count, searched.at_least, len(searched.rows)) == (None, 3, 5)
    rest = crm.records.list("lead", ListRequest(search="sınır sayım", size=5,
                                                cursor=searched.next))
    assert len(rest.rows) == 2 and rest.next is None
    listed = crm.records.list("lead", ListRequest())
    assert listed.count == 7 and listed.at_least is None


def test_the_search_box_shows_each_entity_as_its_list_would(crm):
    """`search_all` asks every entity's index in one statement, then reads only the
    entities with candidates among them: what it shows of each entity is exactly the first
    page of that entity's list searched for the text, for every user and kind of text —
    archived records, other teams' records and candidates the exact match turns down
    (an address found by its name part) left out; entities without matches left out."""
    users = crm.users
    admin, ayse = (users.actor(users.by_username(n)) for n in ("admin", "ayse"))
    reza = users.actor(users.by_username("reza"))
    for i in range(9):  # more than the six shown: the group says there are more
        lead(crm, **{"full_name": f"Deniz Kutucu {i}", "email": f"deniz{i}@kutucu.example"})
    theirs = crm.records.create("lead", {"full_name": "Kutucu Tahran", "source": "referral",
                                         "email": "kutucu@tahran.example"}, actor=reza)
    crm.records.archive("lead", found_ids(crm, "kutucu 3")[0])
    crm.records.create("account", {"name": "Kutucu Ambalaj", "kind": "individual"})
    lead(crm, **{"full_name": "Seda Erdoğan", "email": "seda.erdogan28767@gmail.com"})
    lead(crm, **{"full_name": "Seda Başka", "email": "seda.erdogan28767@yahoo.com"})
    crm.records.bulk_create("lead", [{"full_name": f"Yaygın Ad {i}", "source": "referral",
                                      "email": f"yaygin{i}@kervan.test"} for i in range(120)])
    searchable = [e.key for e in crm.model.entities.values()
                  if not e.child_of and e.search_fields]
    assert len(searchable) > 10

    for actor in (admin, ayse):
        for text, size in (("kutucu", 6), ("seda.erdogan28767@gmail.com", 6),
                           ("yaygın ad", 1), ("ku", 6), ("hiçbir kayıtta yok", 6)):
            # size 1: more candidates than a page of one sorts (100), so the leads are
            # searched as their list would be, through the index again
            shown = {e.key: page for e, page in crm.records.search_all(text, actor, size=size)}
            expected = {}
            for key in searchable:
                if crm.permissions.scope(actor, crm.model.entity(key), "read") == "none":
                    continue
                page = crm.records.list(key, ListRequest(search=text, size=size, count=False),
                                        actor=actor)
                if page.rows:
                    expected[key] = page
            assert {k: ([r["id"] for r in p.rows], bool(p.next)) for k, p in shown.items()} \
                == {k: ([r["id"] for r in p.rows], bool(p.next)) for k, p in expected.items()}, \
                (actor, text)

    kutucu = {e.key: page for e, page in crm.records.search_all("kutucu", admin)}
    assert set(kutucu) == {"lead", "account"} and bool(kutucu["lead"].next)
    assert theirs["id"] in [r["id"] for r in kutucu["lead"].rows]
    assert theirs["id"] not in [r["id"] for e, p in crm.records.search_all("kutucu", ayse)
                                for r in p.rows]
    seda = crm.records.search_all("seda.erdogan28767@gmail.com", admin)
    assert [(e.key, [r["full_name"] for r in p.rows]) for e, p in seda] == \
        [("lead", ["Seda Erdoğan"])]


def test_every_entitys_candidates_come_from_one_statement(crm):
    entities = [(e, crm.records.table(e)) for e in crm.model.entities.values()
                if not e.child_of and e.search_fields]
    crm.records.bulk_create("lead", [{"full_name": f"Aday {i}", "source": "referral",
                                      "email": f"aday{i}@kervan.test"} for i in range(5)])
    crm.records.create("account", {"name": "Aday Yapı", "kind": "individual"})
    statements = []

    def record(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append(statement)

    with crm.db.connect() as conn:
        sa.event.listen(crm.db, "before_cursor_execute", record)
        try:
            found_now = search_index.candidate_ids(conn, entities, "aday", 10)
        finally:
            sa.event.remove(crm.db, "before_cursor_execute", record)
        assert len(statements) == 1 and statements[0].count("UNION ALL") == len(entities) - 1
        assert sorted(found_now["lead"]) == sorted(found_ids(crm, "aday"))
        assert len(found_now["account"]) == 1
        assert all(ids == [] for key, ids in found_now.items() if key not in ("lead", "account"))
        assert search_index.candidate_ids(conn, entities, "aday", 4)["lead"] is None
        assert search_index.candidate_ids(conn, entities, "ad", 10) == {}  # too short


def found_ids(kervan, text: str) -> list[int]:
    return [r["id"] for r in kervan.records.list("lead", ListRequest(search=text, size=100)).rows]


def test_a_search_the_index_found_in_many_records_walks_a_bounded_part_of_the_list(
        crm, monkeypatch):
    """`many_hits` (the search box knows the index holds the text in more records than a
    page sorts): an uncounted page walks the list's own order and tests each row (on
    PostgreSQL its stored document first), in one statement, without asking the index
    again. The walk stops after WALK_ROWS rows; when
    those hold less than a page, the index's hits are sorted. Every way gives the same
    page."""
    from engine.query import listing

    crm.records.bulk_create("lead", [{"full_name": f"Yaygın Ad {i}", "source": "referral",
                                      "email": f"yaygin{i}@kervan.test"} for i in range(12)])
    crm.records.bulk_create("lead", [{"full_name": f"Başka Kişi {i}", "source": "referral",
                                      "email": f"baska{i}@kervan.test"} for i in range(8)])
    statements = []

    def page(many_hits: bool, size: int = 3) -> tuple[list[int], bool]:
        statements.clear()
        listed = crm.records.list("lead", ListRequest(search="yaygın ad", size=size,
                                                      count=False, many_hits=many_hits))
        return [r["id"] for r in listed.rows], bool(listed.next)

    def record(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append(statement)

    sa.event.listen(crm.db, "before_cursor_execute", record)
    try:
        asked = page(False)
        assert len(asked[0]) == 3 and asked[1]
        assert page(True) == asked
        assert len(statements) == 1 and "walked" in statements[0]
        if crm.db.dialect.name == "postgresql":  # each row tested on its stored document
            assert "walked.kv_search LIKE" in statements[0], statements[0]
        monkeypatch.setattr(listing, "WALK_ROWS", 5)  # only the newer "Başka Kişi"s
        assert page(True) == asked
        assert "walked" in statements[0] and "walked" not in statements[-1]
        through_index = ("WITH hits AS MATERIALIZED" if crm.db.dialect.name == "postgresql"
                         else search_index.fts_table(crm.model.entity("lead")))
        assert through_index in statements[-1]
        assert page(True, size=20) == page(False, size=20)
    finally:
        sa.event.remove(crm.db, "before_cursor_execute", record)


def test_the_search_box_reads_its_newest_candidates_first_and_tests_them_exactly(crm):
    """The index gives each entity's candidates newest first; the search box reads the
    newest few as the page and falls back to every candidate only when one of them fails
    the exact match. Among the ids the index gave for one plain term, whether a record
    still holds the text is one test of its stored document on PostgreSQL (a `strpos`
    the trigram index cannot serve, so the index is not read twice), not a fold of every
    searchable field; a record changed since it was indexed is tested on what it holds
    now."""
    for i in range(4):
        lead(crm, full_name=f"Melis Karadağlı {i}", email=f"melis{i}@kervan.test")
    renamed = lead(crm, full_name="Melis Karadağlı 9", email="melis9@kervan.test")
    statements = []

    def record(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append(statement)

    admin = crm.users.actor(crm.users.by_username("admin"))
    sa.event.listen(crm.db, "before_cursor_execute", record)
    try:
        shown = {e.key: p for e, p in crm.records.search_all("karadağlı", admin)}
    finally:
        sa.event.remove(crm.db, "before_cursor_execute", record)
    karadagli = [r["id"] for r in shown["lead"].rows]
    assert sorted(r["full_name"] for r in shown["lead"].rows) == \
        [f"Melis Karadağlı {i}" for i in (0, 1, 2, 3, 9)]
    pages = [s for s in statements if "lead.id IN" in s]
    assert len(pages) == 1  # the newest candidates all held the text: they are the page
    if crm.db.dialect.name == "postgresql":
        assert "strpos(lead.kv_search" in pages[0] and "translate(lead.full_name" not in pages[0]

    # an address is looked up by its name part: the newest candidates hold another domain,
    # so the page is read among every candidate
    for i in range(8):
        lead(crm, full_name=f"Ortak Ad {i}", email=f"ortak.ad@firma{i}.example")
    statements.clear()
    sa.event.listen(crm.db, "before_cursor_execute", record)
    try:
        shown = {e.key: p for e, p in crm.records.search_all("ortak.ad@firma0.example", admin)}
    finally:
        sa.event.remove(crm.db, "before_cursor_execute", record)
    assert [r["full_name"] for r in shown["lead"].rows] == ["Ortak Ad 0"]
    assert not shown["lead"].next and set(shown) == {"lead"}
    assert len([s for s in statements if "lead.id IN" in s]) == 2

    # the record no longer holds the text between the index's answer and the page's read
    crm.records.update("lead", renamed["id"], {"full_name": "Melis Başka"}, renamed["version"])
    with crm.db.connect() as conn:
        rows = crm.records.list("lead", ListRequest(
            search="karadağlı", size=6, count=False, among=karadagli),
            conn=conn).rows
    assert sorted(r["full_name"] for r in rows) == [f"Melis Karadağlı {i}" for i in range(4)]


def test_the_search_box_takes_more_candidates_from_a_big_table(crm, monkeypatch):
    """In a big table, the search box takes as many candidates as a walk of its list is
    expected to hold a page among (up to CANDIDATES_MOST): text that more records hold
    than a page sorts, but too few for the walk, is sorted from the candidates in hand —
    no walk in vain, no second read of the index — and shows the list's own page."""
    from engine.query import listing
    from engine.records import service

    crm.records.bulk_create("lead", [{"full_name": f"Orta Sıklık {i}", "source": "referral",
                                      "email": f"orta{i}@kervan.test"} for i in range(120)])
    crm.records.bulk_create("lead", [{"full_name": f"Başka Biri {i}", "source": "referral",
                                      "email": f"baska{i}@kervan.test"} for i in range(400)])
    admin = crm.users.actor(crm.users.by_username("admin"))
    expected = crm.records.list("lead", ListRequest(search="orta sıklık", size=1, count=False))
    statements = []

    def record(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append(statement)

    def shown():
        statements.clear()
        sa.event.listen(crm.db, "before_cursor_execute", record)
        try:
            page = dict((e.key, p) for e, p in crm.records.search_all("orta sıklık", admin,
                                                                     size=1))["lead"]
        finally:
            sa.event.remove(crm.db, "before_cursor_execute", record)
        assert ([r["id"] for r in page.rows], bool(page.next)) == \
            ([r["id"] for r in expected.rows], bool(expected.next))
        return [s for s in statements
                if "UNION ALL" not in s and "FROM lead" in s and "max(" not in s]

    # a walk of 8 rows meets only newer leads; the table is big for it: 520 leads × 2 / 8
    # = 130 candidates would be worth taking
    monkeypatch.setattr(listing, "WALK_ROWS", 8)
    monkeypatch.setattr(service, "WALK_ROWS", 8)
    # at most 100, a page of one's sort: 120 hits are too many; walked in vain, then the
    # index asked again
    monkeypatch.setattr(service, "CANDIDATES_MOST", 100)
    first = shown()
    assert len(first) == 2 and "walked" in first[0], first
    # at most 130: the 120 hits are all in hand, sorted, and the newest is the page
    monkeypatch.setattr(service, "CANDIDATES_MOST", 130)
    lead_statements = shown()
    assert len(lead_statements) == 1 and "walked" not in lead_statements[0]
    assert crm.records._candidate_limits(None, [crm.model.entity("lead")], 1) == \
        {"lead": 130}
