"""Who may do what, checked at every door, as user stories.

The expected scope of every role × base entity × action is read from metadata/roles/*.yaml
with PyYAML here, not asked of engine.security: if the engine disagrees with its metadata,
these tests fail.  Each scope is then checked at the three doors a user can knock on: the
record service, the screens (a signed-in Flask test client) and the JSON API (a bearer token).

One database is built for the whole module (like tests/test_api_schema.py does): one user per
role, all in team "istanbul", a team-mate (burak, istanbul) and an outsider (reza, tehran),
and for every entity a record owned by each of them.

Then the stories: a sales user never sees another team's records (lists, search, CSV,
calendar, kanban, lookups, dashboard, related tabs, lines, files, the API) nor a field her
role hides (screens, CSV, API, meta, history, print); brute-force sign-in is slowed; a
password reset link works once.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from werkzeug.datastructures import MultiDict

from engine.app import create_app
from engine.query.params import parse_list_args
from engine.records import SYSTEM, DeleteRefused, NotFound, ValidationFailed
from engine.runtime import Kervan
from engine.security.permissions import PermissionDenied
from engine.security.users import MAX_FAILURES

from .conftest import BASE_METADATA, PASSWORD, module_crm, sign_in

# -- what the metadata says, read independently of the engine ----------------------------


def _documents(folder: Path) -> dict:
    merged: dict = {}
    for path in sorted(folder.glob("*.yaml")):
        merged.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return merged


ROLES = _documents(BASE_METADATA / "roles")
ENTITY_SPECS = _documents(BASE_METADATA / "entities")
BASE_ENTITIES = sorted(key for key, spec in ENTITY_SPECS.items() if not spec.get("child_of"))
NEVER_DELETED = {key for key, spec in ENTITY_SPECS.items() if spec.get("delete") == "never"}
CALENDAR = {key: spec["calendar"]["start"] for key, spec in ENTITY_SPECS.items()
            if spec.get("calendar")}
MATRIX_ACTIONS = ("read", "create", "edit", "delete", "export")
ALL_ACTIONS = ("read", "create", "edit", "delete", "export", "import", "print")


def expected_scope(role: str, entity: str, action: str) -> str:
    """The scope the role's YAML grants: an entity's own grant replaces "*" whole, a left-out
    action is none, true is all, false is none, and any create scope but none means all."""
    spec = ROLES[role]
    if spec.get("admin"):
        return "all"
    grants = spec.get("entities") or {}
    grant = grants[entity] if entity in grants else grants.get("*") or {}
    value = grant.get(action, "none")
    if value is True:
        value = "all"
    elif value is False or value is None:
        value = "none"
    if action == "create" and value != "none":
        return "all"
    return value


def field_rules(role: str) -> dict[str, str]:
    return dict(ROLES[role].get("fields") or {})


def reaches(scope: str) -> dict[str, bool]:
    """Which of a user's own record, a team-mate's and another team's record a scope covers."""
    return {"own": scope != "none", "mate": scope in ("team", "all"), "other": scope == "all"}


# -- one database for the module ----------------------------------------------------------

TEAM, OTHER_TEAM = "istanbul", "tehran"
ZONE = ZoneInfo("Europe/Istanbul")  # the company time zone of the test instance
MATE, OUTSIDER = "burak", "reza"
WHO = ("own", "mate", "other")


def role_user(role: str) -> str:
    return f"as_{role}"


@dataclass(repr=False)
class World:
    kervan: Kervan
    app: object
    users: dict = field(default_factory=dict)  # username -> User
    actors: dict = field(default_factory=dict)  # username -> Actor
    tokens: dict = field(default_factory=dict)  # username -> API token
    clients: dict = field(default_factory=dict)  # username -> signed-in test client
    anchors: dict = field(default_factory=dict)  # entity -> id of a record links point to
    records: dict = field(default_factory=dict)  # (entity, username) -> record
    overrides: dict = field(default_factory=dict)  # entity -> values samples cannot guess
    file_id: int = 0
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    # who is who
    def owner_of(self, role: str, who: str) -> str:
        return {"own": role_user(role), "mate": MATE, "other": OUTSIDER}[who]

    def client(self, username: str):
        if username not in self.clients:
            self.clients[username] = sign_in(self.app.test_client(), username)
        return self.clients[username]

    def api(self, username: str, method: str, path: str, json=None):
        """An API call with the user's bearer token only (no session cookie)."""
        if "api" not in self.clients:
            self.clients["api"] = self.app.test_client(use_cookies=False)
        return self.clients["api"].open(
            f"/api/v1{path}", method=method, json=json,
            headers={"Authorization": f"Bearer {self.tokens[username]}"})

    # records
    def marker(self) -> str:
        return f"pm{next(self.counter):05d}x"

    def values(self, entity_key: str, marker: str | None = None) -> dict:
        """Minimal valid values (JSON-friendly) for an entity, with a findable marker."""
        entity = self.kervan.model.entity(entity_key)
        marker = marker or self.marker()
        values = {key: self._sample(fld, marker) for key, fld in entity.user_fields.items()
                  if fld.required and fld.type != "child_table"}
        values.update(self.overrides.get(entity_key, {}))
        if marker_field(entity) is not None:
            values[marker_field(entity)] = marker
        return values

    def _sample(self, fld, marker: str):
        kind = fld.type
        if kind in ("string", "text"):
            return f"{marker} {fld.key}"
        if kind == "enum":
            return fld.default if isinstance(fld.default, str) and not \
                fld.default.startswith("$") else fld.options[0].key
        if kind == "date":
            return dt.date.today().isoformat()
        if kind == "datetime":
            return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        if kind == "link":
            return self.anchors[fld.target]
        if kind == "money":
            return {"amount": "100.00", "currency": fld.spec.get("currency") or "TRY"}
        if kind in ("decimal", "integer", "percent"):
            return "1"
        if kind == "attachment":
            return self.file_id
        raise AssertionError(f"no sample value for required {kind} field {fld.key}")

    def make(self, entity_key: str, owner: str, **extra) -> dict:
        """A record created by the system and owned by a user (and so by their team)."""
        actor = self.actors[owner]
        values = {**self.values(entity_key), **extra, "owner": actor.user_id,
                  "team": actor.team_id}
        return self.kervan.records.create(entity_key, values, actor=SYSTEM)

    def version(self, entity_key: str, record_id: int) -> int:
        return self.kervan.records.get(entity_key, record_id, with_lines=False)["version"]

    def exists(self, entity_key: str, record_id: int) -> bool:
        try:
            self.kervan.records.get(entity_key, record_id, with_lines=False)
        except NotFound:
            return False
        return True


