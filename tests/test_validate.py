"""`kervan validate`: every problem as `file:line: key: message`, never a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from engine.cli import main

from .conftest import SHOP_METADATA


def run_validate(cli_env, base, *overlays):
    result = CliRunner().invoke(main, ["validate"], env=cli_env(base, *overlays))
    assert not result.exception or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def test_valid_metadata_passes(metadata_dir, cli_env):
    result = run_validate(cli_env, metadata_dir(SHOP_METADATA))
    assert result.exit_code == 0
    assert "metadata is valid: 3 entities" in result.output


LEAD = """
    lead:
      label: {en: Lead}
      fields:
        name: {type: string}
"""

BAD_CASES = [
    ("malformed yaml",
     {"entities/lead.yaml": "lead:\n  label: {en: Lead\n  fields: {}\n"},
     "entities/lead.yaml:3: entities: invalid YAML"),
    ("unknown field type",
     {"entities/lead.yaml": LEAD + "        score: {type: stars}\n"},
     "entities/lead.yaml:5: lead.fields.score.type: unknown field type 'stars'"),
    ("link to a missing entity",
     {"entities/lead.yaml": LEAD + "        account: {type: link, target: account}\n"},
     "entities/lead.yaml:5: lead.fields.account.target: links to entity 'account', "
     "which does not exist"),
    ("condition on an unknown field",
     {"entities/lead.yaml": LEAD + "        wa: {type: phone, required_if: "
                                   "{field: source, value: whatsapp}}\n"},
     "lead.fields.wa.required_if: condition names unknown field 'source' of lead"),
    ("enum default not among options",
     {"entities/lead.yaml": LEAD + "        stage: {type: enum, options: [new, won], "
                                   "default: lost}\n"},
     "lead.fields.stage.default: default 'lost' is not one of the options: new, won"),
    ("unknown property",
     {"entities/lead.yaml": LEAD + "        name2: {type: string, mandatory: true}\n"},
     "entities/lead.yaml:5: lead.fields.name2.mandatory: unknown property 'mandatory'"),
    ("property of another type",
     {"entities/lead.yaml": LEAD + "        city: {type: string, options: [a, b]}\n"},
     "lead.fields.city.options: 'options' does not apply to a string field"),
    ("missing label",
     {"entities/lead.yaml": "lead:\n  fields:\n    name: {type: string}\n"},
     "entities/lead.yaml:1: lead: 'label' is required"),
    ("bad key",
     {"entities/lead.yaml": LEAD + "        Bad-Key: {type: string}\n"},
     "'Bad-Key' is not a valid key"),
    ("series pattern",
     {"entities/lead.yaml": LEAD, "series.yaml": "s: {entity: lead, field: name, "
                                                 "pattern: 'L-{####}'}\n"},
     "series.yaml:1: series.s: a yearly series needs {YYYY}"),
    ("series on a missing entity",
     {"entities/lead.yaml": LEAD, "series.yaml": "s: {entity: nope, field: name, "
                                                 "pattern: 'L-{YYYY}-{####}'}\n"},
     "series.s: entity 'nope' does not exist"),
    ("duplicate yaml key",
     {"entities/lead.yaml": LEAD + "        name: {type: text}\n"},
     "entities/lead.yaml:5: entities: duplicate key 'name'"),
    ("entity defined twice in a layer",
     {"entities/lead.yaml": LEAD, "entities/lead2.yaml": LEAD},
     "entities/lead2.yaml:1: entities.lead: defined twice in one layer"),
    ("unknown kind",
     {"entities/lead.yaml": LEAD, "widgets.yaml": "a: {}\n"},
     "widgets.yaml:1: widgets: unknown metadata kind"),
    ("list column that does not exist",
     {"entities/lead.yaml": LEAD + "      list: {columns: [name, phone]}\n"},
     "lead.list.columns: list column names unknown field 'phone'"),
    ("system field redeclared",
     {"entities/lead.yaml": LEAD + "        owner: {type: user}\n"},
     "lead.fields.owner: 'owner' is a system field"),
    ("field named like a word of every list's address",
     {"entities/lead.yaml": LEAD + "        lang: {type: string}\n"},
     "entities/lead.yaml:5: lead.fields.lang: 'lang' is a word of every list's address"),
    ("field named like the engine's own columns",
     {"entities/lead.yaml": LEAD + "        kv_search: {type: string}\n"},
     "entities/lead.yaml:5: lead.fields.kv_search: 'kv_search': names starting with 'kv_' "
     "are the engine's own columns"),
]


@pytest.mark.parametrize("case, files, expected", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_metadata_is_reported_with_file_line_and_key(metadata_dir, cli_env, case, files,
                                                         expected):
    result = run_validate(cli_env, metadata_dir(files))
    assert result.exit_code == 1
    assert expected in result.output, result.output
    assert "nothing was changed" in result.output


def test_every_problem_is_reported_at_once(metadata_dir, cli_env):
    files = {"entities/lead.yaml": LEAD + "        a: {type: stars}\n"
                                          "        b: {type: link, target: nowhere}\n"}
    result = run_validate(cli_env, metadata_dir(files))
    assert "unknown field type 'stars'" in result.output
    assert "links to entity 'nowhere'" in result.output
    assert "2 problem(s)" in result.output


def test_overlay_problems_name_the_overlay_file(metadata_dir, cli_env):
    base = metadata_dir(SHOP_METADATA)
    overlay = metadata_dir({"entities/customer.yaml": """
        customer:
          fields:
            region: {type: link, target: region}
    """}, name="pack")
    result = run_validate(cli_env, base, overlay)
    assert result.exit_code == 1
    assert "pack/entities/customer.yaml:3: customer.fields.region.target" in result.output
