"""Demo data: YAML records loaded through the record service, idempotently.

Each metadata layer may have a `demo/` folder of YAML files, loaded in name order.
A file maps entity keys to lists of records; `_users` lists users to create.
In a record:
- `_key` (required) names it: a record already loaded under that key is skipped, so
  loading twice changes nothing, and other records refer to it as `"@<key>"`;
- `_created: 400` backdates it to 400 days ago so lists and reports have shape;
- `_archived: true` archives it after creation;
- date and datetime values may be `today`, `today-30`, `now+2` (days from today);
- user fields take a username; `_users` entries have username, password, roles, teams,
  full_name, email and language.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from .definitions.model import Entity
from .definitions.yamlsource import YamlProblem, load_yaml_file, plain
from .records.actor import SYSTEM
from .records.errors import RecordError

RELATIVE_DATE = re.compile(r"^(today|now)\s*([+-]\s*\d+)?$")


class DemoError(Exception):
    """Demo data that cannot be loaded; says which file and record."""


@dataclass
class DemoResult:
    created: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    users: int = 0

    @property
    def total(self) -> int:
        return sum(self.created.values())


def demo_files(directories: list[Path]) -> list[Path]:
    files: list[Path] = []
    for directory in directories:
        folder = directory / "demo"
        if folder.is_dir():
            files.extend(sorted(folder.glob("*.y*ml")))
    return files


def load_demo(kervan, files: list[Path] | None = None) -> DemoResult:
    """Load demo files through the record service; safe to run again."""
    loader = _Loader(kervan)
    for path in files if files is not None else demo_files(kervan.metadata_directories()):
        loader.load_file(path)
    return loader.result


class _Loader:
    def __init__(self, kervan):
        self.kervan = kervan
        self.model = kervan.model
        self.result = DemoResult()
        self.tables = kervan.tables.tables
        self.zone = ZoneInfo(kervan.settings.timezone)
        self.now = dt.datetime.now(dt.UTC)
        with kervan.db.connect() as conn:
            demo = self.tables["kv_demo"]
            self.keys = {r.key: r.record_id for r in conn.execute(sa.select(demo))}
            users = self.tables["kv_user"]
            self.users = {r.username: r.id for r in conn.execute(
                sa.select(users.c.username, users.c.id))}

    def load_file(self, path: Path) -> None:
        try:
            data = plain(load_yaml_file(path))
        except YamlProblem as exc:
            raise DemoError(str(exc)) from None
        if not isinstance(data, dict):
            raise DemoError(f"{path}: expected a mapping of entity keys to record lists")
        for user in data.pop("_users", []) or []:
            self._user(path, user)
        for entity_key, records in data.items():
            entity = self.model.entities.get(entity_key)
            if entity is None:
                raise DemoError(f"{path}: {entity_key}: no such entity in the metadata")
            for index, record in enumerate(records or []):
                self._record(path, entity, index, dict(record))

    def _user(self, path: Path, user: dict) -> None:
        username = user.get("username")
        if not username:
            raise DemoError(f"{path}: _users: every user needs a username")
        if username in self.users:
            return
        try:
            created = self.kervan.users.create(
                username, user.get("password") or "", list(user.get("roles") or []),
                email=user.get("email"), full_name=user.get("full_name"),
                language=user.get("language", "en"), teams=list(user.get("teams") or []))
        except RecordError as exc:
            raise DemoError(f"{path}: _users: {username}: {exc}") from None
        self.users[username] = created.id
        self.result.users += 1

    def _record(self, path: Path, entity: Entity, index: int, record: dict) -> None:
        key = record.pop("_key", None)
        where = f"{path}: {entity.key}[{index}]"
        if not key:
            raise DemoError(f"{where}: every demo record needs a _key")
        if key in self.keys:
            self.result.skipped += 1
            return
        days = record.pop("_created", None)
        archived = record.pop("_archived", False)
        owner = record.pop("_owner", None)
        values = self._values(where, entity, record)
        if owner:
            values["owner"] = self._username(where, owner)
        at = self.now - dt.timedelta(days=float(days)) if days is not None else None
        try:
            with self.kervan.records.transaction() as conn:
                created = self.kervan.records.create(entity.key, values, SYSTEM, conn=conn, at=at)
                if archived:
                    self.kervan.records.archive(entity.key, created["id"], SYSTEM, conn=conn)
                demo = self.tables["kv_demo"]
                conn.execute(demo.insert().values(key=key, entity=entity.key,
                                                  record_id=created["id"], loaded_at=self.now))
        except RecordError as exc:
            raise DemoError(f"{where} ({key}): {exc}") from None
        self.keys[key] = created["id"]
        self.result.created[entity.key] = self.result.created.get(entity.key, 0) + 1

    def _values(self, where: str, entity: Entity, record: dict) -> dict:
        values = {}
        for name, value in record.items():
            fld = entity.fields.get(name)
            if fld is None:
                values[name] = value  # the record service names the unknown field
            elif fld.type == "child_table":
                child = self.model.entity(fld.spec["entity"])
                values[name] = [self._values(f"{where}.{name}", child, dict(line))
                                for line in value or []]
            elif fld.type in ("link",) and isinstance(value, str) and value.startswith("@"):
                ref = value[1:]
                if ref not in self.keys:
                    raise DemoError(f"{where}: {name}: {value} names no demo record loaded "
                                    f"before it")
                values[name] = self.keys[ref]
            elif fld.type == "user" and isinstance(value, str):
                values[name] = self._username(where, value)
            elif fld.type in ("date", "datetime") and isinstance(value, str):
                values[name] = self._relative(value, fld.type) or value
            else:
                values[name] = value
        return values

    def _username(self, where: str, username: str) -> int:
        if username not in self.users:
            raise DemoError(f"{where}: unknown user {username!r}; list it under _users")
        return self.users[username]

    def _relative(self, text: str, kind: str):
        match = RELATIVE_DATE.match(text.strip())
        if not match:
            return None
        offset = int(match.group(2).replace(" ", "")) if match.group(2) else 0
        moment = self.now.astimezone(self.zone) + dt.timedelta(days=offset)
        if kind == "date":
            return moment.date()
        if match.group(1) == "today":
            moment = moment.replace(hour=10, minute=0, second=0, microsecond=0)
        return moment