def marker_field(entity) -> str | None:
    """The first plain text column of the list (and so of the CSV), to find a record by."""
    keys = entity.list_spec.get("columns") or entity.title_fields()
    for key in keys:
        fld = entity.fields.get(key)
        if fld is not None and fld.type == "string" and not fld.read_only \
                and not entity.series_for(key):
            return key
    return None


def ident(entity, record: dict) -> str:
    """What the CSV shows of a record: its marker, or its number."""
    key = marker_field(entity) or entity.series[0].field
    return str(record[key])


@pytest.fixture(scope="module")
def world(tmp_path_factory, pg_database):
    kervan = module_crm(tmp_path_factory.mktemp("permission_matrix"), pg_database,
                        timezone=ZONE.key)
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False}, kervan=kervan)
    world = World(kervan=kervan, app=app)
    people = {role_user(role): ([role], TEAM) for role in ROLES}
    people.update({MATE: (["sales"], TEAM), OUTSIDER: (["sales"], OTHER_TEAM)})
    for username, (roles, team) in people.items():
        user = kervan.users.create(username, PASSWORD, roles, teams=[team],
                                   email=f"{username.replace('_', '.')}@example.com")
        world.users[username] = user
        world.actors[username] = kervan.users.actor(user)
        world.tokens[username] = kervan.users.create_token(user)
    world.anchors = {
        "account": kervan.records.create("account", {"name": "Çapa A.Ş.",
                                                     "kind": "individual"})["id"],
        "product": kervan.records.create("product", {"name": "Çapa ürünü"})["id"],
        "warehouse": kervan.records.create("warehouse", {"name": "Çapa deposu"})["id"],
    }
    world.overrides = {  # a rule or a conditional requirement the samples cannot guess
        "account": {"kind": "individual"},
        "lead": {"email": "lead@example.com"},
        "stock_movement": {"type": "in", "to_warehouse": world.anchors["warehouse"]},
        # calendar entries fall in this month's calendar
        **{key: {start: dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
                 if ENTITY_SPECS[key]["fields"][start]["type"] == "datetime"
                 else dt.datetime.now(ZONE).date().isoformat()}
           for key, start in CALENDAR.items()},
    }
    files = kervan.tables.tables["kv_file"]
    with kervan.records.transaction() as conn:
        world.file_id = conn.execute(files.insert().values(
            filename="matrix.txt", content_type="text/plain", size=1, sha256="0" * 64,
            path="files/none", created_at=dt.datetime.now(dt.UTC))
            .returning(files.c.id)).scalar_one()
    for entity_key in BASE_ENTITIES:
        for username in people:
            world.records[(entity_key, username)] = world.make(entity_key, username)
    yield world
    kervan.close()


# -- small helpers ------------------------------------------------------------------------


def attempt(call, entity: str, action: str) -> str:
    """What the record service answered: allowed, denied (naming the permission), or else."""
    try:
        call()
    except PermissionDenied as exc:
        wanted = {"_permission": f"{entity}.{action}"}
        return "denied" if exc.fields == wanted else f"denied naming {exc.fields}"
    except Exception as exc:  # noqa: BLE001 - any other answer is reported as it is
        return f"{type(exc).__name__}: {exc}"
    return "allowed"


def api_answer(response, entity: str, action: str):
    """An API response as allowed status, "denied" (403 naming the permission) or else."""
    if response.status_code == 403:
        fields = (response.get_json() or {}).get("error", {}).get("fields")
        wanted = {"_permission": f"{entity}.{action}"}
        return "denied" if fields == wanted else f"403 naming {fields}"
    return response.status_code


def screen_answer(response, entity: str):
    """A screen response as its status, or "denied": 403 with an access-denied page that
    names the permission missing."""
    if response.status_code != 403:
        return response.status_code
    html = response.get_data(as_text=True)
    if "access denied" in html.lower() and f"{entity}." in html:
        return "denied"
    return "403 without an access-denied page"


def link(entity: str, record_id: int) -> str:
    return f'href="/{entity}/{record_id}"'


class Verdict:
    """Disagreements of one matrix cell, reported together."""

    def __init__(self, role: str, entity: str, action: str, scope: str):
        self.header = f"{role} may {action} {entity} with scope {scope!r} (metadata)"
        self.problems: list[str] = []

    def expect(self, door: str, got, wanted) -> None:
        if got != wanted:
            self.problems.append(f"{door}: got {got!r}, expected {wanted!r}")

    def done(self) -> None:
        if self.problems:
            pytest.fail("\n  ".join([self.header, *self.problems]), pytrace=False)


MATRIX = [(role, entity, action) for role in sorted(ROLES) for entity in BASE_ENTITIES
          for action in MATRIX_ACTIONS]


def test_the_metadata_is_what_the_matrix_expects(world):
    """The matrix covers every role and every base entity of the running model."""
    model = world.kervan.model
    assert sorted(ROLES) == sorted(model.documents["roles"]) == world.kervan.permissions.role_keys()
    assert BASE_ENTITIES == sorted(k for k, e in model.entities.items() if not e.child_of)
    assert len(BASE_ENTITIES) >= 20 and {"admin", "sales", "finance"} <= set(ROLES)


@pytest.mark.parametrize(("role", "entity", "action"), MATRIX,
                         ids=[f"{r}-{e}-{a}" for r, e, a in MATRIX])
