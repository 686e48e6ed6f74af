"""Values in workflow actions: `$field` from the record, `@key` from an earlier action.

- `$name` — the source record's field (`$id` its id); `$a|$b` — the first that is filled;
- `$today`, `$today+7`, `$now` — dates relative to now in the company time zone;
- `$actor` — the user making the change;
- `@account` — the id of the record an earlier action created or linked under that key;
- anything else is a literal; a mapping `{en:…, tr:…, fa:…}` is a label (English kept).
Texts may embed fields: `"Follow up {title}"` fills `{title}` and `{<field>}`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

TOKEN = re.compile(r"^\$(today|now)([+-]\d+)?$")


class Context:
    """What an action can refer to while a transition runs."""

    def __init__(self, record: dict, actor, local_now: dt.datetime, title: str = ""):
        self.record = record
        self.actor = actor
        self.local_now = local_now
        self.title = title
        self.created: dict[str, int] = {}

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) <= {"en", "tr", "fa"} and "en" in value:
                return self.text(value["en"])
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, str):
            return value
        if "|" in value and all(p.strip().startswith(("$", "@")) for p in value.split("|")):
            for part in value.split("|"):
                got = self.resolve(part.strip())
                if got not in (None, "", []):
                    return got
            return None
        if value.startswith("@"):
            return self.created.get(value[1:])
        match = TOKEN.match(value)
        if match:
            days = int(match.group(2) or 0)
            moment = self.local_now + dt.timedelta(days=days)
            return moment.date() if match.group(1) == "today" else moment
        if value == "$actor":
            return self.actor.user_id
        if value.startswith("$"):
            return self.record.get(value[1:])
        return self.text(value)

    def text(self, value: str) -> str:
        def fill(match: re.Match) -> str:
            name = match.group(1)
            if name == "title":
                return self.title
            found = self.record.get(name)
            return "" if found is None else str(found)

        return re.sub(r"{([a-z0-9_]+)}", fill, value)
