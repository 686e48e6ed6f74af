"""How values look on screen, per field type and language; record titles in bulk."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import request
from flask_babel import gettext as _
from markupsafe import Markup

from engine.definitions.model import Entity, Field
from engine.i18n import formats
from engine.i18n.messages import translate_problem
from engine.i18n.numerals import localise_digits
from engine.storage.database import reading

from .context import LANGUAGE_NAMES, LANGUAGES, current_language, irr_in_toman, kervan, text_in


def local_time(moment: dt.datetime | None) -> dt.datetime | None:
    """A stored UTC moment in the company time zone (KERVAN_TIMEZONE)."""
    if moment is None:
        return None
    return moment.astimezone(ZoneInfo(kervan().settings.timezone))


def format_number(value, language: str | None = None, places: int | None = None) -> str:
    return formats.format_number(value, language or current_language(), places)


def format_money(amount, currency: str, language: str | None = None) -> str:
    language = language or current_language()
    return formats.format_money(amount, currency, language,
                                toman=language == "fa" and irr_in_toman())


def format_date(value: dt.date | None, language: str | None = None) -> str:
    return formats.format_date(value, language or current_language())


def format_datetime(value: dt.datetime | None, language: str | None = None) -> str:
    """A stored moment as the user reads it, in the company time zone."""
    return formats.format_datetime(local_time(value), language or current_language())


def digits(text, language: str | None = None) -> str:
    """Text (a count, a time, a page size) with the digits of the user's language."""
    return localise_digits(text, language or current_language())


def date_input(value) -> str:
    """The value of a date input: ISO for the browser's picker, Jalali text in Persian."""
    return formats.date_input_value(value, current_language())


def datetime_input(value) -> str:
    """The value of a date-and-time input, in the company time zone."""
    local = local_time(value) if isinstance(value, dt.datetime) and value.tzinfo else value
    return formats.datetime_input_value(local, current_language())


def number_input(value) -> str:
    """A number as a form shows it for editing, with the user's decimal separator."""
    return formats.number_input_value(value, current_language())


def lowercase(text) -> str:
    """Lower case by the rules of the user's language (Turkish I → ı, İ → i)."""
    text = "" if text is None else str(text)
    if current_language() == "tr":
        text = text.replace("I", "ı").replace("İ", "i")
    return text.lower()


def problem(text, entity: Entity | None = None) -> str:
    """A problem the engine reported, in the user's language: a rule's own message from the
    metadata, else a known engine message translated, else the text as it is."""
    if entity is not None and isinstance(text, str):
        for rule in entity.rules:
            if rule.message and text == rule.message.get("en"):
                return text_in(rule.message)
    return translate_problem(text)


#: Values that read left to right even inside Persian text, and values that must not wrap.
LEFT_TO_RIGHT = {"phone", "email", "url"}
NO_WRAP = {"phone", "date", "datetime", "money", "decimal", "integer", "percent"}


#: The colour of an option's badge when its metadata gives none.
NEUTRAL = "#6c757d"


def badge_color(option) -> str:
    """The colour of an option's badge (a stage, a status): its own, or the neutral one."""
    return option.color if option is not None and option.color else NEUTRAL


def cell_attrs(field: Field | None, nowrap: bool = False) -> Markup:
    """HTML attributes for an element showing `field`'s value: phones, e-mails and web
    addresses run left to right (a phone reversed by RTL text is a wrong number), and with
    `nowrap` numbers and dates stay on one line."""
    kind = field.type if field is not None else None
    attrs = ' dir="ltr"' if kind in LEFT_TO_RIGHT else ""
    if nowrap and kind in NO_WRAP:
        attrs += ' class="text-nowrap"'
    return Markup(attrs)


def language_links() -> list[dict]:
    """The switcher: each language with a link to this page in it."""
    links = []
    for code in LANGUAGES:
        args = request.args.copy()
        args["lang"] = code
        links.append({"code": code, "name": LANGUAGE_NAMES[code], "active":
                      code == current_language(),
                      "url": f"{request.path}?{urlencode(list(args.items(multi=True)))}"})
    return links


def calendar_title(view: str, day: dt.date, days: list[dt.date]) -> str:
    """The calendar heading: a month, a week's first and last day, or one day."""
    language = current_language()
    if view == "month":
        return formats.month_title(day, language)
    if view == "week":
        return f"{format_date(days[0])} – {format_date(days[-1])}"
    return f"{formats.weekday_name(day, language)} {format_date(day)}"


def same_month(day: dt.date, other: dt.date) -> bool:
    """Whether two days fall in one month of the user's calendar (Jalali in Persian)."""
    return formats.month_title(day, current_language()) == \
        formats.month_title(other, current_language())


def weekday_name(day: dt.date, short: bool = False) -> str:
    return formats.weekday_name(day, current_language(), short)


def day_label(day: dt.date) -> str:
    return formats.day_label(day, current_language())


