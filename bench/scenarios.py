"""What is measured: each screen or API call, its request cases and its floor SQL.

Sample values (search terms, filters, the cursor of page 1,000, records to open) are drawn
from the generated data with a fixed seed, so two runs ask the same questions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlencode

import sqlalchemy as sa

from engine.query.listing import encode_cursor
from engine.runtime import Kervan

from .data import Generator, Owner
from .floor import Floor
from .measure import Case, Scenario
from .probe import RawDatabase

JSON_TARGET_MS, HTML_TARGET_MS = 25.0, 50.0
SAMPLES = 20
RELATED_LIMIT = 10  # engine/web/record_view.py shows ten rows per related list


@dataclass
class Context:
    kervan: Kervan
    raw: RawDatabase
    floor: Floor
    admin_id: int
    rep_id: int
    rep_team_id: int
    token_hash: str
    session_hash: str
    seed: int = 7

    def rng(self, salt: int) -> random.Random:
        return random.Random(self.seed * 1000 + salt)

    def leads(self, column: str, salt: int) -> list:
        """Values of a column from leads picked at random (those that have one)."""
        low, high = self.raw.rows("SELECT min(id), max(id) FROM lead")[0]
        rng = self.rng(salt)
        picked = sorted({rng.randint(low, high) for _ in range(SAMPLES * 5)})
        marks = ", ".join(str(i) for i in picked)
        rows = self.raw.rows(f"SELECT {column} FROM lead WHERE id IN ({marks}) "
                             f"AND {column} IS NOT NULL")
        return [r[0] for r in rows][:SAMPLES]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def scenarios(ctx: Context) -> list[Scenario]:
    return [lead_first_page(ctx), lead_count(ctx, filtered=False), lead_filtered(ctx),
            lead_count(ctx, filtered=True), lead_page_1000(ctx),
            *[lead_search(ctx, kind) for kind in ("phone", "email", "name")],
            *[global_search(ctx, kind) for kind in ("phone", "email", "name")],
            team_first_page(ctx), html_list(ctx), detail(ctx, "account", "opportunities"),
            detail(ctx, "lead", "conversion"), create_lead(ctx)]


# -- lists -----------------------------------------------------------------------------------
LIVE = "archived_at IS NULL"


def _list_case(ctx: Context, args: dict, where: str, params: dict, order: str,
               client: str = "api", size: int = 50) -> Case:
    f = ctx.floor
    return Case("GET", f"/api/v1/lead?{urlencode(args)}" if client != "html" else
                f"/lead/?{urlencode(args)}",
                [(f.page("lead", where, order, size), params), (f.count("lead", where), params)],
                client=client)


def lead_first_page(ctx: Context) -> Scenario:
    order = ctx.floor.order(ctx.kervan.model.entity("lead"))
    return Scenario("first_page", "Leads, first page by creation date (JSON)", "list",
                    [_list_case(ctx, {}, LIVE, {}, order)], tables=("lead",),
                    target_ms=JSON_TARGET_MS, check_scan=True, same_rows=True)


def _filter(ctx: Context) -> tuple[dict, str, dict, str]:
    """Stage + assigned user + a six-month creation range, sorted by name."""
    now = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = now - dt.timedelta(days=540), now - dt.timedelta(days=360)
    args = {"stage": "qualified", "owner": str(ctx.rep_id),
            "created_at__gte": start.isoformat(), "created_at__lt": end.isoformat(),
            "_sort": "full_name"}
    where = (f"{LIVE} AND stage = :stage AND owner = :owner AND created_at >= :start "
             f"AND created_at < :end")
    params = {"stage": "qualified", "owner": ctx.rep_id, "start": ctx.floor.value(start),
              "end": ctx.floor.value(end)}
    return args, where, params, ctx.floor.order(ctx.kervan.model.entity("lead"), "full_name")


def lead_filtered(ctx: Context) -> Scenario:
    args, where, params, order = _filter(ctx)
    return Scenario("filtered", "Leads filtered by stage, owner and date range, sorted by "
                    "name (JSON)", "list", [_list_case(ctx, args, where, params, order)],
                    tables=("lead",), target_ms=JSON_TARGET_MS, check_scan=True,
                    same_rows=True)


def lead_count(ctx: Context, filtered: bool) -> Scenario:
    """The record count shown above a list: the engine's capped count against the floor's."""
    if filtered:
        args, where, params, _order = _filter(ctx)
    else:
        args, where, params = {}, LIVE, {}
    case = Case("GET", f"/api/v1/lead?{urlencode(args)}",
                [(ctx.floor.count("lead", where), params)])
    title = "Record count of the filtered list" if filtered else "Record count of all leads"
    return Scenario("count_filtered" if filtered else "count", title, "count", [case],
                    tables=("lead",))


def lead_page_1000(ctx: Context) -> Scenario:
    """Page 1,000 through the keyset: the cursor of the 50,000th row, built directly."""
    kervan = ctx.kervan
    table = kervan.tables.tables["lead"]
    with kervan.db.connect() as conn:
        row = conn.execute(sa.select(table.c.created_at, table.c.id)
                           .where(table.c.archived_at.is_(None))
                           .order_by(table.c.created_at.desc(), table.c.id.desc())
                           .offset(999 * 50 - 1).limit(1)).first()
    if row is None:
        raise RuntimeError("page 1,000 needs at least 50,000 leads; use --leads 50000 or more")
    cursor = encode_cursor([row.created_at, row.id])
    where = f"{LIVE} AND (created_at, id) < (:created_at, :id)"
    params = {"created_at": ctx.floor.value(row.created_at), "id": row.id}
    order = ctx.floor.order(kervan.model.entity("lead"))
    f = ctx.floor
    case = Case("GET", f"/api/v1/lead?{urlencode({'_next': cursor})}",
                [(f.page("lead", where, order, 50), params), (f.count("lead", LIVE), {})])
    return Scenario("page_1000", "Leads, page 1,000 through the keyset cursor (JSON)", "list",
                    [case], tables=("lead",), target_ms=JSON_TARGET_MS, check_scan=True,
                    same_rows=True)


def _terms(ctx: Context, kind: str) -> list[str]:
    if kind == "phone":  # typed without the country code, with spaces
        return [f"{d[-10:-7]} {d[-7:-4]} {d[-4:]}" for d in ctx.leads("phone__digits", 1)]
    if kind == "email":
        return ctx.leads("email", 2)
    return ctx.leads("full_name", 3)


def lead_search(ctx: Context, kind: str) -> Scenario:
    entity = ctx.kervan.model.entity("lead")
    order = ctx.floor.order(entity)
    cases = []
    for term in _terms(ctx, kind):
        condition, params = ctx.floor.search(entity, term)
        cases.append(_list_case(ctx, {"q": term}, f"{LIVE} AND {condition}", params, order))
    return Scenario(f"search_{kind}", f"Search leads by {kind.replace('email', 'e-mail')} "
                    f"(JSON)", "search", cases, tables=("lead",), target_ms=JSON_TARGET_MS,
                    check_scan=True, same_rows=True)


def global_search(ctx: Context, kind: str) -> Scenario:
    """The search box: every searchable entity, six hits each (/search?_format=json)."""
    model = ctx.kervan.model
    searched = [e for e in model.entities.values() if not e.child_of and e.search_fields]
    cases = []
    for term in _terms(ctx, kind):
        floor = []
        for entity in searched:
            condition, params = ctx.floor.search(entity, term)
            floor.append((ctx.floor.page(entity.table_name, f"{LIVE} AND {condition}",
                                         ctx.floor.order(entity), 6), params))
        cases.append(Case("GET", f"/search?{urlencode({'q': term, '_format': 'json'})}",
                          floor, client="html"))
    return Scenario(f"global_{kind}", f"Global search by {kind.replace('email', 'e-mail')} "
                    f"({len(searched)} entities, JSON)", "search", cases,
                    tables=tuple(e.table_name for e in searched), page_size=6,
                    target_ms=JSON_TARGET_MS, check_scan=True)


def team_first_page(ctx: Context) -> Scenario:
    """A sales rep sees their team's leads: the permission scope joins the filter."""
    where = (f"{LIVE} AND (owner = :user OR created_by = :user OR team = :team)")
    params = {"user": ctx.rep_id, "team": ctx.rep_team_id}
    order = ctx.floor.order(ctx.kervan.model.entity("lead"))
    return Scenario("team_first_page", "Leads of a sales rep's team, first page (JSON)",
                    "list", [_list_case(ctx, {}, where, params, order, client="team")],
                    tables=("lead",), target_ms=JSON_TARGET_MS, check_scan=True,
                    same_rows=True)


