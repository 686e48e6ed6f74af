"""How values look on screen, per field type and language; record titles in bulk."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from babel.numbers import format_currency, format_decimal
from flask_babel import gettext as _

from engine.definitions.model import Entity, Field

from .context import current_language, kervan, text_in

DATE_PATTERNS = {"en": "%d %b %Y", "tr": "%d.%m.%Y", "fa": "%Y/%m/%d"}
LOCALES = {"en": "en_US", "tr": "tr_TR", "fa": "fa_IR"}


def local_time(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None:
        return None
    return moment.astimezone(ZoneInfo(kervan().settings.timezone))


def format_number(value, language: str | None = None, places: int | None = None) -> str:
    language = language or current_language()
    if places is not None:
        value = Decimal(value).quantize(Decimal(1).scaleb(-places))
        fmt = "#,##0" + ("." + "0" * places if places else "")
        return format_decimal(value, format=fmt, locale=LOCALES[language])
    return format_decimal(value, locale=LOCALES[language])


def format_money(amount, currency: str, language: str | None = None) -> str:
    language = language or current_language()
    return format_currency(amount, currency, locale=LOCALES[language])


def format_date(value: dt.date | None, language: str | None = None) -> str:
    if value is None:
        return ""
    return value.strftime(DATE_PATTERNS[language or current_language()])


def format_datetime(value: dt.datetime | None, language: str | None = None) -> str:
    if value is None:
        return ""
    local = local_time(value)
    return f"{format_date(local.date(), language)} {local:%H:%M}"


def option_label(field: Field, key: str | None) -> str:
    if key is None:
        return ""
    option = field.option(key)
    return text_in(option.label) if option else key


class Titles:
    """Record titles and user names for a page, fetched in one query per entity."""

    def __init__(self):
        self._titles: dict[tuple[str, int], str] = {}
        self._users: dict[int, str] | None = None

    def load(self, entity_key: str, ids) -> None:
        wanted = {i for i in ids if i is not None and (entity_key, i) not in self._titles}
        if not wanted:
            return
        k = kervan()
        entity = k.model.entities.get(entity_key)
        if entity is None:
            return
        table = k.tables.tables[entity.table_name]
        fields = [f for f in title_fields(entity) if f in table.c]
        with k.db.connect() as conn:
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
        if record_id is None:
            return ""
        if (entity_key, record_id) not in self._titles:
            self.load(entity_key, [record_id])
        return self._titles.get((entity_key, record_id), f"#{record_id}")

    def user(self, user_id: int | None) -> str:
        if user_id is None:
            return ""
        if self._users is None:
            table = kervan().tables.tables["kv_user"]
            with kervan().db.connect() as conn:
                self._users = {r.id: r.full_name or r.username for r in conn.execute(
                    sa.select(table.c.id, table.c.full_name, table.c.username))}
        return self._users.get(user_id, f"#{user_id}")


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
        return format_number(value) + " %"
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
        return team_name(value)
    if kind == "child_table":
        return str(len(value))
    return str(value)


def team_name(team_id: int | None) -> str:
    if team_id is None:
        return ""
    table = kervan().tables.tables["kv_team"]
    with kervan().db.connect() as conn:
        name = conn.execute(sa.select(table.c.name).where(table.c.id == team_id)).scalar()
    return name or f"#{team_id}"