def test_permission_matrix(world, role, entity, action):
    """Service, screens and API agree with the role's YAML for one entity and action."""
    scope = expected_scope(role, entity, action)
    verdict = Verdict(role, entity, action, scope)
    CHECKS[action](world, role, entity, scope, verdict)
    verdict.done()


def check_read(world: World, role: str, entity_key: str, scope: str, v: Verdict) -> None:
    user = role_user(role)
    actor = world.actors[user]
    entity = world.kervan.model.entity(entity_key)
    records = {who: world.records[(entity_key, world.owner_of(role, who))] for who in WHO}
    ids = {who: r["id"] for who, r in records.items()}
    reach = reaches(scope)
    id_list = ",".join(str(i) for i in ids.values())
    query = f"id__in={id_list}"
    service = world.kervan.records
    request = parse_list_args(entity, MultiDict({"id__in": id_list}))
    client = world.client(user)

    # the record service
    if scope == "none":
        v.expect("service list", attempt(lambda: service.list(entity_key, request, actor=actor),
                                         entity_key, "read"), "denied")
    else:
        seen = {r["id"] for r in service.list(entity_key, request, actor=actor).rows}
        v.expect("service list", {w for w in WHO if ids[w] in seen},
                 {w for w in WHO if reach[w]})
    for who in WHO:
        got = attempt(lambda w=who: service.get(entity_key, ids[w], actor=actor),
                      entity_key, "read")
        v.expect(f"service get ({who})", got, "allowed" if reach[who] else "denied")

    # the screens
    page = client.get(f"/{entity_key}/?{query}")
    if scope == "none":
        v.expect("list screen", screen_answer(page, entity_key), "denied")
    elif entity.singleton:  # company settings: the list opens the one record
        v.expect("list screen", (page.status_code, bool(re.search(
            rf"/{entity_key}/\d+$", page.headers.get("Location", "")))), (302, True))
    else:
        html = page.get_data(as_text=True)
        v.expect("list screen", (page.status_code, {w for w in WHO if link(entity_key, ids[w])
                                                    in html}),
                 (200, {w for w in WHO if reach[w]}))
    for who in WHO:
        got = screen_answer(client.get(f"/{entity_key}/{ids[who]}"), entity_key)
        v.expect(f"detail screen ({who})", got, 200 if reach[who] else "denied")
    if entity.stage_field:
        board = client.get(f"/{entity_key}/kanban?{query}")
        if scope == "none":
            v.expect("kanban", screen_answer(board, entity_key), "denied")
        else:
            html = board.get_data(as_text=True)
            v.expect("kanban", (board.status_code, {w for w in WHO if link(entity_key, ids[w])
                                                    in html}),
                     (200, {w for w in WHO if reach[w]}))

    # the API
    listed = world.api(user, "GET", f"/{entity_key}?{query}")
    if scope == "none":
        v.expect("API list", api_answer(listed, entity_key, "read"), "denied")
    else:
        seen = {r["id"] for r in (listed.get_json() or {}).get("data", [])}
        v.expect("API list", (listed.status_code, {w for w in WHO if ids[w] in seen}),
                 (200, {w for w in WHO if reach[w]}))
    for who in WHO:
        got = api_answer(world.api(user, "GET", f"/{entity_key}/{ids[who]}"), entity_key,
                         "read")
        v.expect(f"API get ({who})", got, 200 if reach[who] else "denied")


def form_data(entity, values: dict) -> dict:
    """Form fields as the generated form posts them."""
    data = {}
    for key, value in values.items():
        fld = entity.fields[key]
        data[f"{key}__present"] = "1"
        if fld.type == "money":
            data[key], data[f"{key}__currency"] = value["amount"], value["currency"]
        elif fld.type == "datetime":
            data[key] = dt.datetime.fromisoformat(value).astimezone(ZONE).strftime(
                "%Y-%m-%dT%H:%M")
        else:
            data[key] = str(value)
    return data


def check_create(world: World, role: str, entity_key: str, scope: str, v: Verdict) -> None:
    user = role_user(role)
    actor = world.actors[user]
    entity = world.kervan.model.entity(entity_key)
    allowed = scope != "none"
    client = world.client(user)
    created: dict = {}

    def create():
        created.update(world.kervan.records.create(entity_key, world.values(entity_key),
                                                   actor=actor))

    got = attempt(create, entity_key, "create")
    if entity.singleton and allowed and got.split(":")[0] in ("ValidationFailed", "RecordError"):
        got = "allowed"  # a second settings record may be refused, but not as a permission
    v.expect("service create", got, "allowed" if allowed else "denied")
    if created:
        v.expect("service create: the new record is the creator's", created.get("owner"),
                 actor.user_id)

    form = client.get(f"/{entity_key}/new")
    posted = client.post(f"/{entity_key}/new", data=form_data(entity, world.values(entity_key)))
    location = posted.headers.get("Location", "")
    if not allowed:
        v.expect("new form", screen_answer(form, entity_key), "denied")
        v.expect("new form posted", screen_answer(posted, entity_key), "denied")
    elif entity.singleton:  # the one record exists already: the form opens it instead
        v.expect("new form", (form.status_code, form.headers.get("Location")),
                 (302, f"/{entity_key}/"))
        v.expect("new form posted", (posted.status_code, location), (302, f"/{entity_key}/"))
    else:
        v.expect("new form", form.status_code, 200)
        v.expect("new form posted", (posted.status_code,
                                     bool(re.search(rf"/{entity_key}/\d+$", location))),
                 (302, True))

    answer = world.api(user, "POST", f"/{entity_key}", json=world.values(entity_key))
    got = api_answer(answer, entity_key, "create")
    if entity.singleton and allowed and got in (400, 409, 422):
        got = 201  # as above
    v.expect("API create", got, 201 if allowed else "denied")


