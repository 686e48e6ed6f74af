"""Quote PDFs from the print template, and sending them by e-mail to a real SMTP server."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller

from engine import jobs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content,
                                                                    policy=default_policy)))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    inbox.port = port
    inbox.start, inbox.stop = controller.start, controller.stop
    yield inbox
    if getattr(controller, "_thread", None) is not None:
        controller.stop()


@pytest.fixture
def queue(crm):
    """Jobs run in this process against the test's runtime (Huey's immediate mode)."""
    jobs.use_runtime(crm)
    jobs.huey.immediate = True
    yield jobs.huey
    jobs.huey.immediate = False


@pytest.fixture
def quote(crm):
    crm.records.create("company_settings", {
        "company_name": "Kervan Makina San. ve Tic. A.Ş.", "tax_office": "Kadıköy",
        "tax_number": "1234567890", "email": "satis@kervan.example",
        "payment_terms_text": "Peşin ödemede %2 iskonto uygulanır.",
        "delivery_time_text": "Sipariş onayından sonra 4 hafta."}) \
        if "company_settings" in crm.model.entities else None
    account = crm.records.create("account", {"name": "Şahin Gıda Ürünleri", "kind": "individual",
                                             "email": "satinalma@sahingida.example"})
    ayse = crm.users.by_username("ayse")
    return crm.records.create("quote", {
        "account": account["id"], "currency": "try", "quote_date": "2026-11-20",
        "valid_until": "2026-12-20", "subject": "Paketleme hattı", "owner": ayse.id,
        "lines": [{"description": "Dolum makinesi", "quantity": "2", "unit_price": "150000",
                   "discount": "5", "vat_rate": "20"},
                  {"description": "Eğitim ve kurulum", "quantity": "1", "unit_price": "12500",
                   "vat_rate": "10"}]})


def pdf_text(data: bytes, tmp_path) -> str:
    path = tmp_path / "doc.pdf"
    path.write_bytes(data)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout


def test_quote_pdf_in_turkish_and_persian(app, crm, quote, tmp_path):
    token = crm.users.create_token(crm.users.by_username("admin"))
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    response = client.get(f"/api/v1/quote/{quote['id']}/pdf?lang=tr", headers=headers)
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = pdf_text(response.data, tmp_path)
    assert quote["number"] in text and quote["number"].startswith("T-2026-")
    for expected in ("Fiyat Teklifi", "Şahin Gıda Ürünleri", "Dolum makinesi",
                     "Eğitim ve kurulum", "Genel toplam", "KDV %20", "KDV %10",
                     "Kervan Makina San. ve Tic. A.Ş.", "Peşin ödemede %2 iskonto"):
        assert expected in text, expected
    # 2×150,000 −5% = 285,000 (+20% = 57,000); 12,500 (+10% = 1,250) → 355,750.00
    assert "355.750,00" in text and "57.000,00" in text and "1.250,00" in text
    persian = client.get(f"/api/v1/quote/{quote['id']}/pdf?lang=fa", headers=headers)
    text = pdf_text(persian.data, tmp_path)
    assert "پیش‌فاکتور" in text or "فاکتور" in text
    assert "۳۵۵٬۷۵۰" in text  # Persian digits and separator
    files = crm.tables.tables["kv_file"]
    with crm.db.connect() as conn:
        names = [r.filename for r in conn.execute(files.select().where(
            files.c.entity == "quote", files.c.record_id == quote["id"]))]
    assert f"{quote['number']}-v{quote['version']}.pdf" in names
    denied = client.get(f"/api/v1/quote/{quote['id']}/pdf", headers={
        "Authorization": f"Bearer {crm.users.create_token(crm.users.by_username('reza'))}"})
    assert denied.status_code == 403


def test_send_by_email_arrives_with_the_pdf_and_moves_the_quote(app, crm, quote, smtp, queue):
    smtp.start()
    crm.settings.smtp_url = f"smtp://127.0.0.1:{smtp.port}"
    admin = crm.users.actor(crm.users.by_username("admin"))
    crm.workflow.transition("quote", quote["id"], "draft", admin)
    token = crm.users.create_token(crm.users.by_username("ayse"))
    response = app.test_client().post(f"/api/v1/quote/{quote['id']}/send", json={},
                                      headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 202, response.get_json()
    assert len(smtp.messages) == 1
    recipients, message = smtp.messages[0]
    assert recipients == ["satinalma@sahingida.example"]
    assert quote["number"] in message["Subject"]
    attachment = next(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename().startswith(quote["number"])
    assert attachment.get_content().startswith(b"%PDF")
    sent = crm.records.get("quote", quote["id"])
    assert (sent["status"], sent["email_status"], sent["email_error"]) == ("sent", "sent", None)
    assert sent["emailed_at"] is not None


def test_failed_send_is_shown_on_the_record_and_retried(crm, quote, smtp, queue):
    crm.settings.smtp_url = f"smtp://127.0.0.1:{smtp.port}"  # nothing listens yet
    ayse = crm.users.actor(crm.users.by_username("ayse"))
    from engine.documents.send import queue_send

    queue_send(crm, "quote", quote["id"], ayse, to="alici@example.com")
    failed = crm.records.get("quote", quote["id"])
    assert failed["email_status"] == "failed"
    assert "ConnectionRefusedError" in failed["email_error"]
    assert failed["status"] == "draft"
    retries = queue.scheduled()
    assert len(retries) == 1 and retries[0].retries == 2
    smtp.start()
    later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(minutes=5)
    for task in queue.read_schedule(later):
        queue.execute(task, timestamp=later)
    assert len(smtp.messages) == 1 and smtp.messages[0][0] == ["alici@example.com"]
    assert crm.records.get("quote", quote["id"])["email_status"] == "sent"