def html_list(ctx: Context) -> Scenario:
    """The list screen: the page, its count, owners' names, saved searches, the user."""
    f = ctx.floor
    order = f.order(ctx.kervan.model.entity("lead"))
    floor = [(f.session_user(), {"session_hash": ctx.session_hash}),
             (f.page("lead", LIVE, order, 50), {}), (f.count("lead", LIVE), {}),
             ("SELECT id, full_name, username FROM kv_user", {}),
             ("SELECT * FROM kv_saved_search WHERE user_id = :user AND entity = 'lead' "
              "ORDER BY name", {"user": ctx.admin_id})]
    return Scenario("html_list", "Leads list screen, first page (HTML)", "html",
                    [Case("GET", "/lead/", floor, client="html")],
                    target_ms=HTML_TARGET_MS)


# -- a record --------------------------------------------------------------------------------
def _related(ctx: Context, entity_key: str, tab: str) -> list[tuple[str, str]]:
    """(entity, link field) of every related list on one tab of the entity's detail page."""
    model = ctx.kervan.model
    entity = model.entity(entity_key)
    spec = next(t for t in entity.detail_spec.get("tabs", []) if t["key"] == tab)
    out = []
    for ref in spec.get("related", []):
        other_key, _sep, link_key = ref.partition(".")
        other = model.entities.get(other_key)
        if other is None:
            continue
        link = link_key or next((k for k, f in other.fields.items()
                                 if f.type == "link" and f.target == entity_key), None)
        if link:
            out.append((other_key, link))
    return out