def check_edit(world: World, role: str, entity_key: str, scope: str, v: Verdict) -> None:
    user = role_user(role)
    actor = world.actors[user]
    reach = reaches(scope)
    client = world.client(user)
    for who in WHO:
        record_id = world.records[(entity_key, world.owner_of(role, who))]["id"]
        wanted = reach[who]

        got = attempt(lambda r=record_id: world.kervan.records.update(
            entity_key, r, {}, version=world.version(entity_key, r), actor=actor),
            entity_key, "edit")
        v.expect(f"service update ({who})", got, "allowed" if wanted else "denied")

        posted = client.post(f"/{entity_key}/{record_id}/edit",
                             data={"version": world.version(entity_key, record_id)})
        v.expect(f"edit form posted ({who})",
                 (screen_answer(posted, entity_key), posted.headers.get("Location")),
                 (302, f"/{entity_key}/{record_id}") if wanted else ("denied", None))

        answer = world.api(user, "PATCH", f"/{entity_key}/{record_id}",
                           json={"version": world.version(entity_key, record_id)})
        v.expect(f"API update ({who})", api_answer(answer, entity_key, "edit"),
                 200 if wanted else "denied")


def check_delete(world: World, role: str, entity_key: str, scope: str, v: Verdict) -> None:
    user = role_user(role)
    actor = world.actors[user]
    client = world.client(user)
    service = world.kervan.records
    if entity_key in NEVER_DELETED and scope != "none":
        # never-delete entities: refused to everyone who may delete, admin included; archive
        # instead.  Those who may not delete at all are told so, like for any other entity.
        record = world.make(entity_key, user)
        got = attempt(lambda: service.delete(entity_key, record["id"], actor=actor),
                      entity_key, "delete")
        v.expect("service delete (never-delete entity)", got.split(":")[0],
                 DeleteRefused.__name__)
        record = world.make(entity_key, user)
        posted = client.post(f"/{entity_key}/{record['id']}/delete")
        v.expect("delete button (never-delete entity)",
                 (posted.status_code, world.exists(entity_key, record["id"])), (302, True))
        record = world.make(entity_key, user)
        answer = world.api(user, "DELETE", f"/{entity_key}/{record['id']}")
        v.expect("API delete (never-delete entity)",
                 (answer.status_code, (answer.get_json() or {}).get("error", {}).get("code")),
                 (409, "delete_refused"))
        return
    reach = reaches(scope)
    spare: dict[str, dict] = {}

    def record_of(who: str) -> dict:
        """A record to delete: one a door refused to delete is tried at the next door."""
        if who not in spare:
            spare[who] = world.make(entity_key, world.owner_of(role, who))
        return spare[who]

    def still_there(who: str) -> bool:
        if world.exists(entity_key, spare[who]["id"]):
            return True
        del spare[who]  # (SQLite may give its id to the next record)
        return False

    for who in WHO:
        record = record_of(who)
        got = attempt(lambda r=record: service.delete(entity_key, r["id"], actor=actor),
                      entity_key, "delete")
        v.expect(f"service delete ({who})", (got, still_there(who)),
                 ("allowed", False) if reach[who] else ("denied", True))
    for who in ("own", "other"):
        posted = client.post(f"/{entity_key}/{record_of(who)['id']}/delete")
        v.expect(f"delete button ({who})", (screen_answer(posted, entity_key), still_there(who)),
                 (302, False) if reach[who] else ("denied", True))
        answer = world.api(user, "DELETE", f"/{entity_key}/{record_of(who)['id']}")
        v.expect(f"API delete ({who})",
                 (api_answer(answer, entity_key, "delete"), still_there(who)),
                 (204, False) if reach[who] else ("denied", True))


def check_export(world: World, role: str, entity_key: str, scope: str, v: Verdict) -> None:
    user = role_user(role)
    actor = world.actors[user]
    entity = world.kervan.model.entity(entity_key)
    records = {who: world.records[(entity_key, world.owner_of(role, who))] for who in WHO}
    ids = ",".join(str(r["id"]) for r in records.values())
    reach = reaches(scope)
    request = parse_list_args(entity, MultiDict({"id__in": ids}))
    listing = lambda: world.kervan.records.list(entity_key, request, actor=actor,  # noqa: E731
                                                action="export")
    if scope == "none":
        v.expect("service export", attempt(listing, entity_key, "export"), "denied")
    else:
        seen = {r["id"] for r in listing().rows}
        v.expect("service export", {w for w in WHO if records[w]["id"] in seen},
                 {w for w in WHO if reach[w]})
    response = world.client(user).get(f"/{entity_key}/export.csv?id__in={ids}")
    if scope == "none":
        v.expect("CSV export", screen_answer(response, entity_key), "denied")
    else:
        rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
        cells = {cell for row in rows[1:] for cell in row}
        v.expect("CSV export", (response.status_code, response.mimetype,
                                {w for w in WHO if ident(entity, records[w]) in cells}),
                 (200, "text/csv", {w for w in WHO if reach[w]}))
    # the API has no export door: its list is a read, checked with "read"


CHECKS = {"read": check_read, "create": check_create, "edit": check_edit,
          "delete": check_delete, "export": check_export}


# -- what each role is told, and what it is not offered -----------------------------------


def owning_entity(entity_key: str) -> str:
    """Lines follow their parent's permissions."""
    while ENTITY_SPECS[entity_key].get("child_of"):
        entity_key = ENTITY_SPECS[entity_key]["child_of"]
    return entity_key


@pytest.mark.parametrize("role", sorted(ROLES))
def test_each_role_is_told_its_permissions_and_shown_only_what_it_may_read(world, role):
    """/api/v1/meta, the navigation and the admin screens follow the role's YAML."""
    user = role_user(role)
    meta = world.api(user, "GET", "/meta").get_json()["entities"]
    for entity_key in sorted(ENTITY_SPECS):
        owner = owning_entity(entity_key)
        if expected_scope(role, owner, "read") == "none":
            assert entity_key not in meta, f"{role} is told about {entity_key}"
            continue
        wanted = {action: expected_scope(role, owner, action) for action in ALL_ACTIONS}
        assert meta[entity_key]["permissions"] == wanted, entity_key
    for target, rule in field_rules(role).items():
        entity_key, key = target.split(".", 1)
        if entity_key not in meta:
            continue
        fields = meta[entity_key]["fields"]
        if rule == "hidden":
            assert key not in fields, f"{role} is told about hidden {target}"
        else:
            assert fields[key]["read_only"] is True, f"{target} is not read-only for {role}"

    home = world.client(user).get("/").get_data(as_text=True)
    shown = {key for key in BASE_ENTITIES if f'href="/{key}/"' in home}
    assert shown == {key for key in BASE_ENTITIES if expected_scope(role, key, "read") != "none"}

    admin_screen = world.client(user).get("/admin/users")
    assert admin_screen.status_code == (200 if ROLES[role].get("admin") else 403)


