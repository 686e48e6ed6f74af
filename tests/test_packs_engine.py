"""Pack mechanics on a small model: preview, install, stage mapping, uninstall, reinstall."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from engine.packs import PackError

BASE = {
    "entities/deal.yaml": """
        deal:
          label: {en: Deal}
          title: name
          stage_field: stage
          fields:
            name: {type: string, required: true}
            stage:
              type: enum
              default: new
              options:
                - {key: new, category: open}
                - {key: talking, category: open}
                - {key: won, category: won}
                - {key: lost, category: lost}
    """,
}

PACK = {
    "pack.yaml": """
        key: clinic
        label: {en: Clinic, tr: Klinik, fa: کلینیک}
        version: 1.0.0
        requires_engine: ">=0.1"
        stage_map:
          deal: {talking: assessment}
        uninstall_map:
          deal: {assessment: talking, operation: talking}
    """,
    "entities/deal.yaml": """
        deal:
          fields:
            doctor: {type: link, target: doctor}
            nationality: {type: string}
            stage:
              options:
                _remove: [talking]
                _append:
                  - {key: assessment, label: {en: Pre-assessment}, category: open}
                  - {key: operation, label: {en: Operation}, category: open}
        doctor:
          label: {en: Doctor}
          fields:
            name: {type: string, required: true}
    """,
}


@pytest.fixture
def clinic(metadata_dir, make_kervan, tmp_path):
    base = metadata_dir(BASE, name="base")
    packs = tmp_path / "packs"
    metadata_dir(PACK, name="packs/clinic")
    return make_kervan(base, packs=packs)


def stage_of(kervan, record_id):
    table = sa.table("deal", sa.column("id"), sa.column("stage"))
    with kervan.db.connect() as conn:
        return conn.execute(sa.select(table.c.stage).where(table.c.id == record_id)).scalar()


def test_dry_run_lists_changes_and_changes_nothing(clinic):
    deal = clinic.records.create("deal", {"name": "Ayşe", "stage": "talking"})
    plan, _model = clinic.packs.plan_install("clinic")
    text = "\n".join(plan.lines())
    assert "create table doctor" in text
    assert "add column nationality to deal" in text
    assert "deal.stage: adds assessment, operation" in text
    assert "deal.stage: removes talking" in text
    assert f"deal #{deal['id']} “Ayşe”: talking → assessment" in text
    assert "doctor" not in sa.inspect(clinic.db).get_table_names()
    assert stage_of(clinic, deal["id"]) == "talking"


def test_install_uninstall_reinstall_keeps_every_value(clinic):
    talking = clinic.records.create("deal", {"name": "Konuşuluyor", "stage": "talking"})
    won = clinic.records.create("deal", {"name": "Kazanıldı", "stage": "won"})
    clinic.packs.install("clinic")
    assert stage_of(clinic, talking["id"]) == "assessment"
    doctor = clinic.records.create("doctor", {"name": "Dr. Kaya"})
    moved = clinic.records.get("deal", talking["id"])
    clinic.records.update("deal", talking["id"], {"nationality": "DE", "doctor": doctor["id"],
                                                  "stage": "operation"},
                          version=moved["version"])
    with pytest.raises(PackError, match="already installed"):
        clinic.packs.plan_install("clinic")

    plan = clinic.packs.uninstall("clinic")
    assert [m.new for m in plan.moves] == ["talking"]
    assert "doctor" not in clinic.model.entities
    hidden = clinic.records.get("deal", talking["id"])
    assert "nationality" not in hidden and hidden["stage"] == "talking"

    clinic.packs.install("clinic")
    back = clinic.records.get("deal", talking["id"])
    assert (back["stage"], back["nationality"], back["doctor"]) == ("operation", "DE",
                                                                     doctor["id"])
    assert clinic.records.get("deal", won["id"])["stage"] == "won"
    history = clinic.records.history("deal", talking["id"])
    assert [h["new"] for h in history if h["field"] == "stage"][-1] == "operation"


def test_two_packs_on_one_stage_field_are_refused(clinic, metadata_dir):
    rival = {**PACK, "pack.yaml": PACK["pack.yaml"].replace("key: clinic", "key: rival")}
    metadata_dir(rival, name="packs/rival")
    clinic.packs.install("clinic")
    with pytest.raises(PackError, match="both reconfigure deal.stage; uninstall clinic first"):
        clinic.packs.plan_install("rival")
