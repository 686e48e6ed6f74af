"""The scale benchmark, small: a few thousand records through the bulk path, then the number
of queries a screen needs must not grow with what it shows (no N+1), and walking a list page
by page through the keyset cursor must meet every record exactly once, in order.

Timings live in the benchmark (`python -m bench.run`, docs/performance.md), not here.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from bench.data import Generator, Owner
from bench.probe import SqlRecorder, Statement, queries

from .conftest import PASSWORD, module_crm, sign_in

LEADS, ACCOUNTS, OPPORTUNITIES, TASKS = 2000, 60, 300, 300
UNIQUE_EMAIL = "sevgi.yalin.unique@kervan.test"


@pytest.fixture(scope="module")
def scale(tmp_path_factory, pg_database):
    """The base CRM with generated accounts, leads, opportunities and tasks, and two leads
    whose conversion tab lists one and ten opportunities (each of another customer). The
    tests only read, so the module shares it."""
    kervan = module_crm(tmp_path_factory.mktemp("scale"), pg_database)
    users = kervan.users
    admin = users.actor(users.create("admin", PASSWORD, ["admin"], full_name="Ada Admin"))
    owners = [Owner(admin.user_id, None, 1.0)]
    for name, team, weight in (("ayse", "istanbul", 3.0), ("reza", "tehran", 2.0)):
        actor = users.actor(users.create(name, PASSWORD, ["sales"], teams=[team]))
        owners.append(Owner(actor.user_id, actor.team_id, weight))
    now = dt.datetime.now(dt.UTC)
    gen = Generator(owners, now - dt.timedelta(days=3 * 365), now, seed=11)
    bulk = kervan.records.bulk_create
    # small batches: every batch shares one creation moment, so sorts meet many ties
    accounts = bulk("account", [gen.account() for _ in range(ACCOUNTS)], actor=admin)
    leads = bulk("lead", [gen.lead() for _ in range(LEADS)] + [
        {"full_name": "Sevgi Yalın", "email": UNIQUE_EMAIL, "source": "referral"}],
        actor=admin, batch_size=300)
    opportunities = [gen.opportunity(accounts, leads) for _ in range(OPPORTUNITIES)]
    for row in opportunities:
        row.pop("lead", None)
    few, many = leads[0], leads[1]
    opportunities.append({"name": "Tek fırsat", "lead": few, "account": accounts[0]})
    opportunities += [{"name": f"Fırsat {i}", "lead": many, "account": accounts[i]}
                      for i in range(10)]
    opportunity_ids = bulk("opportunity", opportunities, actor=admin)
    bulk("task", [gen.task(accounts, opportunity_ids, leads) for _ in range(TASKS)],
         actor=admin)
    small = bulk("account", [gen.account()], actor=admin)[0]  # nothing links to it
    kervan.scale = {"few": few, "many": many, "big_customer": accounts[0],
                    "small_customer": small}
    yield kervan
    kervan.close()


@pytest.fixture(scope="module")
def recorder(scale):
    return SqlRecorder(scale.db)


@pytest.fixture(scope="module")
def api(scale):
    from engine.app import create_app

    token = scale.users.create_token(scale.users.by_username("admin"))
    client = create_app({"TESTING": True}, kervan=scale).test_client()

    def get(path: str):
        response = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        return response

    return get


@pytest.fixture(scope="module")
def browser(scale):
    from engine.app import create_app

    client = sign_in(create_app({"TESTING": True, "WTF_CSRF_ENABLED": False},
                                kervan=scale).test_client(), "admin")

    def get(path: str):
        response = client.get(path)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        return response

    return get


def captured(recorder: SqlRecorder, get, path: str) -> list[Statement]:
    """The queries of a request: of its second visit (a first one may warm caches)."""
    get(path)
    with recorder.capture() as statements:
        get(path)
    return queries(statements)


def count_queries(recorder: SqlRecorder, get, path: str) -> int:
    return len(captured(recorder, get, path))


#: What every request costs before its own work: the metadata version and the signed-in
#: user with roles and teams (one query, whether from a session or an API token).
REQUEST = 2
#: What every HTML page adds: the notification bell (one query) and the user names.
PAGE_FRAME = REQUEST + 2
#: Queries of the HTML list of 10 or 100 rows: the frame, the page, its capped count, the
#: saved searches and one title query per link target among the columns (the customer).
HTML_LIST = {"lead": PAGE_FRAME + 3, "opportunity": PAGE_FRAME + 4, "task": PAGE_FRAME + 4}


# -- no N+1 ------------------------------------------------------------------------------------
def test_a_list_costs_the_same_queries_for_10_or_100_rows(recorder, api, browser):
    for entity in ("lead", "opportunity", "task"):  # opportunities show their customer
        json_10 = count_queries(recorder, api, f"/api/v1/{entity}?_size=10")
        json_100 = count_queries(recorder, api, f"/api/v1/{entity}?_size=100")
        html_10 = count_queries(recorder, browser, f"/{entity}/?_size=10")
        html_100 = count_queries(recorder, browser, f"/{entity}/?_size=100")
        assert json_10 == json_100 == REQUEST + 2, entity  # the page and its capped count
        assert html_10 == html_100 == HTML_LIST[entity], entity


def test_a_search_costs_the_same_queries_for_one_hit_or_many(recorder, api, browser):
    one = api(f"/api/v1/lead?q={UNIQUE_EMAIL}").get_json()["data"]
    many = api("/api/v1/lead?q=gmail.com&_size=100").get_json()["data"]
    assert len(one) == 1 and len(many) == 100
    assert count_queries(recorder, api, f"/api/v1/lead?q={UNIQUE_EMAIL}") == \
        count_queries(recorder, api, "/api/v1/lead?q=gmail.com&_size=100") <= 8


def test_the_global_search_asks_every_entitys_index_in_one_query(recorder, browser):
    """The search box looks in every searchable entity (more than twenty) with one query to
    their search indexes together, then reads only the entities holding the text."""
    def search(text: str) -> list[str]:
        return [s.sql for s in captured(recorder, browser, f"/search?q={text}&_format=json")]

    nothing = search("no-record-holds-this")
    assert len(nothing) == REQUEST + 1 and nothing[-1].count("UNION ALL") > 20
    one = search(UNIQUE_EMAIL)  # one lead: the candidates, then that lead's page
    assert len(one) == REQUEST + 2 and "UNION ALL" in one[-2] and "FROM lead" in one[-1]
    found = browser(f"/search?q={UNIQUE_EMAIL}&_format=json").get_json()["groups"]
    assert [(g["entity"], len(g["records"])) for g in found] == [("lead", 1)]
    # text in hundreds of leads: each entity holding it is still read in one statement
    common = search("gmail.com")
    groups = browser("/search?q=gmail.com&_format=json").get_json()["groups"]
    assert ("lead", 6) in [(g["entity"], len(g["records"])) for g in groups]
    assert len(common) == REQUEST + 1 + len(groups)


def test_a_detail_page_costs_the_same_queries_for_a_small_or_big_customer(scale, recorder,
                                                                         browser):
    small, big = scale.scale["small_customer"], scale.scale["big_customer"]
    for tab in ("general", "opportunities", "activities"):
        assert count_queries(recorder, browser, f"/account/{small}?tab={tab}") == \
            count_queries(recorder, browser, f"/account/{big}?tab={tab}")


#: The lists the tabs of a customer's page show.
CUSTOMER_LISTS = ("contact", "opportunity", "quote", "order", "project", "invoice", "payment",
                  "task", "meeting", "call", "note", "document", "case")


def _lists_read(statements: list[Statement]) -> set[str]:
    return {t for t in CUSTOMER_LISTS if any(s.reads(t) for s in statements)}


def test_a_detail_page_reads_only_what_its_active_tab_shows(scale, recorder, browser):
    big, many = scale.scale["big_customer"], scale.scale["many"]

    def tab(path: str) -> list[Statement]:
        return captured(recorder, browser, path)

    # the frame, the record, its favourite mark with its number of files (every tab's header
    # shows it) and the recently-viewed mark: no related list, no history, no file list
    general = tab(f"/account/{big}?tab=general")
    assert len(general) == PAGE_FRAME + 3
    assert _lists_read(general) == set()
    assert not any(s.reads("kv_audit") or "kv_file.filename" in s.sql for s in general)
    opportunities = tab(f"/account/{big}?tab=opportunities")
    assert _lists_read(opportunities) == {"opportunity"}
    assert len(opportunities) == len(general) + 2  # its page and its capped count
    activities = tab(f"/account/{big}?tab=activities")
    assert _lists_read(activities) == {"task", "meeting", "call"}
    assert len(activities) == len(general) + 3 * 2
    files = tab(f"/account/{big}?tab=files")
    assert _lists_read(files) == set() and len(files) == len(general) + 1  # the file list

    lead_general = tab(f"/lead/{many}?tab=general")
    assert len(lead_general) == len(general)
    conversion = tab(f"/lead/{many}?tab=conversion")
    assert _lists_read(conversion) == {"opportunity"}
    assert len(conversion) == len(general) + 3  # page, count, the opportunities' customers
    for history in ("history", "stage_history"):
        statements = tab(f"/lead/{many}?tab={history}")
        assert any(s.reads("kv_audit") for s in statements) and _lists_read(statements) == set()
        assert len(statements) == len(general) + 2  # the record read for its trail, the trail


def test_a_related_tab_costs_the_same_queries_for_1_or_10_rows(scale, recorder, browser):
    few, many = scale.scale["few"], scale.scale["many"]
    assert count_queries(recorder, browser, f"/lead/{few}?tab=conversion") == \
        count_queries(recorder, browser, f"/lead/{many}?tab=conversion")


# -- keyset pages ----------------------------------------------------------------------------
SORTS = ["-created_at", "created_at", "full_name", "-full_name", "company", "-estimated_value",
         "stage", "-stage,full_name", "owner", "-updated_at"]


def test_keyset_pages_meet_every_lead_once_in_order(scale, api):
    for sort in SORTS:
        seen, cursor, pages = [], None, 0
        while True:
            path = f"/api/v1/lead?_sort={sort}&_size=97"
            body = api(path + (f"&_next={cursor}" if cursor else "")).get_json()
            seen += [r["id"] for r in body["data"]]
            pages += 1
            cursor = body["next"]
            if not cursor:
                break
            assert pages < 100, f"sorted by {sort}: the cursor never ends"
        assert len(seen) == len(set(seen)), f"sorted by {sort}: a record came twice"
        assert seen == _database_order(scale, sort), \
            f"sorted by {sort}: a record was skipped or out of order"


def _database_order(kervan, sort: str) -> list[int]:
    """Every live lead's id in the order the database itself gives for the sort (NULLs
    last whichever the direction, ties broken by id in the first key's direction)."""
    table = kervan.tables.tables["lead"]
    keys = [k.strip() for k in sort.split(",")]
    order = [(table.c[k.lstrip("-")].desc() if k.startswith("-") else
              table.c[k.lstrip("-")].asc()).nulls_last() for k in keys]
    order.append(table.c.id.desc() if keys[0].startswith("-") else table.c.id.asc())
    with kervan.db.connect() as conn:
        return list(conn.execute(sa.select(table.c.id).where(table.c.archived_at.is_(None))
                                 .order_by(*order)).scalars())