@pytest.mark.parametrize("role", sorted(ROLES))
def test_the_calendar_shows_what_each_role_may_read(world, role):
    """This month's calendar holds the own, team-mate's and other team's entries the role's
    read scope reaches, and no others."""
    today = dt.datetime.now(ZONE).date().isoformat()
    html = world.client(role_user(role)).get(f"/calendar?view=month&date={today}")
    assert html.status_code == 200
    html = html.get_data(as_text=True)
    for entity_key in sorted(CALENDAR):
        reach = reaches(expected_scope(role, entity_key, "read"))
        shown = {who for who in WHO if link(entity_key, world.records[
            (entity_key, world.owner_of(role, who))]["id"]) in html}
        assert shown == {who for who in WHO if reach[who]}, entity_key


def test_a_user_who_may_not_edit_a_record_is_not_offered_its_edit_form(world):
    """GET /<entity>/<id>/edit answers 403 when the edit scope does not reach the record
    (the detail screen hides the Edit button then; the URL must not open the form)."""
    problems = []
    for role in sorted(ROLES):
        client = world.client(role_user(role))
        for entity_key in BASE_ENTITIES:
            read = reaches(expected_scope(role, entity_key, "read"))
            edit = reaches(expected_scope(role, entity_key, "edit"))
            for who in (w for w in WHO if read[w]):  # unreadable ones: see the matrix
                record_id = world.records[(entity_key, world.owner_of(role, who))]["id"]
                wanted = 200 if edit[who] else 403
                got = client.get(f"/{entity_key}/{record_id}/edit").status_code
                if got != wanted:
                    problems.append(f"{role} GET /{entity_key}/<{who} record>/edit: {got}, "
                                    f"expected {wanted}")
    assert not problems, f"{len(problems)} edit forms disagree:\n" + "\n".join(problems)


FIELD_RULES = [(role, target, rule) for role in sorted(ROLES)
               for target, rule in field_rules(role).items()]


@pytest.mark.parametrize(("role", "target", "rule"), FIELD_RULES,
                         ids=[f"{r}-{t}-{x}" for r, t, x in FIELD_RULES])
def test_field_rules_hold_in_the_service_and_the_api(world, role, target, rule):
    """A hidden field is left out of records, lists, history and filters; a read-only (or
    hidden) field cannot be changed by the role."""
    entity_key, key = target.split(".", 1)
    user = role_user(role)
    actor = world.actors[user]
    entity = world.kervan.model.entity(entity_key)
    record = world.records[(entity_key, user)]
    hidden = rule == "hidden"
    service = world.kervan.records

    assert (key in service.get(entity_key, record["id"], actor=actor)) is not hidden
    page = service.list(entity_key, parse_list_args(entity, MultiDict(
        {"id__in": str(record["id"])})), actor=actor)
    assert page.rows and all((key in row) is not hidden for row in page.rows)
    got = world.api(user, "GET", f"/{entity_key}/{record['id']}").get_json()
    assert (key in got) is not hidden
    listed = world.api(user, "GET", f"/{entity_key}?id={record['id']}").get_json()["data"]
    assert listed and all((key in row) is not hidden for row in listed)
    history = world.api(user, "GET", f"/{entity_key}/{record['id']}/history").get_json()["data"]
    if hidden:
        assert all(entry["field"] != key and key not in (entry["new"] or {})
                   for entry in history)
        assert world.api(user, "GET", f"/{entity_key}?{key}__isnull=false").status_code == 400
        assert world.api(user, "GET", f"/{entity_key}?_sort={key}").status_code == 400

    if expected_scope(role, entity_key, "edit") != "none":
        sample = {"amount": "1.00", "currency": "TRY"} if entity.fields[key].type == "money" \
            else "1"
        with pytest.raises(ValidationFailed) as refused:
            service.update(entity_key, record["id"], {key: sample},
                           version=world.version(entity_key, record["id"]), actor=actor)
        assert refused.value.fields == {key: "you may not change this field"}
        answer = world.api(user, "PATCH", f"/{entity_key}/{record['id']}",
                           json={"version": world.version(entity_key, record["id"]),
                                 key: sample})
        assert answer.status_code == 422 and key in answer.get_json()["error"]["fields"]


# -- a sales user never sees another team's records ---------------------------------------

WORD = "Kervansaray"


@dataclass(repr=False)
class Story:
    ayse: str  # the sales user (team istanbul)
    mine: dict  # entity -> ayse's record
    mate: dict  # entity -> burak's record (istanbul)
    theirs: dict  # entity -> reza's record (tehran)
    reza_contact_on_ayse_account: dict
    reza_line_id: int
    reza_file_id: int
    product: dict


