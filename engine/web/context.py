"""Request context helpers: the current runtime, actor and language."""

from __future__ import annotations

from flask import current_app, g, request
from flask_login import current_user

from engine.records.actor import Actor

LANGUAGES = ("en", "tr", "fa")
RTL = {"fa"}


def kervan():
    return current_app.extensions["kervan"]


def current_actor() -> Actor:
    """The actor of this request (an anonymous actor has no roles and sees nothing)."""
    actor = g.get("actor")
    if actor is not None:
        return actor
    if current_user and current_user.is_authenticated:
        g.actor = kervan().users.actor(current_user.user)
        return g.actor
    return Actor(user_id=None, username="anonymous")


def current_language() -> str:
    if current_user and getattr(current_user, "is_authenticated", False):
        return current_user.user.language
    chosen = request.args.get("lang") or request.cookies.get("kervan_lang")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES) or "en"


def text_in(labels: dict | str | None, language: str | None = None) -> str:
    """A metadata label in the user's language, falling back to English."""
    if labels is None:
        return ""
    if isinstance(labels, str):
        return labels
    language = language or current_language()
    return labels.get(language) or labels.get("en") or next(iter(labels.values()), "")