def test_the_benchmark_tells_a_bounded_walk_from_a_whole_table_scan(scale, recorder,
                                                                   monkeypatch):
    """The benchmark fails a page that reads a whole table. A search the index found in
    many records walks at most WALK_ROWS rows of the list inside a subquery (SQLite then
    sorts the few rows the walk kept): not a whole-table scan, though SQLite's plan has a
    sort and the page fewer rows than its LIMIT. A walk that meets too few matches and
    reaches the end of the table is one."""
    from bench.probe import RawDatabase
    from engine.query import listing
    from engine.query.listing import ListRequest

    monkeypatch.setattr(listing, "WALK_ROWS", 100)
    with recorder.capture() as statements:
        page = scale.records.list("lead", ListRequest(search="gmail", size=6, count=False,
                                                      many_hits=True))
    assert len(page.rows) == 6
    (walk,) = [s for s in queries(statements) if "walked" in s.sql]
    raw = RawDatabase(scale.settings.database_url)
    try:
        rows = LEADS + 1
        whole, why = raw.scan(walk.sql, walk.params, "lead", rows, 7, 7, native=True)
        # SQLite's verdict reads the plan; PostgreSQL's counts the rows EXPLAIN ANALYZE
        # read, and on a table this small its planner rightly reads them all and sorts
        assert not whole or raw.dialect == "postgresql", why
        # the same walk over an order no index gives sorts the whole table first
        inner = "ORDER BY lead.created_at DESC, lead.id DESC"
        assert inner in walk.sql
        unsorted = walk.sql.replace(inner, "ORDER BY lead.description, lead.id", 1)
        whole, why = raw.scan(unsorted, walk.params, "lead", rows, 7, 7, native=True)
        assert whole, why
        table = scale.records.table("lead")
        nobody = (sa.select(table).where(table.c.description == "Kimse Yok")
                  .order_by(table.c.created_at.desc(), table.c.id.desc()).limit(7))
        sql = str(nobody.compile(scale.db, compile_kwargs={"literal_binds": True}))
        whole, why = raw.scan(sql, [], "lead", rows, 0, 7, native=True)
        assert whole, why
    finally:
        raw.close()