@pytest.fixture(scope="module")
def story(world):
    """Ayşe (sales, istanbul), her team-mate Burak and Reza (sales, tehran), each with a
    lead, an account, an opportunity, a task, a meeting and a call named Kervansaray."""
    ayse = role_user("sales")
    today = dt.datetime.now(ZONE).date().isoformat()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    extra = {"lead": lambda n: {"full_name": f"{WORD} {n}", "email": f"{n}@example.com"},
             "account": lambda n: {"name": f"{WORD} {n} Ltd"},
             "opportunity": lambda n: {"name": f"{WORD} {n} fırsatı"},
             "task": lambda n: {"subject": f"{WORD} {n} görevi", "due_date": today},
             "meeting": lambda n: {"subject": f"{WORD} {n} toplantısı", "start_at": now},
             "call": lambda n: {"subject": f"{WORD} {n} araması", "call_at": now}}
    people = {"mine": ayse, "mate": MATE, "theirs": OUTSIDER}
    made: dict = {who: {} for who in people}
    for who, username in people.items():
        for entity_key, values in extra.items():
            made[who][entity_key] = world.make(entity_key, username, **values(who))
    contact = world.make("contact", OUTSIDER, first_name=f"{WORD} Reza kişisi",
                         account=made["mine"]["account"]["id"])
    quote = world.make("quote", OUTSIDER, lines=[
        {"description": f"{WORD} gizli kalem", "quantity": "1",
         "unit_price": {"amount": "10", "currency": "TRY"}}])
    # Reza attaches a file to a document through the form, as a user does
    reza = world.client(OUTSIDER)
    posted = reza.post("/document/new", content_type="multipart/form-data", data={
        "name__present": "1", "name": f"{WORD} Reza sözleşmesi", "file__present": "1",
        "file__file": (io.BytesIO(b"Reza's contract, for the tehran team only"),
                       "contract.txt")})
    assert posted.status_code == 302, posted.get_data(as_text=True)[:2000]
    document_id = int(posted.headers["Location"].rsplit("/", 1)[1])
    document = world.kervan.records.get("document", document_id)
    product = world.kervan.records.create("product", {
        "name": f"{WORD} pres", "price": {"amount": "1234.00", "currency": "TRY"},
        "cost": {"amount": "987654.32", "currency": "TRY"}})
    product = world.kervan.records.update("product", product["id"], {
        "cost": {"amount": "876543.21", "currency": "TRY"}}, version=product["version"])
    return Story(ayse=ayse, mine=made["mine"], mate=made["mate"], theirs=made["theirs"],
                 reza_contact_on_ayse_account=contact,
                 reza_line_id=quote["lines"][0]["id"], reza_file_id=document["file"],
                 product=product)


def links_in(html: str, records: dict) -> set[str]:
    return {key for key, record in records.items() if link(key, record["id"]) in html}


def test_a_sales_user_never_sees_another_teams_records_on_screen(world, story):
    ayse = world.client(story.ayse)
    everything = set(story.mine)

    for entity_key in story.mine:
        html = ayse.get(f"/{entity_key}/?q={WORD}").get_data(as_text=True)
        assert links_in(html, {entity_key: story.mine[entity_key]}) == {entity_key}
        assert links_in(html, {entity_key: story.mate[entity_key]}) == {entity_key}
        assert links_in(html, {entity_key: story.theirs[entity_key]}) == set(), entity_key

    found = ayse.get(f"/search?q={WORD}").get_data(as_text=True)
    assert links_in(found, story.mine) == everything
    assert links_in(found, story.mate) == everything
    assert links_in(found, story.theirs) == set()
    as_json = ayse.get(f"/search?q={WORD}&_format=json").get_json()
    ids = {(g["entity"], r["id"]) for g in as_json["groups"] for r in g["records"]}
    assert not ids & {(k, r["id"]) for k, r in story.theirs.items()}

    csv_text = ayse.get(f"/lead/export.csv?q={WORD}").get_data(as_text=True)
    assert f"{WORD} mine" in csv_text and f"{WORD} mate" in csv_text
    assert f"{WORD} theirs" not in csv_text

    today = story.mine["meeting"]["start_at"].astimezone(ZONE).date().isoformat()
    month = ayse.get(f"/calendar?view=month&date={today}").get_data(as_text=True)
    events = ("task", "meeting", "call")
    assert links_in(month, {k: story.mine[k] for k in events}) == set(events)
    assert links_in(month, {k: story.theirs[k] for k in events}) == set()
    reza_id = world.users[OUTSIDER].id
    assert links_in(ayse.get(f"/calendar?view=month&date={today}&user={reza_id}")
                    .get_data(as_text=True),
                    {k: story.theirs[k] for k in events}) == set()

    for board in ("lead", "opportunity", "task"):
        html = ayse.get(f"/{board}/kanban?q={WORD}").get_data(as_text=True)
        assert links_in(html, {board: story.mine[board]}) == {board}
        assert links_in(html, {board: story.theirs[board]}) == set(), board

    lookup = ayse.get(f"/account/lookup?q={WORD}").get_json()
    assert story.mine["account"]["id"] in {r["id"] for r in lookup}
    assert story.theirs["account"]["id"] not in {r["id"] for r in lookup}

    home = ayse.get("/").get_data(as_text=True)
    assert links_in(home, story.theirs) == set()

    account = story.mine["account"]["id"]
    first = ayse.get(f"/account/{account}").get_data(as_text=True)
    for tab in sorted(set(re.findall(r'href="\?tab=(\w+)"', first))):
        html = ayse.get(f"/account/{account}?tab={tab}").get_data(as_text=True)
        assert link("contact", story.reza_contact_on_ayse_account["id"]) not in html, tab

    for entity_key, record in story.theirs.items():
        assert ayse.get(f"/{entity_key}/{record['id']}").status_code == 403
        assert ayse.post(f"/{entity_key}/{record['id']}/favourite").status_code == 403
        assert ayse.get(f"/{entity_key}/{record['id']}/edit").status_code == 403


