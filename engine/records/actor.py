"""Who is acting: written into audit rows and created_by/updated_by."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    username: str
    roles: frozenset[str] = field(default_factory=frozenset)
    team_id: int | None = None
    team_ids: frozenset[int] = field(default_factory=frozenset)
    language: str = "en"
    is_system: bool = False


#: The engine itself (command line, migrations, demo loader).
SYSTEM = Actor(user_id=None, username="system", is_system=True)
