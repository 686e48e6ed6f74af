"""The list screen's data: one function feeds the HTML page, its CSV export and JSON."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from flask import url_for
from flask_babel import gettext as _
from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from engine.definitions.model import Entity, Field
from engine.query.listing import ListRequest, Page
from engine.query.params import parse_list_args
from engine.records.actor import Actor

from .context import kervan, text_in
from .display import Titles, badge_color, cell_attrs, display, format_date, option_label

PRESETS = ("today", "yesterday", "last_7_days", "last_30_days", "this_month", "last_month",
           "this_year")
PAGE_SIZES = (25, 50, 100, 200)


def preset_range(preset: str, today: dt.date) -> tuple[dt.date, dt.date] | None:
    """[start, end) dates of a named period."""
    if preset == "today":
        return today, today + dt.timedelta(days=1)
    if preset == "yesterday":
        return today - dt.timedelta(days=1), today
    if preset == "last_7_days":
        return today - dt.timedelta(days=6), today + dt.timedelta(days=1)
    if preset == "last_30_days":
        return today - dt.timedelta(days=29), today + dt.timedelta(days=1)
    if preset == "this_month":
        start = today.replace(day=1)
        return start, (start + dt.timedelta(days=32)).replace(day=1)
    if preset == "last_month":
        end = today.replace(day=1)
        return (end - dt.timedelta(days=1)).replace(day=1), end
    if preset == "this_year":
        return today.replace(month=1, day=1), today.replace(year=today.year + 1, month=1, day=1)
    return None


def expand_ui_args(entity: Entity, args: MultiDict, actor: Actor) -> MultiDict:
    """Screen conveniences turned into the shared grammar: date presets and `me`."""
    zone = ZoneInfo(kervan().settings.timezone)
    today = dt.datetime.now(zone).date()
    out = MultiDict()
    for name, value in args.items(multi=True):
        key, _sep, op = name.partition("__")
        fld = entity.fields.get(key)
        if op == "preset":
            span = preset_range(value, today) if fld else None
            if span is None:
                out.add(name, value)  # reported as an unknown operator
                continue
            start, end = span
            if fld.type == "datetime":
                start = dt.datetime.combine(start, dt.time(), zone).isoformat()
                end = dt.datetime.combine(end, dt.time(), zone).isoformat()
            else:
                start, end = start.isoformat(), end.isoformat()
            out.add(f"{key}__gte", start)
            out.add(f"{key}__lt", end)
        elif fld is not None and fld.type == "user" and value == "me":
            out.add(name, str(actor.user_id or 0))
        elif fld is not None and fld.type == "datetime" and op in ("gte", "lte", "lt", "gt") \
                and len(value) == 10:
            day = dt.date.fromisoformat(value) if _is_date(value) else None
            if day is None:
                out.add(name, value)
                continue
            if op in ("lte", "gt"):
                day += dt.timedelta(days=1)
                op = "lt" if op == "lte" else "gte"
            out.add(f"{key}__{op}", dt.datetime.combine(day, dt.time(), zone).isoformat())
        else:
            out.add(name, value)
    return out


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


@dataclass
class Column:
    field: Field
    label: str
    sortable: bool


@dataclass
class Cell:
    """One cell of the list screen: its HTML attributes, its text and, for an option, the
    badge's colour."""

    attrs: Markup
    text: str
    color: str | None = None


@dataclass
class Filter:
    """A filter box on the list screen."""

    field: Field
    label: str
    kind: str  # enum, tags, user, date, boolean, text, link
    value: str = ""
    options: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ListView:
    entity: Entity
    columns: list[Column]
    page: Page
    request: ListRequest
    args: MultiDict
    filters: list[Filter]
    sentence: list[str]
    titles: Titles

    def cell(self, record: dict, key: str) -> str:
        return display(self.entity, key, record, self.titles)

    def table(self) -> list[tuple[dict, str, list[Cell]]]:
        """The page's rows as the list screen shows them — each record, the address of its
        page and its cells — worked out here in one pass rather than by a template call
        per cell (Jinja's calls were most of a 50-row page's rendering time)."""
        columns = [(c.field, cell_attrs(c.field, nowrap=True)) for c in self.columns]
        rows = []
        for record in self.page.rows:
            cells = []
            for fld, attrs in columns:
                color = None
                if fld.type == "enum" and record.get(fld.key):
                    color = badge_color(fld.option(record[fld.key]))
                cells.append(Cell(attrs, self.cell(record, fld.key), color))
            rows.append((record, url_for("ui.detail", entity_key=self.entity.key,
                                         record_id=record["id"]), cells))
        return rows


