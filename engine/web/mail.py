"""Sending e-mail through the SMTP server named by KERVAN_SMTP_URL."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from urllib.parse import unquote, urlparse

from flask import current_app
from flask_babel import gettext as _

from .context import kervan


def smtp_send(message: EmailMessage) -> None:
    """Send one message; raises smtplib/OSError errors for the caller to report."""
    url = kervan().settings.smtp_url
    if not url:
        raise RuntimeError("e-mail is not configured: set KERVAN_SMTP_URL "
                           "(for example smtp://mail.example.com:587)")
    parsed = urlparse(url)
    port = parsed.port or (465 if parsed.scheme == "smtps" else 25)
    cls = smtplib.SMTP_SSL if parsed.scheme == "smtps" else smtplib.SMTP
    with cls(parsed.hostname, port, timeout=30) as smtp:
        if parsed.scheme == "smtp+starttls":
            smtp.starttls()
        if parsed.username:
            smtp.login(unquote(parsed.username), unquote(parsed.password or ""))
        smtp.send_message(message)


def send_password_reset(user, link: str) -> None:
    message = EmailMessage()
    message["Subject"] = _("Reset your Kervan password")
    message["From"] = current_app.config.get("MAIL_FROM", "kervan@localhost")
    message["To"] = user.email
    message.set_content(_("Hello %(name)s,\n\nOpen this link within an hour to choose a new "
                          "password:\n%(link)s\n\nIf you did not ask for it, ignore this "
                          "message.", name=user.display_name, link=link))
    try:
        smtp_send(message)
    except (OSError, smtplib.SMTPException, RuntimeError) as exc:
        current_app.logger.error("password reset e-mail to %s failed: %s", user.email, exc)