def test_a_sales_user_never_sees_another_teams_records_in_the_api(world, story):
    ayse = story.ayse
    for entity_key in story.mine:
        rows = world.api(ayse, "GET", f"/{entity_key}?q={WORD}").get_json()["data"]
        ids = {r["id"] for r in rows}
        assert story.mine[entity_key]["id"] in ids and story.mate[entity_key]["id"] in ids
        assert story.theirs[entity_key]["id"] not in ids, entity_key
        theirs = story.theirs[entity_key]["id"]
        for path in (f"/{entity_key}/{theirs}", f"/{entity_key}/{theirs}/history"):
            answer = world.api(ayse, "GET", path)
            assert api_answer(answer, entity_key, "read") == "denied", path
        patch = world.api(ayse, "PATCH", f"/{entity_key}/{theirs}", json={"version": 1})
        assert api_answer(patch, entity_key, "edit") == "denied"

    lead = story.theirs["lead"]["id"]
    assert world.api(ayse, "GET", f"/lead/{lead}/stages").status_code == 403
    moved = world.api(ayse, "POST", f"/lead/{lead}/transition", json={"to": "qualified"})
    assert api_answer(moved, "lead", "read") == "denied"
    converted = world.api(ayse, "POST", f"/lead/{lead}/convert", json={})
    assert converted.status_code == 403

    contacts = world.api(ayse, "GET", f"/account/{story.mine['account']['id']}/contact")
    assert story.reza_contact_on_ayse_account["id"] not in {
        r["id"] for r in contacts.get_json()["data"]}
    denied = world.api(ayse, "GET", f"/account/{story.theirs['account']['id']}/contact")
    assert api_answer(denied, "account", "read") == "denied"


def test_another_teams_quote_lines_stay_out_of_reach(world, story):
    """Lines follow their quote: Reza's quote line is neither looked up nor read by Ayşe."""
    ayse = world.client(story.ayse)
    for query in ("", f"?q={WORD}"):
        response = ayse.get(f"/quote_line/lookup{query}")
        found = response.get_json() if response.status_code == 200 else []
        assert response.status_code in (200, 404)  # lines are looked up through quotes
        assert story.reza_line_id not in {r["id"] for r in found}, (query, found)
    with pytest.raises(PermissionDenied):
        world.kervan.records.get("quote_line", story.reza_line_id,
                                 actor=world.actors[story.ayse])


def test_another_teams_attachments_cannot_be_downloaded(world, story):
    """Reza's document file is not Ayşe's to download, nor the warehouse's (no document
    access at all)."""
    def status(username: str) -> int:
        response = world.client(username).get(f"/files/{story.reza_file_id}")
        response.close()
        return response.status_code

    assert status(OUTSIDER) == 200
    for username in (story.ayse, role_user("warehouse")):
        assert status(username) in (403, 404), username


def test_records_that_moved_to_another_team_leave_recent_and_favourites(world):
    """Ayşe viewed and starred a lead that was then handed to Reza's team: her dashboard's
    recent and favourite lists no longer show it."""
    ayse = role_user("sales")
    client = world.client(ayse)
    lead = world.make("lead", ayse, full_name="Devredilen aday Zeytin",
                      email="handed@example.com")
    assert client.get(f"/lead/{lead['id']}").status_code == 200
    assert client.post(f"/lead/{lead['id']}/favourite").status_code == 302
    home = client.get("/").get_data(as_text=True)
    assert link("lead", lead["id"]) in home and "Devredilen aday Zeytin" in home
    reza = world.actors[OUTSIDER]
    world.kervan.records.update("lead", lead["id"], {"owner": reza.user_id,
                                                     "team": reza.team_id},
                                version=lead["version"])
    assert client.get(f"/lead/{lead['id']}").status_code == 403
    home = client.get("/").get_data(as_text=True)
    still = [what for what, shown in (("link", link("lead", lead["id"]) in home),
                                      ("title", "Devredilen aday Zeytin" in home)) if shown]
    assert not still, f"the dashboard still shows Reza's lead: {still}"


def test_a_new_record_does_not_inherit_a_deleted_records_history(world):
    """Reza deletes his lead; the lead Ayşe creates next starts with a history of its own,
    not with Reza's deleted lead's values (record ids are never reused)."""
    ayse, reza = role_user("sales"), OUTSIDER
    theirs = world.kervan.records.create("lead", {
        "full_name": "Reza'nın silinen adayı", "email": "silinen@example.com",
        "source": "referral"}, actor=world.actors[reza])
    world.kervan.records.delete("lead", theirs["id"], actor=world.actors[reza])
    mine = world.kervan.records.create("lead", {
        "full_name": "Ayşe'nin yeni adayı", "email": "yeni@example.com", "source": "referral"},
        actor=world.actors[ayse])
    history = world.api(ayse, "GET", f"/lead/{mine['id']}/history")
    assert history.status_code == 200
    events = [(h["action"], (h["new"] or h["old"] or {}).get("full_name"))
              for h in history.get_json()["data"]]
    assert events == [("create", "Ayşe'nin yeni adayı")], \
        f"lead #{mine['id']} (Reza's deleted lead was #{theirs['id']}) has history {events}"


# -- nor a field her role hides ------------------------------------------------------------

COST = re.compile(r"987[.,\s]?654|876[.,\s]?543")


def test_a_hidden_field_is_nowhere_on_screen(world, story):
    """product.cost is hidden for sales (and warehouse): not on the detail page, its history,
    the list, the CSV, the edit form, nor usable to sort, filter or search."""
    product = story.product["id"]
    for username in (story.ayse, role_user("warehouse")):
        client = world.client(username)
        first = client.get(f"/product/{product}")
        assert first.status_code == 200
        for tab in sorted(set(re.findall(r'href="\?tab=(\w+)"', first.get_data(as_text=True)))):
            html = client.get(f"/product/{product}?tab={tab}").get_data(as_text=True)
            assert not COST.search(html) and "Cost price" not in html, (username, tab)
        listing = client.get(f"/product/?q={WORD}")
        html = listing.get_data(as_text=True)
        assert listing.status_code == 200 and link("product", product) in html
        assert not COST.search(html) and "Cost price" not in html
        for refused in ("_sort=cost", "cost__gt=1", "cost__isnull=false"):
            assert client.get(f"/product/?{refused}").status_code == 302, refused
        found = client.get("/search?q=987654").get_data(as_text=True)
        assert link("product", product) not in found

    assert world.client(story.ayse).get("/product/export.csv").status_code == 403
    depot = world.client(role_user("warehouse"))
    exported = depot.get(f"/product/export.csv?q={WORD}").get_data(as_text=True)
    assert f"{WORD} pres" in exported and not COST.search(exported)
    assert "Cost price" not in exported
    form = depot.get(f"/product/{product}/edit").get_data(as_text=True)
    assert 'name="cost"' not in form and not COST.search(form)
    version = world.version("product", product)
    depot.post(f"/product/{product}/edit", data={"version": version, "cost__present": "1",
                                                 "cost": "1", "cost__currency": "TRY"})
    assert world.kervan.records.get("product", product)["cost"]["amount"] == \
        story.product["cost"]["amount"]


