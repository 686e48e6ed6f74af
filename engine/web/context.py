"""Request context helpers: the current runtime, actor and language."""

from __future__ import annotations

from flask import current_app, g, has_request_context, request, session
from flask_login import current_user

from engine.records.actor import Actor

LANGUAGES = ("en", "tr", "fa")
RTL = {"fa"}
#: Each language's name in itself, for the switcher.
LANGUAGE_NAMES = {"en": "English", "tr": "Türkçe", "fa": "فارسی"}
#: Session key of a language picked with `?lang=`: {"user": id or None, "language": code}.
LANGUAGE_CHOICE = "kervan_language"
#: Session key of the Persian money unit picked with `?irr=rial|toman`.
IRR_UNIT = "kervan_irr_unit"


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


def _signed_in_user():
    if current_user and getattr(current_user, "is_authenticated", False):
        return current_user.user
    return None


def current_language() -> str:
    """The language of this request: a `?lang=` choice (kept in the session), else the
    signed-in user's language, else the browser's."""
    if not has_request_context():
        return "en"
    language = g.get("language")
    if language is None:
        language = _choose_language()
        g.language = language
    return language


def _choose_language() -> str:
    user = _signed_in_user()
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        return remember_language(asked)
    choice = session.get(LANGUAGE_CHOICE) or {}
    if choice.get("language") in LANGUAGES and \
            choice.get("user") == (user.id if user is not None else None):
        return choice["language"]
    if user is not None and user.language in LANGUAGES:
        return user.language
    cookie = request.cookies.get("kervan_lang")
    if cookie in LANGUAGES:
        return cookie
    return request.accept_languages.best_match(LANGUAGES) or "en"


def remember_language(language: str) -> str:
    """Keep a language the user picked (switcher links `?lang=xx`) for this browser session.

    The single place where a choice is stored: persisting it to the signed-in user's
    profile belongs here too (`kervan().users.update(user.id, language=language)`).
    A choice made before signing in does not outlive the sign-in, so each user gets their
    own language on a shared computer."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; use one of {', '.join(LANGUAGES)}")
    user = _signed_in_user()
    choice = {"user": user.id if user is not None else None, "language": language}
    if session.get(LANGUAGE_CHOICE) != choice:
        session[LANGUAGE_CHOICE] = choice
        if user is not None and user.language != language:  # the profile remembers it too
            kervan().users.update(user.id, language=language)
            user.language = language
    g.language = language
    return language


def irr_in_toman() -> bool:
    """Whether Persian screens show rial amounts as toman (rials ÷ 10), as many Iranians do;
    picked with `?irr=toman` / `?irr=rial` and kept in the session."""
    if not has_request_context():
        return False
    asked = request.args.get("irr")
    if asked in ("rial", "toman"):
        if session.get(IRR_UNIT) != asked:
            session[IRR_UNIT] = asked
        return asked == "toman"
    return session.get(IRR_UNIT) == "toman"


def text_in(labels: dict | str | None, language: str | None = None) -> str:
    """A metadata label in the user's language, falling back to English."""
    if labels is None:
        return ""
    if isinstance(labels, str):
        return labels
    language = language or current_language()
    return labels.get(language) or labels.get("en") or next(iter(labels.values()), "")
