"""The audit log: one row per changed field, plus create/archive/restore/delete events."""

from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa

from engine.definitions.model import Entity
from engine.fields.builtin import to_utc

from .actor import Actor


def encode(value) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


def decode(text: str | None):
    return None if text is None else json.loads(text)


def write_event(conn, table: sa.Table, entity: Entity, record_id: int, action: str,
                actor: Actor, at: dt.datetime, old=None, new=None) -> None:
    conn.execute(table.insert().values(
        entity=entity.key, record_id=record_id, action=action, field=None,
        old_value=encode(old), new_value=encode(new), user_id=actor.user_id, at=at))


def write_changes(conn, table: sa.Table, entity: Entity, record_id: int, actor: Actor,
                  at: dt.datetime, changes: dict[str, tuple]) -> None:
    """One row per changed field with its old and new value (JSON)."""
    if not changes:
        return
    conn.execute(table.insert(), [
        {"entity": entity.key, "record_id": record_id, "action": "update", "field": key,
         "old_value": encode(old), "new_value": encode(new), "user_id": actor.user_id, "at": at}
        for key, (old, new) in changes.items()])


def history(conn, table: sa.Table, entity: Entity, record_id: int) -> list[dict]:
    """The audit trail of one record, oldest first."""
    rows = conn.execute(
        sa.select(table).where(table.c.entity == entity.key, table.c.record_id == record_id)
        .order_by(table.c.id)).mappings()
    return [{"id": r["id"], "action": r["action"], "field": r["field"],
             "old": decode(r["old_value"]), "new": decode(r["new_value"]),
             "user_id": r["user_id"], "at": to_utc(r["at"])} for r in rows]