def test_a_hidden_field_is_nowhere_in_the_api_or_the_service(world, story):
    product = story.product["id"]
    ayse = story.ayse
    actor = world.actors[ayse]
    for path in (f"/product/{product}", f"/product?q={WORD}", f"/product/{product}/history",
                 "/meta"):
        answer = world.api(ayse, "GET", path)
        assert answer.status_code == 200 and not COST.search(answer.get_data(as_text=True))
    assert "cost" not in world.api(ayse, "GET", f"/product/{product}").get_json()
    assert "cost" not in world.api(ayse, "GET", "/meta").get_json()["entities"]["product"][
        "fields"]
    for refused in ("_sort=cost", "cost__gt=1"):
        answer = world.api(ayse, "GET", f"/product?{refused}")
        assert answer.status_code == 400 and "cost" in str(answer.get_json()["error"])
    assert "cost" not in world.kervan.records.get("product", product, actor=actor)
    history = world.kervan.records.history("product", product, actor=actor)
    assert [h["action"] for h in history] == ["create"]  # the cost change is left out
    assert "cost" not in history[0]["new"] and history[0]["new"]["name"] == f"{WORD} pres"
    admin_history = world.kervan.records.history("product", product)
    assert [h["field"] for h in admin_history if h["action"] == "update"] == ["cost"]


def pdf_text(data: bytes) -> str:
    """What a printed PDF says (pdftotext from poppler-utils)."""
    import subprocess

    return subprocess.run(["pdftotext", "-", "-"], input=data, capture_output=True,
                          check=True).stdout.decode()


PRINTABLE = sorted(key for key, spec in ENTITY_SPECS.items() if spec.get("print"))


@pytest.mark.parametrize("role", sorted(ROLES))
def test_printing_follows_the_print_scope(world, role):
    user = role_user(role)
    for entity_key in PRINTABLE:
        reach = reaches(expected_scope(role, entity_key, "print"))
        for who in WHO:
            record = world.records[(entity_key, world.owner_of(role, who))]
            got = world.client(user).get(f"/{entity_key}/{record['id']}/print")
            assert (got.status_code, got.mimetype if got.status_code == 200 else None) == \
                ((200, "application/pdf") if reach[who] else (403, None)), (entity_key, who)


def test_a_hidden_field_is_not_printed(world):
    """quote.discount_total is hidden for operations: their printed quote leaves it out."""
    operations = role_user("operations")
    assert field_rules("operations").get("quote.discount_total") == "hidden"
    quote = world.make("quote", operations, lines=[
        {"description": "İndirimli kalem", "quantity": "1", "discount": "10",
         "unit_price": {"amount": "7777", "currency": "TRY"}}])
    assert quote["discount_total"]["amount"] == Decimal("777.70")  # as the system sees it
    seen = world.kervan.records.get("quote", quote["id"], actor=world.actors[operations])
    assert "discount_total" not in seen
    response = world.client(operations).get(f"/quote/{quote['id']}/print")
    assert response.status_code == 200
    text = pdf_text(response.data)
    assert "7.777,00" in text or "7,777.00" in text or "₺7" in text  # the line is printed
    assert not re.search(r"777[.,]70", text), "the discount total is printed"


# -- signing in ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded_app(world):
    """The application with CSRF protection on, as it runs."""
    return create_app({"TESTING": True}, kervan=world.kervan)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def login(client, username: str, password: str):
    token = csrf_of(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": token})


def test_brute_force_sign_in_is_slowed(world, guarded_app):
    """After five wrong passwords even the right one is refused for a while; other
    accounts are not locked out by it."""
    world.kervan.users.create("ferhat", PASSWORD, ["sales"], teams=[TEAM])
    client = guarded_app.test_client()
    for _attempt in range(MAX_FAILURES):
        wrong = login(client, "ferhat", "not-the-password-1")
        assert wrong.status_code == 401
        assert "Wrong username or password" in wrong.get_data(as_text=True)
    refused = login(client, "ferhat", PASSWORD)
    assert refused.status_code == 401
    assert "Too many failed attempts" in refused.get_data(as_text=True)
    assert client.get("/").status_code == 302  # still signed out
    other = guarded_app.test_client()
    assert login(other, role_user("finance"), PASSWORD).status_code == 302


def test_a_password_reset_link_works_once(world, guarded_app):
    user = world.kervan.users.create("zeynep", PASSWORD, ["sales"], teams=[TEAM],
                                     email="zeynep@example.com")
    token = world.kervan.users.create_reset(user)
    client = guarded_app.test_client()
    page = client.get(f"/password/reset/{token}")
    assert page.status_code == 200
    changed = client.post(f"/password/reset/{token}", data={
        "password": "Yeni-Parola-77", "confirm": "Yeni-Parola-77",
        "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert changed.status_code == 302 and changed.headers["Location"].endswith("/login")
    assert login(guarded_app.test_client(), "zeynep", "Yeni-Parola-77").status_code == 302
    assert login(guarded_app.test_client(), "zeynep", PASSWORD).status_code == 401

    again = client.get(f"/password/reset/{token}")
    reused = client.post(f"/password/reset/{token}", data={
        "password": "Baska-Parola-88", "confirm": "Baska-Parola-88",
        "csrf_token": csrf_of(again.get_data(as_text=True))})
    assert reused.status_code == 200
    assert "invalid, used or expired" in reused.get_data(as_text=True)
    assert login(guarded_app.test_client(), "zeynep", "Baska-Parola-88").status_code == 401
    assert login(guarded_app.test_client(), "zeynep", "Yeni-Parola-77").status_code == 302
