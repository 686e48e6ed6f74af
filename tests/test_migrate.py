"""`kervan migrate`: additive schema sync that never loses data."""

from __future__ import annotations

import sqlalchemy as sa
from click.testing import CliRunner

from engine.cli import main

LEAD = """
    lead:
      label: {en: Lead, tr: Aday, fa: سرنخ}
      fields:
        name: {type: string, required: true}
        score: {type: string, max_length: 20}
"""


def migrate(cli_env, base, *overlays, args=()):
    result = CliRunner().invoke(main, ["migrate", *args], env=cli_env(base, *overlays))
    assert "Traceback" not in result.output
    assert not result.exception or isinstance(result.exception, SystemExit), result.exception
    return result


def columns(kervan, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(kervan.db).get_columns(table)}


def raw_values(kervan, table: str, column: str) -> list:
    with kervan.db.connect() as conn:
        t = sa.table(table, sa.column("id"), sa.column(column))
        return [r[1] for r in conn.execute(sa.select(t.c.id, t.c[column]).order_by(t.c.id))]


def test_dry_run_prints_the_plan_and_changes_nothing(metadata_dir, cli_env, make_kervan):
    base = metadata_dir({"entities/lead.yaml": LEAD})
    result = migrate(cli_env, base, args=["--dry-run"])
    assert result.exit_code == 0
    assert "create table lead (11 columns)" in result.output
    assert "create table kv_audit" in result.output
    assert "dry run: " in result.output and "nothing was changed" in result.output
    kervan = make_kervan(base, migrate=False)
    assert sa.inspect(kervan.db).get_table_names() == []


def test_add_remove_restore_field_keeps_values_and_relabel_changes_no_schema(
        metadata_dir, cli_env, make_kervan):
    base = metadata_dir({"entities/lead.yaml": LEAD})
    assert migrate(cli_env, base).exit_code == 0
    kervan = make_kervan(base, migrate=False)
    lead = kervan.records.create("lead", {"name": "Ayşe Yılmaz"})

    # add a field through an overlay
    add = metadata_dir({"entities/lead.yaml": """
        lead:
          fields:
            whatsapp: {type: phone, label: {en: WhatsApp number, tr: WhatsApp numarası}}
    """}, name="add_whatsapp")
    plan = migrate(cli_env, base, add, args=["--dry-run"])
    assert "add column whatsapp to lead (string:255)" in plan.output
    assert "add column whatsapp__digits to lead" in plan.output
    assert "whatsapp" not in columns(kervan, "lead")
    assert migrate(cli_env, base, add).exit_code == 0
    with_field = make_kervan(base, add, migrate=False)
    with_field.records.update("lead", lead["id"], {"whatsapp": "+98 912 345 6789"}, version=1)

    # remove it: column and values retained, reported as such
    removed = migrate(cli_env, base)
    assert removed.exit_code == 0
    assert "retain column lead.whatsapp (no longer in metadata" in removed.output
    without = make_kervan(base, migrate=False)
    assert "whatsapp" in columns(without, "lead")
    assert "whatsapp" not in without.records.get("lead", lead["id"])
    without.records.update("lead", lead["id"], {"name": "Ayşe Kaya"}, version=2)

    # restore it: the value comes back
    restored = migrate(cli_env, base, add)
    assert "add column" not in restored.output
    back = make_kervan(base, add, migrate=False)
    record = back.records.get("lead", lead["id"])
    assert (record["name"], record["whatsapp"]) == ("Ayşe Kaya", "+98 912 345 6789")

    # relabel: metadata only, no schema change
    relabel = metadata_dir({"entities/lead.yaml": """
        lead:
          label: {en: Prospect, tr: Potansiyel, fa: مشتری بالقوه}
    """}, name="relabel")
    result = migrate(cli_env, base, add, relabel)
    assert "no schema changes" in result.output
    assert make_kervan(base, add, relabel, migrate=False).model.entity("lead").label["en"] == \
        "Prospect"


