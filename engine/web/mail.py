"""E-mails the web layer sends (password resets)."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from flask import current_app
from flask_babel import gettext as _

from engine.documents.mail import send_message, sender

from .context import kervan


def send_password_reset(user, link: str) -> None:
    message = EmailMessage()
    message["Subject"] = _("Reset your Kervan password")
    message["From"] = sender(kervan().settings)
    message["To"] = user.email
    message.set_content(_("Hello %(name)s,\n\nOpen this link within an hour to choose a new "
                          "password:\n%(link)s\n\nIf you did not ask for it, ignore this "
                          "message.", name=user.display_name, link=link))
    try:
        send_message(kervan().settings, message)
    except (OSError, smtplib.SMTPException, RuntimeError) as exc:
        current_app.logger.error("password reset e-mail to %s failed: %s", user.email, exc)
