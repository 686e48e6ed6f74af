"""The three sector packs (sector_packs/) on the real base metadata, SQLite and PostgreSQL.

For each pack: the dry run changes nothing; install maps the records whose stage
disappears; records move through the pack's stages with its guards; uninstall hides the
pack and maps its stages back; reinstall brings every value back; base data is untouched
throughout.  Two packs that reconfigure the same stage field are refused.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil

import pytest
import sqlalchemy as sa

from engine.definitions.resolve import try_resolve
from engine.definitions.yamlsource import load_yaml_file, plain
from engine.packs import PackError
from engine.plugins import field_type_registry, make_plugin_manager
from engine.query import search_index
from engine.query.listing import ListRequest
from engine.records.actor import SYSTEM as SYSTEM_ACTOR
from engine.records.errors import ValidationFailed
from engine.workflow.engine import TransitionRefused

from .conftest import BASE_METADATA, PASSWORD, PROJECT_ROOT

PACKS = PROJECT_ROOT / "sector_packs"
BACKDATED = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)


@pytest.fixture
def kervan(make_kervan, base_crm_template, database_url):
    """The base CRM with the real packs folder (on SQLite, a copy of the migrated template)."""
    if base_crm_template is not None:
        shutil.copyfile(base_crm_template, database_url.removeprefix("sqlite:///"))
    k = make_kervan(BASE_METADATA, packs=PACKS, migrate=base_crm_template is None)
    k.users.create("ops", PASSWORD, ["operations"], full_name="Zeynep Arslan")
    return k


# -- looking at the database ----------------------------------------------------------------
def entity_tables(k) -> dict[str, list[str]]:
    """Each entity table's columns, without PostgreSQL's stored search document (the
    search index's, rebuilt whenever the searchable fields change, like SQLite's FTS
    tables, which the kv_ prefix leaves out)."""
    inspector = sa.inspect(k.db)
    return {t: sorted(c["name"] for c in inspector.get_columns(t)
                      if c["name"] != search_index.DOC_COLUMN)
            for t in sorted(inspector.get_table_names()) if not t.startswith("kv_")}


def dump(k, columns: dict[str, list[str]], skip=("version",)) -> dict:
    """{table: {id: {column: value}}} for the given tables and columns."""
    out = {}
    with k.db.connect() as conn:
        for table, cols in columns.items():
            t = sa.table(table, *(sa.column(c) for c in cols))
            keep = [c for c in cols if c not in skip]
            out[table] = {row["id"]: {c: row[c] for c in keep}
                          for row in conn.execute(sa.select(t)).mappings()}
    return out


def everything(k) -> dict:
    """Every row of every table (the engine's own tables too)."""
    inspector = sa.inspect(k.db)
    out = {}
    with k.db.connect() as conn:
        for table in sorted(inspector.get_table_names()):
            cols = [c["name"] for c in inspector.get_columns(table)]
            t = sa.table(table, *(sa.column(c) for c in cols))
            out[table] = sorted(tuple(str(v) for v in row) for row in conn.execute(sa.select(t)))
    return out


def only(rows: dict, ids: dict[str, set]) -> dict:
    return {t: {i: r for i, r in rows[t].items() if i in ids.get(t, set())} for t in rows}


def differences(before: dict, after: dict) -> set[tuple]:
    return {(t, i, c) for t in before for i, row in before[t].items() for c, v in row.items()
            if after[t].get(i, {}).get(c) != v}


def attach(k, name: str = "scan.pdf") -> int:
    files = k.tables.tables["kv_file"]
    with k.db.begin() as conn:
        return conn.execute(files.insert().values(
            filename=name, content_type="application/pdf", size=4, sha256="0" * 64,
            path=f"files/00/{name}", created_at=dt.datetime.now(dt.UTC))
            .returning(files.c.id)).scalar_one()


def move(k, entity: str, record_id: int, to: str) -> dict:
    return k.workflow.transition(entity, record_id, to, SYSTEM_ACTOR)


def change(k, entity: str, record_id: int, values: dict) -> dict:
    current = k.records.get(entity, record_id)
    return k.records.update(entity, record_id, values, version=current["version"])


def stage(k, entity: str, record_id: int, field: str = "stage") -> str:
    return k.records.get(entity, record_id, with_lines=False)[field]


# -- base data every pack meets ---------------------------------------------------------------
def seed_base(k) -> dict:
    """A small base CRM: records in every opportunity and project stage, quotes, products."""
    def new(entity, values):
        return k.records.create(entity, values, at=BACKDATED)["id"]

    ids = {"account": new("account", {
        "name": "Anadolu Makina A.Ş.", "kind": "company", "sector": "machinery",
        "tax_number": "1234567890", "phone": "+90 212 555 10 10",
        "email": "info@anadolu.example"})}
    ids["contact"] = new("contact", {"first_name": "Hüseyin", "last_name": "Arslan",
                                     "account": ids["account"]})
    ids["product"] = new("product", {"name": "CNC Torna Tezgahı CT-450"})
    ids["steel"] = new("product", {"name": "Paslanmaz Çelik Sac 304 - 2 mm"})
    ids["warehouse"] = new("warehouse", {"name": "İstanbul Merkez Depo"})
    ids["lead"] = new("lead", {"full_name": "Selin Acar", "phone": "0542 897 54 83",
                               "source": "google", "stage": "contacted"})
    for key in ("first_contact", "needs_analysis", "quote_sent", "negotiation", "won"):
        ids[f"opp_{key}"] = new("opportunity", {
            "name": f"Fırsat {key}", "account": ids["account"], "stage": key,
            "amount": {"amount": 125000, "currency": "TRY"}})
    for key in ("planning", "production", "shipment", "installation", "closing"):
        ids[f"prj_{key}"] = new("project", {"name": f"Proje {key}", "account": ids["account"],
                                            "stage": key})
    ids["quote"] = new("quote", {
        "subject": "CNC torna hattı", "account": ids["account"], "status": "sent",
        "lines": [{"description": "CNC Torna Tezgahı CT-450", "product": ids["product"],
                   "quantity": 2, "unit_price": {"amount": 84500, "currency": "TRY"}}]})
    return ids


# -- each pack's own journey ------------------------------------------------------------------
def journey_health_tourism(k, base: dict) -> dict:
    """Lead → pre-assessment → treatment package → doctor evaluation → operation → post-op."""
    clinic = k.records.create("clinic", {"name": "Marmara Medikal Hastanesi", "kind": "hospital",
                                         "city": "İstanbul",
                                         "authorisation_number": "YB-34-2022-0198"})["id"]
    doctor = k.records.create("doctor", {"full_name": "Burak Şahin", "specialty":
                                         "general_surgery", "clinic": clinic,
                                         "languages": ["english", "arabic"]})["id"]
    package = k.records.create("treatment_package", {
        "name": "Tüp mide paketi", "treatment": "bariatric", "clinic": clinic,
        "doctor": doctor, "price": 4200, "includes": ["operation", "hotel"],
        "hotel_nights": 4, "stay_days": 7})["id"]

    # the enquiry converts into an individual customer and a case in pre-assessment
    lead = k.records.create("lead", {"full_name": "Abdullah Al-Otaibi", "phone": "+966 55 421 7730",
                                     "source": "whatsapp", "treatment": "bariatric",
                                     "nationality": "saudi_arabia",
                                     "patient_language": "arabic"})["id"]
    result = k.conversions.convert("lead", lead, SYSTEM_ACTOR)
    case = result.created["opportunity"]
    assert k.records.get("account", result.created["account"])["kind"] == "individual"
    opened = k.records.get("opportunity", case)
    assert (opened["stage"], opened["treatment"], opened["nationality"],
            opened["patient_language"]) == ("pre_assessment", "bariatric", "saudi_arabia",
                                            "arabic")

    with pytest.raises(ValidationFailed, match="treatment_package"):
        move(k, "opportunity", case, "treatment_package")
    change(k, "opportunity", case, {"treatment_package": package, "amount": 4200})
    move(k, "opportunity", case, "treatment_package")
    with pytest.raises(ValidationFailed, match="medical_documents"):
        move(k, "opportunity", case, "doctor_evaluation")
    change(k, "opportunity", case, {"medical_documents": attach(k)})
    move(k, "opportunity", case, "doctor_evaluation")
    change(k, "opportunity", case, {
        "doctor": doctor, "clinic": clinic, "arrival_date": "2026-05-04",
        "departure_date": "2026-05-11", "operation_date": "2026-05-06",
        "flight_in": "SV 263 RUH→IST 13:15", "hotel": "Hilton Kozyatağı", "transfer": "vip"})
    with pytest.raises(TransitionRefused, match="only when Informed consent signed"):
        move(k, "opportunity", case, "operation")
    with pytest.raises(ValidationFailed, match="consent_date"):
        change(k, "opportunity", case, {"consent": True})
    change(k, "opportunity", case, {"consent": True, "consent_date": "2026-05-04"})
    assert move(k, "opportunity", case, "operation")["probability"] == 100
    notes = k.tables.tables["kv_notification"]
    ops = k.users.by_username("ops").id
    with k.db.connect() as conn:
        assert conn.execute(sa.select(notes.c.message).where(
            notes.c.user_id == ops, notes.c.record_id == case)).scalar() == \
            "Operation scheduled: Abdullah Al-Otaibi"
    move(k, "opportunity", case, "post_op")
    tasks = k.records.table(k.model.entity("task"))
    with k.db.connect() as conn:
        assert conn.execute(sa.select(tasks.c.subject).where(tasks.c.opportunity == case)) \
            .scalar().startswith("Post-op check-up call")

    # a second case: its package quote is approved, which sends it to the doctor
    second = k.records.create("opportunity", {
        "name": "Laura Schneider - Rinoplasti", "account": base["account"],
        "stage": "treatment_package", "treatment": "rhinoplasty",
        "treatment_package": package, "medical_documents": attach(k, "photos.pdf")})["id"]
    quote = k.records.create("quote", {
        "subject": "Rinoplasti paketi", "account": base["account"], "opportunity": second,
        "currency": "eur", "lines": [{"description": "Rinoplasti paketi", "quantity": 1,
                                      "unit_price": {"amount": 3300, "currency": "EUR"}}]})["id"]
    move(k, "quote", quote, "sent")
    move(k, "quote", quote, "approved")
    assert stage(k, "opportunity", second) == "doctor_evaluation"
    return {"moved_in_pack": {("opportunity", case): "post_op",
                              ("opportunity", second): "doctor_evaluation"},
            "after_uninstall": {("opportunity", case): "won",
                                ("opportunity", second): "negotiation"},
            "pack_entities": ["clinic", "doctor", "treatment_package"],
            "hidden_field": ("opportunity", case, "treatment")}


def journey_manufacturing(k, base: dict) -> dict:
    """Quote → production order → planning → production → shipment → delivery."""
    quote = k.records.create("quote", {
        "subject": "CNC torna hattı", "account": base["account"],
        "lines": [{"description": "CNC Torna Tezgahı CT-450", "product": base["product"],
                   "quantity": 2, "unit_price": {"amount": 84500, "currency": "TRY"}}]})["id"]
    move(k, "quote", quote, "sent")
    move(k, "quote", quote, "approved")
    orders = k.records.list("production_order", ListRequest()).rows
    assert len(orders) == 1
    order = orders[0]
    assert (order["quote"], order["account"], order["stage"]) == (quote, base["account"], "order")
    assert order["number"] == f"UE-{dt.date.today().year}-0001"
    tasks = k.records.table(k.model.entity("task"))
    with k.db.connect() as conn:
        subject, owner = conn.execute(sa.select(tasks.c.subject, tasks.c.owner).where(
            tasks.c.production_order == order["id"])).one()
    assert subject.startswith("Prepare the bill of materials") and owner == \
        k.users.by_username("ops").id

    po = order["id"]
    project = k.records.create("project", {"name": "Anadolu Makina - CNC torna hattı",
                                           "account": base["account"], "quote": quote,
                                           "stage": "shipment"})["id"]
    change(k, "production_order", po, {"product": base["product"], "quantity": 2,
                                       "project": project})
    with pytest.raises(ValidationFailed, match="lines"):
        move(k, "production_order", po, "planning")
    change(k, "production_order", po, {"lines": [
        {"line_no": 1, "product": base["steel"], "quantity": 850, "unit": "kg",
         "warehouse": base["warehouse"]},
        {"line_no": 2, "product": base["product"], "description": "Kontrol panosu",
         "quantity": 2, "unit": "piece"}]})
    move(k, "production_order", po, "planning")
    change(k, "production_order", po, {"work_center": "cnc_machining",
                                       "planned_start": "2026-03-02",
                                       "planned_end": "2026-03-20", "due_date": "2026-03-27"})
    move(k, "production_order", po, "production")
    change(k, "production_order", po, {"actual_start": "2026-03-03", "actual_end": "2026-03-19",
                                       "quantity_produced": 2, "scrap_quantity": 0})
    with pytest.raises(TransitionRefused, match="only when Quality control passed"):
        move(k, "production_order", po, "shipment")
    change(k, "production_order", po, {"quality_approved": True})
    move(k, "production_order", po, "shipment")
    with pytest.raises(ValidationFailed, match="waybill_number"):
        move(k, "production_order", po, "delivered")
    change(k, "production_order", po, {"shipped_on": "2026-03-21",
                                       "waybill_number": "IRS-2026-004812",
                                       "carrier": "Marmara Lojistik",
                                       "delivered_on": "2026-03-23"})
    move(k, "production_order", po, "delivered")

    # the project gets the Delivery stage this pack adds
    move(k, "project", project, "delivery")
    return {"moved_in_pack": {("project", project): "delivery",
                              ("production_order", po): "delivered"},
            "after_uninstall": {("project", project): "installation"},
            "pack_entities": ["production_order", "production_order_line"],
            "hidden_field": ("task", None, "production_order")}


def journey_agency(k, base: dict) -> dict:
    """Brief → quote → contract → project → revisions → delivery → reporting."""
    brief = k.records.create("brief", {"title": "Marka yenileme",
                                       "objectives": "İhracat için modern bir marka"})["id"]
    assert k.records.get("brief", brief)["number"] == f"BR-{dt.date.today().year}-0001"
    with pytest.raises(ValidationFailed, match="services"):
        move(k, "brief", brief, "quoting")
    change(k, "brief", brief, {"account": base["account"], "services": ["branding"],
                               "deadline": "2026-06-30",
                               "budget": {"amount": 360000, "currency": "TRY"}})
    with pytest.raises(TransitionRefused, match="cannot move from Brief to Contract"):
        move(k, "brief", brief, "contract")
    move(k, "brief", brief, "quoting")
    with pytest.raises(ValidationFailed, match="quote"):
        move(k, "brief", brief, "contract")
    change(k, "brief", brief, {"quote": base["quote"]})
    move(k, "brief", brief, "contract")
    with pytest.raises(ValidationFailed, match="contract_signed_on"):
        move(k, "brief", brief, "project")
    change(k, "brief", brief, {"contract_signed_on": "2026-04-01",
                               "revision_rounds_included": 3})
    move(k, "brief", brief, "project")

    projects = k.records.list("project", _where("brief", brief)).rows
    assert len(projects) == 1
    project = projects[0]["id"]
    opened = k.records.get("project", project)
    assert (opened["stage"], opened["account"], opened["quote"], opened["name"],
            opened["revision_rounds_included"]) == ("planning", base["account"], base["quote"],
                                                    "Marka yenileme", 3)
    assert [line["name"] for line in opened["stages"]] == [
        "Kick-off", "Creative production", "Revisions", "Delivery", "Reporting"]

    move(k, "project", project, "production")
    move(k, "project", project, "revisions")
    revision = k.records.create("revision", {
        "project": project, "round_no": 1, "subject": "Logo renk paleti",
        "requested_by": base["contact"], "feedback": "Lacivert daha koyu olsun."})["id"]
    move(k, "revision", revision, "in_progress")
    with pytest.raises(ValidationFailed, match="sent_on"):
        move(k, "revision", revision, "client_review")
    change(k, "revision", revision, {"sent_on": "2026-04-20", "hours_spent": 6.5})
    move(k, "revision", revision, "client_review")
    change(k, "revision", revision, {"approved_on": "2026-04-22"})
    move(k, "revision", revision, "approved")
    with pytest.raises(ValidationFailed, match="deliverables"):
        move(k, "project", project, "delivery")
    change(k, "project", project, {"deliverables": [
        {"line_no": 1, "name": "Logo", "kind": "logo", "status": "delivered",
         "delivered_on": "2026-04-25"},
        {"line_no": 2, "name": "Marka kılavuzu", "kind": "other", "status": "in_progress"}]})
    move(k, "project", project, "delivery")
    change(k, "project", project, {"report_due": "2026-05-15"})
    move(k, "project", project, "reporting")
    return {"moved_in_pack": {("project", project): "reporting",
                              ("brief", brief): "project", ("revision", revision): "approved"},
            "after_uninstall": {("project", project): "closing"},
            "pack_entities": ["brief", "revision", "project_deliverable"],
            "hidden_field": ("project", project, "report_due")}


def _where(field, value) -> ListRequest:
    return ListRequest(where=[{"field": field, "op": "eq", "value": value}])


JOURNEYS = {"health_tourism": journey_health_tourism, "manufacturing": journey_manufacturing,
            "agency": journey_agency}

#: What each dry run must announce: a stage line, and the base records whose stage the
#: install removes with the stage they are mapped to (the packs' stage_map).
INSTALL = {
    "health_tourism": ("opportunity.stage: removes first_contact, needs_analysis, quote_sent, "
                       "negotiation",
                       {("opportunity", "opp_first_contact"): "pre_assessment",
                        ("opportunity", "opp_needs_analysis"): "pre_assessment",
                        ("opportunity", "opp_quote_sent"): "treatment_package",
                        ("opportunity", "opp_negotiation"): "treatment_package"}),
    "manufacturing": ("project.stage: adds delivery", {}),
    "agency": ("project.stage: removes shipment, installation",
               {("project", "prj_shipment"): "delivery",
                ("project", "prj_installation"): "delivery"}),
}


@pytest.mark.parametrize("name", sorted(JOURNEYS))
def test_pack_dry_run_install_uninstall_reinstall(kervan, name):
    k = kervan
    base = seed_base(k)
    base_columns = entity_tables(k)
    original = dump(k, base_columns)
    base_ids = {t: set(rows) for t, rows in original.items()}
    stage_line, mapped = INSTALL[name]
    expected = {(entity, base[key]): target for (entity, key), target in mapped.items()}

    # the dry run says what will change — tables, columns, stages, each record it moves —
    # and changes nothing
    before = everything(k)
    plan, _model = k.packs.plan_install(name)
    text = "\n".join(plan.lines())
    assert f"install pack {name} 1.0.0" in text
    assert "create table" in text and stage_line in text
    assert {(m.entity, m.record_id): m.new for m in plan.moves} == expected
    for move_ in plan.moves:
        assert f"{move_.entity} #{move_.record_id} “{move_.title}”: {move_.old} → {move_.new}" \
            in text
    assert everything(k) == before
    assert entity_tables(k) == base_columns

    # install: records in removed stages mapped; no other base value touched
    k.packs.install(name)
    assert k.packs.get(name).installed
    after_install = dump(k, base_columns)
    assert differences(original, after_install) == {(e, i, "stage") for e, i in expected}
    for (entity, record_id), target in expected.items():
        assert after_install[entity][record_id]["stage"] == target

    # the sector's own journey through the new stages (guards and actions included)
    journey = JOURNEYS[name](k, base)
    for (entity, record_id), target in journey["moved_in_pack"].items():
        assert stage(k, entity, record_id, "status" if entity == "revision" else "stage") \
            == target
    pack_state = dump(k, entity_tables(k))

    # uninstall: the pack's entities and fields are hidden (their tables and columns kept),
    # its stages mapped back, and the base records exactly as before the pack came
    plan = k.packs.uninstall(name)
    assert not k.packs.get(name).installed
    for entity in journey["pack_entities"]:
        assert entity not in k.model.entities
        assert entity in sa.inspect(k.db).get_table_names()
    entity, record_id, field = journey["hidden_field"]
    assert field not in k.model.entity(entity).fields
    assert field in entity_tables(k)[entity]
    if record_id is not None:
        assert field not in k.records.get(entity, record_id)
    for (entity, record_id), target in journey["after_uninstall"].items():
        assert stage(k, entity, record_id) == target
    assert only(dump(k, base_columns), base_ids) == original
    moved_back = {(m.entity, m.record_id) for m in plan.moves}
    assert moved_back == set(expected) | set(journey["after_uninstall"])

    # reinstall: every value comes back — pack tables, pack columns, stages
    plan = k.packs.install(name)
    assert plan.restores == len(moved_back)
    assert dump(k, entity_tables(k)) == pack_state
    assert only(dump(k, base_columns), base_ids) == after_install


def test_packs_on_one_stage_field_are_refused_and_others_coexist(kervan):
    k = kervan
    seed_base(k)
    k.packs.install("manufacturing")
    message = re.escape("packs agency and manufacturing both reconfigure project.stage; "
                        "uninstall manufacturing first (its data is kept)")
    with pytest.raises(PackError, match=message):
        k.packs.plan_install("agency")
    with pytest.raises(PackError, match=message):
        k.packs.install("agency")
    assert not k.packs.get("agency").installed
    assert "brief" not in sa.inspect(k.db).get_table_names()

    # health tourism reconfigures opportunity stages only: it installs next to manufacturing
    k.packs.install("health_tourism")
    assert {"production_order", "doctor"} <= set(k.model.entities)
    assert "delivery" in k.model.entity("project").fields["stage"].option_keys
    assert "operation" in k.model.entity("opportunity").fields["stage"].option_keys

    # and agency installs once manufacturing is uninstalled
    k.packs.uninstall("manufacturing")
    k.packs.install("agency")
    assert "revisions" in k.model.entity("project").fields["stage"].option_keys


# -- the packs' metadata and demo data, without a database -----------------------------------
def _labels_problems(node, path: str) -> list[str]:
    """Every label, plural and option of a pack speaks English, Turkish and Persian."""
    problems = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}"
            if key in ("label", "plural") and isinstance(value, dict) and \
                    not {"en", "tr", "fa"} <= set(value):
                problems.append(f"{where}: {sorted(value)}")
            if key == "options" and isinstance(value, list):
                problems += [f"{where}.{i}: no label" for i, item in enumerate(value)
                             if not isinstance(item, dict) or "label" not in item]
            problems += _labels_problems(value, where)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            problems += _labels_problems(value, f"{path}.{index}")
    return problems


