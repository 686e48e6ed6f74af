"""Reading generated forms back into field values, and laying forms out from metadata."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from engine.definitions.model import Entity, Field
from engine.i18n.formats import read_date_input, read_number_input

from .context import current_language, kervan

#: Field types a form never edits directly.
NOT_EDITABLE = {"child_table"}
#: Field types typed with the user's decimal and grouping separators.
NUMBER_TYPES = {"integer", "decimal", "percent"}


def form_sections(entity: Entity) -> list[dict]:
    """Sections of the edit form: metadata `form.sections`, else the general tab, else all.

    Fields no section names (added later by a pack or the studio) get a section of their own,
    so a new field is on the form at once.
    """
    sections = entity.form_spec.get("sections")
    tabs = entity.detail_spec.get("tabs") or []
    general = next((t for t in tabs if t.get("sections")), None)
    if sections:
        out = [{"key": s["key"], "label": s.get("label"), "fields": s["fields"],
                "columns": s.get("columns", 2)} for s in sections]
    elif general:
        out = [{"key": f"{general['key']}_{i}", "label": None, "fields": section,
                "columns": 2} for i, section in enumerate(general["sections"])]
    else:
        out = []
    placed = {key for section in out for key in section["fields"]}
    rest = [k for k, f in entity.user_fields.items()
            if k not in placed and f.type not in NOT_EDITABLE]
    if rest:
        out.append({"key": "more", "label": None, "fields": rest, "columns": 2})
    return out


def editable_fields(entity: Entity, hidden: frozenset[str] = frozenset()) -> list[str]:
    keys = []
    for section in form_sections(entity):
        for key in section["fields"]:
            fld = entity.fields.get(key)
            if fld and not fld.system and not fld.read_only and key not in hidden \
                    and fld.type not in NOT_EDITABLE and not entity.series_for(key):
                keys.append(key)
    for key in entity.child_tables:
        if key not in hidden:
            keys.append(key)
    return keys


def _local_datetime(text: str) -> str | dt.datetime:
    """`datetime-local` inputs are in the company time zone."""
    try:
        naive = dt.datetime.fromisoformat(text)
    except ValueError:
        return text  # the field type reports the problem
    if naive.tzinfo is not None:
        return naive
    return naive.replace(tzinfo=ZoneInfo(kervan().settings.timezone))


def read_field(fld: Field, form, name: str):
    """The raw value of one field from a submitted form (the field type coerces it)."""
    if fld.type == "boolean":
        return form.get(name) in ("on", "true", "1")
    if fld.type == "money":
        amount = read_number_input(form.get(name, ""), current_language())
        if not amount:
            return None
        return {"amount": amount, "currency": form.get(f"{name}__currency") or None}
    if fld.type == "tags":
        values = [v for v in form.getlist(name) if v.strip()]
        if len(values) == 1 and "," in values[0]:
            values = [v.strip() for v in values[0].split(",")]
        return values
    value = form.get(name, "")
    if fld.type in ("date", "datetime") and value.strip():
        value = read_date_input(fld.type, value.strip(), current_language())
        if isinstance(value, dt.datetime):  # typed in Jalali, in the company time zone
            return value.replace(tzinfo=ZoneInfo(kervan().settings.timezone))
        if isinstance(value, dt.date):
            return value
    if fld.type == "datetime" and value.strip():
        return _local_datetime(value.strip())
    if fld.type in NUMBER_TYPES:
        return read_number_input(value, current_language())
    return value.strip() if isinstance(value, str) else value


def read_form(entity: Entity, form, hidden: frozenset[str] = frozenset()) -> dict:
    """Values for every editable field that the form rendered."""
    values = {}
    for key in editable_fields(entity, hidden):
        fld = entity.fields[key]
        if fld.type == "child_table":
            values[key] = read_lines(kervan().model.entity(fld.spec["entity"]), form, key,
                                     fld.spec.get("link_field", entity.key))
        elif f"{key}__present" in form:
            values[key] = read_field(fld, form, key)
    if "owner" in form:
        values["owner"] = form.get("owner") or None
    return values


def read_lines(child: Entity, form, prefix: str, link: str) -> list[dict]:
    """Child lines named `<prefix>-<n>-<field>`, in the order they were submitted."""
    indexes = sorted({int(name.split("-")[1]) for name in form
                      if name.startswith(f"{prefix}-") and name.split("-")[1].isdigit()})
    lines = []
    for index in indexes:
        base = f"{prefix}-{index}-"
        if form.get(base + "_delete"):
            continue
        line = {}
        if form.get(base + "id"):
            line["id"] = int(form[base + "id"])
        for key, fld in child.user_fields.items():
            if key == link or fld.read_only or fld.type in NOT_EDITABLE:
                continue
            if base + key + "__present" in form:
                line[key] = read_field(fld, form, base + key)
        if any(v not in (None, "", [], False) for k, v in line.items() if k != "id") or \
                "id" in line:
            lines.append(line)
    return lines
