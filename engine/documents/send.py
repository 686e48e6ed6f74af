"""Sending a document (quote, invoice) by e-mail: template, PDF attached, SMTP, as a job.

The send is queued (status `queued`); the job renders the e-mail template with the
document's variables, attaches the PDF, and records `sent` (moving the document to its
declared stage, e.g. a quote to "sent") or `failed` with the SMTP error — then raises so
the queue retries it.
"""

from __future__ import annotations

import datetime as dt
import smtplib
from email.message import EmailMessage

from jinja2.sandbox import SandboxedEnvironment

from engine.records.actor import Actor
from engine.records.errors import RecordError, ValidationFailed

from .mail import MailNotConfigured, send_message, sender
from .pdf import company, money, print_context, render_pdf


def _spec(entity) -> dict:
    spec = (entity.print_spec or {}).get("send")
    if spec is None:
        raise RecordError(f"{entity.key} records cannot be sent by e-mail")
    return spec


def _recipient(kervan, entity, record: dict) -> str | None:
    customer_key = entity.print_spec.get("customer")
    if customer_key and record.get(customer_key):
        target = entity.fields[customer_key].target
        customer = kervan.records.get(target, record[customer_key], with_lines=False)
        if customer.get("email"):
            return customer["email"]
    contact = record.get("contact")
    if contact and "contact" in kervan.model.entities:
        person = kervan.records.get("contact", contact, with_lines=False)
        return person.get("email")
    return None


def _set_status(kervan, entity, record_id: int, actor: Actor, **values) -> dict:
    current = kervan.records.get(entity.key, record_id, with_lines=False)
    return kervan.records.update(entity.key, record_id, values, version=current["version"],
                                 actor=kervan.workflow.engine_actor(actor))


def queue_send(kervan, entity_key: str, record_id: int, actor: Actor, to: str | None = None,
               template_id: int | None = None) -> dict:
    """Check what can be checked now, mark the document queued and hand it to the worker."""
    from engine.fields.builtin import EMAIL_RE
    from engine.jobs import send_document_task

    entity = kervan.model.entity(entity_key)
    spec = _spec(entity)
    kervan.permissions.require(actor, entity, "print")
    record = kervan.records.get(entity.key, record_id, actor=actor)
    kervan.permissions.require_record(actor, entity, "edit", record)
    address = (to or _recipient(kervan, entity, record) or "").strip().lower()
    if not EMAIL_RE.match(address):
        raise ValidationFailed(entity.key, {"to": "no valid e-mail address: give one, or set "
                                                  "the customer's e-mail"})
    if template_id is not None:
        kervan.records.get("email_template", template_id, with_lines=False)
    status = {spec["status_field"]: "queued"} if spec.get("status_field") else {}
    if spec.get("error_field"):
        status[spec["error_field"]] = None
    if status:
        record = _set_status(kervan, entity, record_id, actor, **status)
    send_document_task(entity.key, record_id, address, template_id, actor.user_id,
                       actor.language)
    return kervan.records.get(entity.key, record_id, actor=actor)


def _template(kervan, entity, language: str, template_id: int | None) -> dict | None:
    if "email_template" not in kervan.model.entities:
        return None
    if template_id:
        return kervan.records.get("email_template", template_id, with_lines=False)
    candidates = kervan.records.find("email_template", where={
        "field": "applies_to", "op": "eq", "value": entity.key}, limit=50)
    return next((t for t in candidates if t.get("language") == language), None) or (
        candidates[0] if candidates else None)


def send_document(kervan, entity_key: str, record_id: int, to: str, template_id: int | None,
                  user_id: int | None, language: str) -> None:
    """The job: render, attach, send; record the outcome; raise on failure to be retried."""
    entity = kervan.model.entity(entity_key)
    spec = _spec(entity)
    actor = kervan.users.actor(kervan.users.get(user_id)) if user_id else \
        Actor(None, "system", is_system=True)
    template = _template(kervan, entity, language, template_id)
    context = print_context(kervan, entity.key, record_id, actor, language)
    record = context["record"]
    totals = context["totals"]
    variables = {
        entity.key: record, "record": record, "customer": context["customer"],
        "user": {"full_name": context["salesperson"]}, "salesperson": context["salesperson"],
        "number": record.get(entity.print_spec.get("number", "")) or "",
        "total": money(totals.grand_total, totals.currency, language) if totals else "",
        "company": context["company"],
        "contact": kervan.records.get("contact", record["contact"], with_lines=False)
        if record.get("contact") and "contact" in kervan.model.entities else {},
    }
    env = SandboxedEnvironment(autoescape=False)
    default_subject = f"{context['title']} {variables['number']}"
    subject = env.from_string((template or {}).get("subject") or default_subject)
    default_body = "{{ customer.name }},\n\n{{ number }} ({{ total }})\n\n{{ salesperson }}"
    body = env.from_string((template or {}).get("body") or default_body)
    pdf, name = render_pdf(kervan, entity.key, record_id, actor, language)
    message = EmailMessage()
    message["Subject"] = subject.render(**variables).strip()
    message["From"] = sender(kervan.settings, company(kervan))
    message["To"] = to
    message.set_content(body.render(**variables))
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename=name)
    try:
        send_message(kervan.settings, message)
    except (OSError, smtplib.SMTPException, MailNotConfigured) as exc:
        text = f"{type(exc).__name__}: {exc}"
        values = {}
        if spec.get("status_field"):
            values[spec["status_field"]] = "failed"
        if spec.get("error_field"):
            values[spec["error_field"]] = text[:2000]
        if values:
            _set_status(kervan, entity, record_id, actor, **values)
        raise
    values = {}
    if spec.get("status_field"):
        values[spec["status_field"]] = "sent"
    if spec.get("error_field"):
        values[spec["error_field"]] = None
    if spec.get("sent_at_field"):
        values[spec["sent_at_field"]] = dt.datetime.now(dt.UTC)
    if values:
        _set_status(kervan, entity, record_id, actor, **values)
    target = spec.get("transition")
    field = kervan.workflow.stage_field(entity)
    if target and field:
        current = kervan.records.get(entity.key, record_id, with_lines=False)
        if current.get(field) != target:
            try:
                kervan.workflow.transition(entity.key, record_id, target, actor)
            except RecordError as exc:  # sent is sent; the move is reported, not undone
                _note(kervan, entity, record_id, f"sent, but not moved to {target}: {exc}")


def _note(kervan, entity, record_id: int, message: str) -> None:
    table = kervan.tables.tables["kv_audit"]
    with kervan.records.transaction() as conn:
        conn.execute(table.insert().values(entity=entity.key, record_id=record_id,
                                           action="note", field=None, old_value=None,
                                           new_value=f'"{message}"', user_id=None,
                                           at=dt.datetime.now(dt.UTC)))


