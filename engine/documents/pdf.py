"""Printing a document to PDF with WeasyPrint from a Jinja template.

The template is `ui_templates/print/<template>.html`; an admin overrides it by putting a file
of the same name in `<instance>/print/`.  Company settings fill the letterhead; the user's
language picks labels, number formats and the writing direction (Persian: right-to-left,
Persian digits).  Every PDF made is kept on the record's files, named with the version it
was made from.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from pathlib import Path

import jinja2
import sqlalchemy as sa
from babel.numbers import format_currency, format_decimal

from engine.config import PROJECT_ROOT
from engine.records.actor import SYSTEM, Actor
from engine.records.errors import RecordError

from .totals import compute, document_currency

LOCALES = {"en": "en_US", "tr": "tr_TR", "fa": "fa_IR"}
PERSIAN_DIGITS = str.maketrans("0123456789,.", "۰۱۲۳۴۵۶۷۸۹٬٫")


def digits(text: str, language: str) -> str:
    """Persian digits and separators for fa (for numbers; phone and tax numbers too)."""
    return str(text).translate(PERSIAN_DIGITS) if language == "fa" else str(text)


def money(amount, currency: str, language: str) -> str:
    if amount is None:
        return ""
    if language == "fa":  # as Iranian users write it: ۱۲٬۵۰۰٬۰۰۰ ریال
        text = format_decimal(amount, format="#,##0.##", locale="en_US")
        names = {"IRR": "ریال", "TRY": "لیر", "EUR": "یورو", "USD": "دلار"}
        return f"{digits(text, language)} {names.get(currency, currency)}"
    return format_currency(amount, currency, locale=LOCALES[language])


def number(value, language: str) -> str:
    if value is None:
        return ""
    locale = "en_US" if language == "fa" else LOCALES.get(language, "en_US")
    return digits(format_decimal(value, locale=locale), language)


def date(value, language: str) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = value.date()
    if language == "fa":
        try:
            import jdatetime

            return digits(jdatetime.date.fromgregorian(date=value).strftime("%Y/%m/%d"),
                          language)
        except ImportError:
            return digits(value.strftime("%Y/%m/%d"), language)
    return value.strftime("%d.%m.%Y" if language == "tr" else "%d %b %Y")


def _environment(kervan) -> jinja2.Environment:
    folders = [str(kervan.settings.instance / "print"),
               str(PROJECT_ROOT / "ui_templates" / "print")]
    return jinja2.Environment(loader=jinja2.FileSystemLoader(folders),
                              autoescape=jinja2.select_autoescape(["html"]),
                              undefined=jinja2.ChainableUndefined)


def _file_uri(kervan, file_id: int | None) -> str | None:
    """An attachment (logo, signature) as a data URI the PDF can embed."""
    if not file_id:
        return None
    table = kervan.tables.tables["kv_file"]
    with kervan.db.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.id == file_id)).mappings().first()
    if row is None:
        return None
    data = (kervan.settings.instance / row["path"]).read_bytes()
    return f"data:{row['content_type']};base64,{base64.b64encode(data).decode()}"


def company(kervan) -> dict:
    entity = kervan.model.entities.get("company_settings")
    if entity is None:
        return {}
    found = kervan.records.find(entity.key, limit=1)
    return found[0] if found else {}


def print_context(kervan, entity_key: str, record_id: int, actor: Actor, language: str) -> dict:
    from engine.web.display import compose_title

    entity = kervan.model.entity(entity_key)
    spec = entity.print_spec
    if not spec:
        raise RecordError(f"{entity.key} has no print layout")
    kervan.permissions.require(actor, entity, "print")
    record = kervan.records.get(entity.key, record_id, actor=actor)
    customer_entity = None
    customer = {}
    hidden = kervan.permissions.field_access(actor, entity).hidden
    if spec.get("customer") and record.get(spec["customer"]):
        customer_entity = kervan.model.entity(entity.fields[spec["customer"]].target)
        try:
            customer = kervan.records.get(customer_entity.key, record[spec["customer"]],
                                          actor=actor, with_lines=False)
        except RecordError:  # printed with its name only when the user may not read it
            customer = {"id": record[spec["customer"]]}
    totals, lines, line_entity = None, [], None
    if entity.totals_spec:
        tspec = entity.totals_spec
        lines = record.get(tspec["lines"]) or []
        line_entity = kervan.model.entity(entity.fields[tspec["lines"]].spec["entity"])
        currency = document_currency(record, tspec) or kervan.settings.currencies[0]
        totals = compute(lines, tspec, record.get(tspec.get("document_discount")), currency)
    settings = company(kervan)

    def label(obj, key):
        fld = obj.fields.get(key) if obj else None
        if fld is None:
            return key
        return fld.label.get(language) or fld.label["en"]

    def text(value):
        if isinstance(value, dict):
            return value.get(language) or value.get("en") or ""
        return value or ""

    def option(obj, key, value):
        fld = obj.fields.get(key)
        opt = fld.option(value) if fld and value else None
        return text(opt.label) if opt else (value or "")

    owner = kervan.users.get(record["owner"]) if record.get("owner") else None
    return {
        "shown": lambda part: (entity.totals_spec or {}).get(part) not in hidden,
        "lang": language, "rtl": language == "fa", "entity": entity, "record": record,
        "spec": spec, "title": text(spec.get("title")) or text(entity.label),
        "customer": customer, "customer_entity": customer_entity,
        "customer_title": compose_title(customer_entity, customer) if customer else "",
        "lines": lines, "line_entity": line_entity, "totals": totals,
        "company": settings, "logo": _file_uri(kervan, settings.get("logo")),
        "signature": _file_uri(kervan, settings.get("signature")),
        "salesperson": owner.display_name if owner else "",
        "label": label, "text": text, "option": option,
        "money": lambda amount, currency=None: money(
            amount, currency or (totals.currency if totals else "TRY"), language),
        "number": lambda value: number(value, language),
        "date": lambda value: date(value, language), "digits": lambda v: digits(v, language),
        "printed_at": date(dt.date.today(), language),
    }


def render_pdf(kervan, entity_key: str, record_id: int, actor: Actor = SYSTEM,
               language: str = "en", store: bool = True) -> tuple[bytes, str]:
    """The PDF bytes and file name; the PDF is also kept on the record's files."""
    from weasyprint import HTML

    context = print_context(kervan, entity_key, record_id, actor, language)
    template_name = context["spec"].get("template", "document")
    template = _environment(kervan).get_template(f"{template_name}.html")
    html = template.render(**context)
    pdf = HTML(string=html, base_url=str(PROJECT_ROOT)).write_pdf()
    record = context["record"]
    number_field = context["spec"].get("number")
    stem = (record.get(number_field) if number_field else None) or f"{entity_key}-{record_id}"
    name = f"{stem}-v{record['version']}.pdf"
    if store:
        _store(kervan, entity_key, record_id, name, pdf, actor)
    return pdf, name


def _store(kervan, entity_key: str, record_id: int, name: str, data: bytes, actor: Actor) -> None:
    digest = hashlib.sha256(data).hexdigest()
    folder: Path = kervan.settings.instance / "files" / digest[:2]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / digest
    if not path.exists():
        path.write_bytes(data)
    table = kervan.tables.tables["kv_file"]
    with kervan.records.transaction() as conn:
        conn.execute(table.delete().where(table.c.entity == entity_key,
                                          table.c.record_id == record_id,
                                          table.c.filename == name))
        conn.execute(table.insert().values(
            entity=entity_key, record_id=record_id, field=None, filename=name,
            content_type="application/pdf", size=len(data), sha256=digest,
            path=str(path.relative_to(kervan.settings.instance)),
            created_at=dt.datetime.now(dt.UTC), created_by=actor.user_id))
