"""Problems the record service and field types report in English, shown in the user's
language. They are matched by shape, so the engine keeps one wording and screens show
the translated one; a message with no known shape is shown as it is.

The lasting fix is for those layers to produce translated text themselves (the actor
carries a language); until then this table keeps forms readable in Turkish and Persian.
"""

from __future__ import annotations

import re

from flask_babel import gettext


def N_(message: str) -> str:
    """Mark a message for extraction; it is translated where it is shown."""
    return message


#: (pattern of the English message, message id with the same named placeholders).
PROBLEMS: tuple[tuple[str, str], ...] = (
    (r"is required", N_("is required")),
    (r"is required when (?P<when>.+)", N_("is required when %(when)s")),
    (r"is read-only", N_("is read-only")),
    (r"is set by the system and cannot be changed",
     N_("is set by the system and cannot be changed")),
    (r"must be text", N_("must be text")),
    (r"must be at most (?P<n>\d+) characters", N_("must be at most %(n)s characters")),
    (r"must be a whole number", N_("must be a whole number")),
    (r"is too large", N_("is too large")),
    (r"must be at least (?P<n>\S+)", N_("must be at least %(n)s")),
    (r"must be at most (?P<n>\S+)", N_("must be at most %(n)s")),
    (r"must be a number", N_("must be a number")),
    (r"must be a finite number", N_("must be a finite number")),
    (r"must have at most (?P<n>\d+) decimal places", N_("must have at most %(n)s decimal places")),
    (r"is too large \(at most (?P<n>\d+) digits before the decimal point\)",
     N_("is too large (at most %(n)s digits before the decimal point)")),
    (r"must be a percentage between -1000 and 1000",
     N_("must be a percentage between -1000 and 1000")),
    (r"needs a currency \(for example TRY, EUR, USD, IRR\)",
     N_("needs a currency (for example TRY, EUR, USD, IRR)")),
    (r"must be true or false", N_("must be true or false")),
    (r"must be a date written as YYYY-MM-DD", N_("must be a date written as YYYY-MM-DD")),
    (r"must be a date and time written as .*", N_("must be a date and time")),
    (r"must be a date and time", N_("must be a date and time")),
    (r"(?P<value>.+) is not a valid e-mail address", N_("%(value)s is not a valid e-mail address")),
    (r"(?P<value>.+) is not a valid phone number", N_("%(value)s is not a valid phone number")),
    (r"(?P<value>.+) is not a valid web address", N_("%(value)s is not a valid web address")),
    (r"(?P<value>.+) is not one of the options: (?P<options>.+)",
     N_("%(value)s is not one of the options: %(options)s")),
    (r"must be the id of a record", N_("must be the id of a record")),
    (r"enter (?P<names>.+)", N_("enter %(names)s")),
    (r"(?P<label>.+) (?P<value>'.*') is already used by (?P<record>\S+ #\d+)",
     N_("%(label)s %(value)s is already used by %(record)s")),
    (r"stale: current version is (?P<n>\d+)", N_("stale: current version is %(n)s")),
    (r"(?P<record>\S+ #\d+) was changed by someone else \(you edited version (?P<mine>\d+), "
     r"it is now at version (?P<theirs>\d+)\); reload it and apply your change again",
     N_("%(record)s was changed by someone else (you edited version %(mine)s, it is now at "
        "version %(theirs)s); reload it and apply your change again")),
    (r"(?P<record>\S+ #\d+) does not exist", N_("%(record)s does not exist")),
    (r"(?P<record>\S+ #\d+) is archived; restore it before editing",
     N_("%(record)s is archived; restore it before editing")),
    (r"access denied: (?P<user>\S+) \((?P<roles>[^)]*)\) may not (?P<action>\w+) (?P<what>.+)",
     N_("access denied: %(user)s (%(roles)s) may not %(action)s %(what)s")),
    (r"(?P<entity>\S+): (?P<n>\d+) fields? needs? attention",
     N_("%(entity)s: %(n)s field(s) need attention")),
)
_COMPILED = tuple((re.compile(f"^{pattern}$", re.DOTALL), message)
                  for pattern, message in PROBLEMS)


def translate_problem(text) -> str:
    """An engine message in the user's language when its shape is known."""
    if not isinstance(text, str):
        return "" if text is None else str(text)
    for pattern, message in _COMPILED:
        match = pattern.match(text.strip())
        if match:
            return gettext(message, **match.groupdict())
    return text