@pytest.mark.parametrize("name", sorted(JOURNEYS))
def test_pack_metadata_and_demo_data_fit_the_base(name):
    folder = PACKS / name
    registry = field_type_registry(make_plugin_manager([]))
    model, problems = try_resolve([BASE_METADATA, folder], registry)
    assert problems == []

    labels = []
    for path in sorted(folder.rglob("*.yaml")):
        if "demo" not in path.parts:
            labels += _labels_problems(plain(load_yaml_file(path)), str(path.relative_to(folder)))
    assert labels == []

    base_keys, users = set(), set()
    for path in sorted((BASE_METADATA / "demo").glob("*.yaml")):
        data = plain(load_yaml_file(path)) or {}
        users |= {u["username"] for u in data.pop("_users", None) or []}
        base_keys |= {r["_key"] for records in data.values() for r in records or []}
    known = set(base_keys)
    demo_files = sorted((folder / "demo").glob("*.yaml"))
    assert demo_files, f"{name} ships no demo data"
    for path in demo_files:
        for entity_key, records in (plain(load_yaml_file(path)) or {}).items():
            entity = model.entity(entity_key)
            for record in records:
                key = record["_key"]
                assert key not in known, f"{key} is already a demo key"
                assert record.get("_owner", "admin") in users
                for field, value in record.items():
                    if field.startswith("_"):
                        continue
                    assert field in entity.fields, f"{key}: {entity_key} has no {field}"
                    lines = value if entity.fields[field].type == "child_table" else [{}]
                    refs = [value] + [v for line in lines for v in line.values()]
                    for ref in refs:
                        if isinstance(ref, str) and ref.startswith("@"):
                            assert ref[1:] in known, f"{key}: {ref} is not loaded before it"
                known.add(key)