def _titles(ctx: Context, other: str, link: str, page_sql: str) -> list[str]:
    """One query per linked entity for the titles a related list shows (its customer…)."""
    model = ctx.kervan.model
    entity = model.entity(other)
    columns = [k for k in entity.list_spec.get("columns", []) if k != link][:5]
    out = []
    for key in columns:
        fld = entity.fields.get(key)
        if fld is None or fld.type != "link":
            continue
        target = model.entity(fld.target)
        names = target.title_fields() or [next(k for k, f in target.user_fields.items()
                                               if f.type == "string")]
        shown = ", ".join(ctx.floor.q(n) for n in names)
        ids = page_sql.replace("SELECT *", f"SELECT {ctx.floor.q(key)}", 1)
        out.append(f"SELECT id, {shown} FROM {ctx.floor.q(fld.target)} WHERE id IN ({ids})")
    return out


def _records_to_open(ctx: Context, entity_key: str) -> list[int]:
    if entity_key == "account":  # the big customers, with hundreds of related records
        rows = ctx.raw.rows(f"SELECT id FROM account ORDER BY id LIMIT {SAMPLES // 2}")
    else:
        rows = ctx.raw.rows(f"SELECT lead FROM opportunity WHERE lead IS NOT NULL "
                            f"GROUP BY lead ORDER BY count(*) DESC, lead LIMIT {SAMPLES // 2}")
    return [r[0] for r in rows]


def detail(ctx: Context, entity_key: str, tab: str) -> Scenario:
    """A record's page open on a tab of related lists (ten rows and a count each): the
    floor reads what that tab shows, the record's stamps and the favourite star."""
    f = ctx.floor
    model = ctx.kervan.model
    cases = []
    for record_id in _records_to_open(ctx, entity_key):
        floor = [(f.session_user(), {"session_hash": ctx.session_hash}),
                 (f"SELECT * FROM {f.q(entity_key)} WHERE id = :id", {"id": record_id})]
        for other, link in _related(ctx, entity_key, tab):
            where = f"{f.q(link)} = :id AND {LIVE}"
            page = f.page(other, where, f.order(model.entity(other)), RELATED_LIMIT)
            floor += [(page, {"id": record_id}), (f.count(other, where), {"id": record_id})]
            floor += [(sql, {"id": record_id}) for sql in _titles(ctx, other, link, page)]
        floor += [
            ("SELECT record_id FROM kv_favourite WHERE user_id = :user AND entity = :entity "
             "AND record_id = :id", {"user": ctx.admin_id, "entity": entity_key,
                                     "id": record_id}),
            ("SELECT id, full_name, username FROM kv_user", {})]
        cases.append(Case("GET", f"/{entity_key}/{record_id}?tab={tab}", floor,
                          client="html"))
    label = model.entity(entity_key).label["en"].lower()
    return Scenario(f"detail_{entity_key}", f"Detail page of a {label}, {tab} tab (HTML)",
                    "detail", cases)


def create_lead(ctx: Context) -> Scenario:
    """POST a new lead: the floor inserts it, its audit event and first stage, reads it."""
    kervan, f = ctx.kervan, ctx.floor
    entity = kervan.model.entity("lead")
    now = dt.datetime.now(dt.UTC)
    gen = Generator([Owner(ctx.rep_id, ctx.rep_team_id, 1.0)], now - dt.timedelta(days=1),
                    now, seed=ctx.seed)
    cases = []
    for _ in range(200):
        row = gen.lead()
        storage = {"created_at": now, "updated_at": now, "created_by": ctx.admin_id,
                   "updated_by": ctx.admin_id, "version": 1}
        for key, value in row.items():
            fld = entity.fields[key]
            storage.update(fld.field_type.to_storage(fld, fld.field_type.coerce(fld, value)))
        columns = ", ".join(storage)
        marks = ", ".join(f":{c}" for c in storage)
        category = kervan.workflow.category(entity, row["stage"])
        floor = [
            (f.token_user(), {"token_hash": ctx.token_hash}),
            (f"INSERT INTO lead ({columns}) VALUES ({marks}) RETURNING id",
             {k: f.value(v) for k, v in storage.items()}),
            ("INSERT INTO kv_audit (entity, record_id, action, user_id, at, new_value) "
             "VALUES ('lead', :id, 'create', :user, :at, :new)",
             {"user": ctx.admin_id, "at": f.value(now), "new": json.dumps(
                 _jsonable(row), ensure_ascii=False)}),
            ("INSERT INTO kv_stage_history (entity, record_id, field, to_stage, to_category, "
             "user_id, at) VALUES ('lead', :id, 'stage', :stage, :category, :user, :at)",
             {"stage": row["stage"], "category": category, "user": ctx.admin_id,
              "at": f.value(now)}),
            ("SELECT * FROM lead WHERE id = :id", {})]
        cases.append(Case("POST", "/api/v1/lead", floor, json=_jsonable(row)))
    return Scenario("create", "Create a lead (JSON POST)", "create", cases)


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