def list_columns(entity: Entity, hidden: frozenset[str]) -> list[Column]:
    keys = entity.list_spec.get("columns") or [*entity.title_fields(), "created_at"]
    columns = []
    for key in keys:
        fld = entity.fields.get(key)
        if fld is None or key in hidden:
            continue
        columns.append(Column(fld, text_in(fld.label),
                              fld.stored and fld.field_type.sort_column(fld) is not None))
    return columns


def list_filters(entity: Entity, args: MultiDict, hidden: frozenset[str]) -> list[Filter]:
    keys = entity.list_spec.get("filters") or [k for k, f in entity.fields.items()
                                               if f.filterable]
    filters = []
    for key in keys:
        fld = entity.fields.get(key)
        if fld is None or key in hidden:
            continue
        kind = {"enum": "enum", "tags": "tags", "user": "user", "date": "date",
                "datetime": "date", "boolean": "boolean", "link": "link"}.get(fld.type, "text")
        name = key if kind in ("enum", "user", "boolean", "link") else f"{key}__contains"
        if kind == "tags":
            name = key
        current = args.get(name, "")
        options = [(o.key, text_in(o.label)) for o in fld.options] if fld.options else []
        filters.append(Filter(fld, text_in(fld.label), kind, current, options))
    return filters


OP_WORDS = {
    "eq": "is", "ne": "is not", "lt": "before / less than", "lte": "at most",
    "gt": "after / more than", "gte": "from / at least", "in": "is one of",
    "contains": "contains", "startswith": "starts with", "isnull": "is empty",
}


def describe_filters(entity: Entity, request: ListRequest, raw: MultiDict,
                     titles: Titles) -> list[str]:
    """The active filters as readable phrases: "Source is Google", "Created this month"."""
    parts: list[str] = []
    presets = {k.partition("__")[0]: v for k, v in raw.items() if k.endswith("__preset")}
    for key, preset in presets.items():
        fld = entity.fields.get(key)
        if fld is not None:
            parts.append(_("%(field)s: %(period)s", field=text_in(fld.label),
                           period=preset_label(preset)))
    for condition in request.where:
        key, op, value = condition["field"], condition.get("op", "eq"), condition.get("value")
        fld = entity.fields[key]
        if key in presets and op in ("gte", "lt"):
            continue
        if fld.type == "user" and op == "eq" and raw.get(key) == "me":
            parts.append(_("assigned to me") if key == "owner" else
                         _("%(field)s is me", field=text_in(fld.label)))
            continue
        shown = ", ".join(_value_words(fld, v, titles) for v in value) if isinstance(
            value, list) else _value_words(fld, value, titles)
        if op == "isnull":
            phrase = _("%(field)s is empty", field=text_in(fld.label)) if value else \
                _("%(field)s is filled in", field=text_in(fld.label))
        else:
            phrase = _("%(field)s %(op)s %(value)s", field=text_in(fld.label),
                       op=_(OP_WORDS.get(op, op)), value=shown)
        parts.append(phrase)
    if request.search:
        parts.append(_("matching “%(text)s”", text=request.search))
    if request.include_archived:
        parts.append(_("including archived records"))
    return parts


def _value_words(fld: Field, value, titles: Titles) -> str:
    if fld.type == "enum" or (fld.type == "tags" and fld.options):
        return option_label(fld, value)
    if fld.type == "link" and str(value).isdigit():
        return titles.title(fld.target, int(value))
    if fld.type == "user" and str(value).isdigit():
        return titles.user(int(value))
    if fld.type == "date" and _is_date(str(value)):
        return format_date(dt.date.fromisoformat(str(value)))
    return str(value)


def preset_label(preset: str) -> str:
    return {"today": _("today"), "yesterday": _("yesterday"), "last_7_days": _("last 7 days"),
            "last_30_days": _("last 30 days"), "this_month": _("this month"),
            "last_month": _("last month"), "this_year": _("this year")}.get(preset, preset)


def build_list_view(entity: Entity, args: MultiDict, actor: Actor, action: str = "read",
                    size: int | None = None) -> ListView:
    """Everything the list screen shows, through the permission-checked record service."""
    k = kervan()
    hidden = k.permissions.field_access(actor, entity).hidden
    expanded = expand_ui_args(entity, args, actor)
    request = parse_list_args(entity, expanded, default_size=50)
    if size is not None:
        request.size = size
    page = k.records.list(entity.key, request, actor=actor, action=action)
    columns = list_columns(entity, hidden)
    titles = Titles()
    titles.load_rows(entity, page.rows, [c.field.key for c in columns])
    return ListView(entity=entity, columns=columns, page=page, request=request, args=args,
                    filters=list_filters(entity, args, hidden),
                    sentence=describe_filters(entity, request, args, titles), titles=titles)