TEMPLATE_HELPERS = {
    "fmt_number": format_number, "fmt_money": format_money, "fmt_date": format_date,
    "fmt_datetime": format_datetime, "digits": digits, "date_input": date_input,
    "datetime_input": datetime_input, "language_links": language_links,
    "problem": problem, "calendar_title": calendar_title,
    "weekday_name": weekday_name, "same_month": same_month, "day_label": day_label,
    "irr_in_toman": irr_in_toman,
    "number_input": number_input, "current_language": current_language,
    "lowercase": lowercase, "cell_attrs": cell_attrs, "badge_color": badge_color,
}


def install_template_helpers(app) -> None:
    """Make the language-aware formatting helpers available to every template."""
    if app.jinja_env.globals.get("fmt_number") is not format_number:
        app.jinja_env.globals.update(TEMPLATE_HELPERS)



def option_label(field: Field, key: str | None) -> str:
    if key is None:
        return ""
    option = field.option(key)
    return text_in(option.label) if option else key


class Titles:
    """Record titles, user names and team names for a page, fetched in one query per entity
    (all users and all teams in one query each, when the page first needs one)."""

    def __init__(self):
        self._titles: dict[tuple[str, int], str] = {}
        self._names: dict[str, dict[int, str | None]] = {}  # kv_user and kv_team

    def load(self, entity_key: str, ids) -> None:
        # ids may come from a query string (`?account=5`): only whole numbers are looked up
        ids = {int(i) for i in ids if i is not None and str(i).isdigit()}
        wanted = {i for i in ids if (entity_key, i) not in self._titles}
        if not wanted:
            return
        k = kervan()
        entity = k.model.entities.get(entity_key)
        if entity is None:
            return
        table = k.tables.tables[entity.table_name]
        fields = [f for f in title_fields(entity) if f in table.c]
        with reading(k.db) as conn:
            rows = conn.execute(sa.select(table.c.id, *[table.c[f] for f in fields])
                                .where(table.c.id.in_(sorted(wanted)))).mappings()
            for row in rows:
                self._titles[(entity_key, row["id"])] = compose_title(entity, row)

    def load_rows(self, entity: Entity, rows: list[dict], fields: list[str]) -> None:
        for key in fields:
            fld = entity.fields.get(key)
            if fld is not None and fld.type == "link":
                self.load(fld.target, [r.get(key) for r in rows])

    def title(self, entity_key: str, record_id: int | None) -> str:
        if record_id is None or not str(record_id).isdigit():
            return ""
        record_id = int(record_id)
        if (entity_key, record_id) not in self._titles:
            self.load(entity_key, [record_id])
        return self._titles.get((entity_key, record_id), f"#{record_id}")

    def user(self, user_id: int | None) -> str:
        return self._name("kv_user", user_id, ("full_name", "username"))

    def team(self, team_id: int | None) -> str:
        return self._name("kv_team", team_id, ("name",))

    def _name(self, table_name: str, row_id: int | None, columns: tuple[str, ...]) -> str:
        """A user's or team's name: the first of `columns` that is set. The whole table is
        read once, when the page first needs one of its names."""
        if row_id is None:
            return ""
        names = self._names.get(table_name)
        if names is None:
            table = kervan().tables.tables[table_name]
            with reading(kervan().db) as conn:
                rows = conn.execute(sa.select(table.c.id, *[table.c[c] for c in columns]))
                names = self._names[table_name] = {
                    row[0]: next((value for value in row[1:] if value), None) for row in rows}
        return names.get(row_id) or f"#{row_id}"


def title_fields(entity: Entity) -> list[str]:
    fields = entity.title_fields()
    if fields:
        return fields
    first = next((k for k, f in entity.user_fields.items() if f.type == "string"), None)
    return [first] if first else []


def compose_title(entity: Entity, record) -> str:
    fields = title_fields(entity)
    if entity.title and "{" in entity.title:
        text = entity.title
        for key in fields:
            text = text.replace("{" + key + "}", str(record.get(key) or ""))
        text = " ".join(text.split())
    else:
        text = " ".join(str(record.get(k) or "") for k in fields).strip()
    return text or f"{text_in(entity.label)} #{record.get('id')}"


def display(entity: Entity, key: str, record: dict, titles: Titles) -> str:
    """A field's value as text for the screen."""
    fld = entity.fields.get(key)
    value = record.get(key)
    if fld is None or value is None or value == [] or value == "":
        return ""
    kind = fld.type
    if kind == "enum":
        return option_label(fld, value)
    if kind == "tags":
        return ", ".join(option_label(fld, v) if fld.options else v for v in value)
    if kind == "boolean":
        return _("Yes") if value else _("No")
    if kind == "money":
        return format_money(value["amount"], value["currency"])
    if kind == "percent":
        return formats.format_percent(value, current_language())
    if kind == "decimal":
        return format_number(value)
    if kind == "integer" and key not in ("id", "version"):
        return format_number(value)
    if kind == "date":
        return format_date(value)
    if kind == "datetime":
        return format_datetime(value)
    if kind == "link":
        return titles.title(fld.target, value)
    if kind == "user":
        return titles.user(value)
    if kind == "team":
        return titles.team(value)
    if kind == "child_table":
        return digits(len(value))
    return str(value)

