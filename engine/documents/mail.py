"""Sending e-mail through the SMTP server named by KERVAN_SMTP_URL (no web context needed).

URL forms: `smtp://host:25`, `smtp+starttls://user:pass@host:587`, `smtps://user:pass@host:465`.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from urllib.parse import unquote, urlparse

from engine.config import Settings


class MailNotConfigured(RuntimeError):
    pass


def send_message(settings: Settings, message: EmailMessage) -> None:
    """Send one message; raises smtplib/OSError errors for the caller to report."""
    url = settings.smtp_url
    if not url:
        raise MailNotConfigured("e-mail is not configured: set KERVAN_SMTP_URL (for example "
                                "smtp+starttls://user:password@mail.example.com:587)")
    parsed = urlparse(url)
    if parsed.scheme not in ("smtp", "smtps", "smtp+starttls") or not parsed.hostname:
        raise MailNotConfigured(f"KERVAN_SMTP_URL {url!r} is not an smtp://, smtps:// or "
                                f"smtp+starttls:// address")
    port = parsed.port or {"smtps": 465, "smtp+starttls": 587}.get(parsed.scheme, 25)
    cls = smtplib.SMTP_SSL if parsed.scheme == "smtps" else smtplib.SMTP
    with cls(parsed.hostname, port, timeout=30) as smtp:
        if parsed.scheme == "smtp+starttls":
            smtp.starttls()
        if parsed.username:
            smtp.login(unquote(parsed.username), unquote(parsed.password or ""))
        smtp.send_message(message)


def sender(settings: Settings, company: dict | None = None) -> str:
    address = (company or {}).get("email") or settings.mail_from
    name = (company or {}).get("company_name")
    return f"{name} <{address}>" if name and "<" not in address else address