def test_narrowing_is_refused_then_archived_with_allow_destructive(
        metadata_dir, cli_env, make_kervan):
    base = metadata_dir({"entities/lead.yaml": LEAD})
    migrate(cli_env, base)
    kervan = make_kervan(base, migrate=False)
    for name, score in [("A", "12"), ("B", "high"), ("C", None), ("D", "7")]:
        kervan.records.create("lead", {"name": name, "score": score})
    narrow = metadata_dir({"entities/lead.yaml": """
        lead:
          fields:
            score: {_replace: true, type: integer}
    """}, name="narrow")
    refused = migrate(cli_env, base, narrow)
    assert refused.exit_code == 1
    assert ("REFUSED: lead.score (changing integer field score: string:20 → integer would "
            "lose 1 of 3 values (e.g. id 2: 'high')") in refused.output
    assert "nothing was changed" in refused.output
    assert raw_values(kervan, "lead", "score") == ["12", "high", None, "7"]

    applied = migrate(cli_env, base, narrow, args=["--allow-destructive"])
    assert applied.exit_code == 0, applied.output
    assert "convert column lead.score" in applied.output
    narrowed = make_kervan(base, narrow, migrate=False)
    assert [r["score"] for r in sorted(narrowed.records.find("lead"), key=lambda r: r["id"])] \
        == [12, None, None, 7]
    with narrowed.db.connect() as conn:
        archive = narrowed.tables.tables["kv_archive"]
        kept = conn.execute(sa.select(archive.c.record_id, archive.c.value)
                            .where(archive.c.column_name == "score")
                            .order_by(archive.c.record_id)).all()
    assert [(r, v) for r, v in kept] == [(1, '"12"'), (2, '"high"'), (4, '"7"')]


def test_widening_keeps_values(metadata_dir, cli_env, make_kervan):
    base = metadata_dir({"entities/lead.yaml": LEAD})
    migrate(cli_env, base)
    make_kervan(base, migrate=False).records.create("lead", {"name": "A", "score": "x" * 20})
    wider = metadata_dir({"entities/lead.yaml": """
        lead:
          fields:
            score: {_replace: true, type: text}
    """}, name="wider")
    result = migrate(cli_env, base, wider)
    assert "widen column lead.score (string:20 → text)" in result.output
    assert result.exit_code == 0
    assert make_kervan(base, wider, migrate=False).records.find("lead")[0]["score"] == "x" * 20


def test_new_unique_rule_with_duplicates_is_refused(metadata_dir, cli_env, make_kervan):
    base = metadata_dir({"entities/lead.yaml": LEAD})
    migrate(cli_env, base)
    kervan = make_kervan(base, migrate=False)
    kervan.records.create("lead", {"name": "Same"})
    kervan.records.create("lead", {"name": "Same"})
    unique = metadata_dir({"entities/lead.yaml": """
        lead:
          fields:
            name: {unique: true}
    """}, name="unique")
    result = migrate(cli_env, base, unique)
    assert result.exit_code == 1
    assert "cannot make name unique: existing records share values ('Same' ×2)" in result.output


def test_removed_entity_keeps_its_table(metadata_dir, cli_env, make_kervan):
    base = metadata_dir({"entities/lead.yaml": LEAD, "entities/visit.yaml": """
        visit:
          label: {en: Visit}
          fields:
            note: {type: text}
    """})
    migrate(cli_env, base)
    make_kervan(base, migrate=False).records.create("visit", {"note": "kept"})
    gone = metadata_dir({"entities/visit.yaml": "visit: {_delete: true}\n"}, name="gone")
    result = migrate(cli_env, base, gone)
    assert "retain table visit" in result.output
    assert raw_values(make_kervan(base, gone, migrate=False), "visit", "note") == ["kept"]


def test_overlay_list_append_and_remove(metadata_dir, make_kervan):
    base = metadata_dir({"entities/lead.yaml": LEAD + "      list: {columns: [name, score]}\n"})
    overlay = metadata_dir({"entities/lead.yaml": """
        lead:
          fields:
            city: {type: string}
          list:
            columns: {_append: [city], _remove: [score]}
    """}, name="columns")
    model = make_kervan(base, overlay).model
    assert model.entity("lead").list_spec["columns"] == ["name", "city"]
