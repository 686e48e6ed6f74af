"""Role × entity × action × scope, plus field-level hidden/read-only, from metadata.

Roles are declared under `roles/`. A user with several roles gets the most permissive
grant of any of them.  The same object answers the record service (may this actor
edit this record?) and the query layer (which rows may this actor read?), so every
door obeys one rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from engine.definitions.model import Entity, Model
from engine.records.actor import Actor
from engine.records.errors import RecordError

ACTIONS = ("read", "create", "edit", "delete", "export", "import", "print")
SCOPES = ("none", "own", "team", "all")
RANK = {scope: index for index, scope in enumerate(SCOPES)}


class PermissionDenied(RecordError):
    code, status = "access_denied", 403

    def __init__(self, actor: Actor, entity: Entity, action: str, detail: str = ""):
        roles = ", ".join(sorted(actor.roles)) or "no role"
        message = (f"access denied: {actor.username} ({roles}) may not {action} "
                   f"{entity.key}{' ' + detail if detail else ''}")
        super().__init__(message, {"_permission": f"{entity.key}.{action}"})
        self.entity = entity.key
        self.action = action


def _scope(value) -> str:
    if value is True:
        return "all"
    if value is False or value is None:
        return "none"
    return value


@dataclass(frozen=True)
class FieldAccess:
    hidden: frozenset[str]
    read_only: frozenset[str]


class Permissions:
    """Answers permission questions for one resolved model."""

    def __init__(self, model: Model):
        self.model = model
        self.roles: dict = model.documents.get("roles", {})

    def role_keys(self) -> list[str]:
        return sorted(self.roles)

    def is_admin(self, actor: Actor) -> bool:
        return actor.is_system or any(self.roles.get(r, {}).get("admin") for r in actor.roles)

    def _owner_entity(self, entity: Entity) -> Entity:
        # Child lines (quote lines) follow their parent's permissions.
        while entity.child_of:
            entity = self.model.entity(entity.child_of)
        return entity

    def scope(self, actor: Actor, entity: Entity, action: str) -> str:
        """The widest scope any of the actor's roles grants for an action."""
        if self.is_admin(actor):
            return "all"
        entity = self._owner_entity(entity)
        best = "none"
        for role in actor.roles:
            grants = self.roles.get(role, {}).get("entities", {})
            grant = grants.get(entity.key, grants.get("*", {}))
            scope = _scope(grant.get(action))
            if action == "create" and scope != "none":
                scope = "all"
            if RANK[scope] > RANK[best]:
                best = scope
        return best

    def require(self, actor: Actor, entity: Entity, action: str) -> str:
        scope = self.scope(actor, entity, action)
        if scope == "none":
            raise PermissionDenied(actor, entity, action)
        return scope

    def row_condition(self, actor: Actor, entity: Entity, table: sa.Table,
                      action: str = "read") -> sa.ColumnElement[bool] | None:
        """SQL limiting rows to the actor's scope; None when every row is allowed."""
        scope = self.scope(actor, entity, action)
        if scope == "all":
            return None
        if scope == "none" or actor.user_id is None:
            return sa.false()
        if entity.child_of:  # lines follow their document: only lines of readable parents
            return self._child_condition(actor, entity, table, action)
        own = sa.or_(table.c.owner == actor.user_id, table.c.created_by == actor.user_id)
        if scope == "own":
            return own
        return sa.or_(own, table.c.team.in_(sorted(actor.team_ids))) if actor.team_ids else own

    def _child_condition(self, actor, entity, table, action):
        parent = self.model.entity(entity.child_of)
        link = next((f.spec.get("link_field", parent.key) for f in parent.child_tables.values()
                     if f.spec["entity"] == entity.key), parent.key)
        from engine.storage.tables import build_tables

        parent_table = build_tables(self.model).tables[parent.table_name]
        condition = self.row_condition(actor, parent, parent_table, action)
        if condition is None:
            return None
        return table.c[link].in_(sa.select(parent_table.c.id).where(condition))

    def allows_record(self, actor: Actor, entity: Entity, action: str, record: dict) -> bool:
        scope = self.scope(actor, entity, action)
        if scope == "all":
            return True
        if scope == "none" or actor.user_id is None:
            return False
        if entity.child_of:
            return True
        mine = actor.user_id in (record.get("owner"), record.get("created_by"))
        if scope == "own":
            return mine
        return mine or (record.get("team") is not None and record.get("team") in actor.team_ids)

    def require_record(self, actor: Actor, entity: Entity, action: str, record: dict) -> None:
        if not self.allows_record(actor, entity, action, record):
            scope = self.scope(actor, entity, action)
            detail = "" if scope == "none" else f"#{record.get('id')} (allowed: {scope} records)"
            raise PermissionDenied(actor, entity, action, detail)

    def field_access(self, actor: Actor, entity: Entity) -> FieldAccess:
        """Fields hidden or read-only for the actor: only if every role of theirs says so."""
        if self.is_admin(actor) or not actor.roles:
            return FieldAccess(frozenset(), frozenset())
        hidden: set[str] | None = None
        read_only: set[str] | None = None
        for role in actor.roles:
            rules = self.roles.get(role, {}).get("fields", {})
            role_hidden = {k.split(".", 1)[1] for k, v in rules.items()
                           if k.split(".", 1)[0] == entity.key and v == "hidden"}
            role_ro = {k.split(".", 1)[1] for k, v in rules.items()
                       if k.split(".", 1)[0] == entity.key and v in ("read_only", "hidden")}
            hidden = role_hidden if hidden is None else hidden & role_hidden
            read_only = role_ro if read_only is None else read_only & role_ro
        hidden = hidden or set()
        return FieldAccess(frozenset(hidden), frozenset((read_only or set()) - hidden))
