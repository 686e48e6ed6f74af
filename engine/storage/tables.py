"""SQLAlchemy tables built from the resolved model, plus the engine's own tables."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from engine.definitions.model import Entity, Model

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only
_TS = sa.DateTime(timezone=True)


def index_name(prefix: str, table: str, *columns: str) -> str:
    """A deterministic index name that fits PostgreSQL's 63-character limit."""
    name = f"{prefix}_{table}_{'_'.join(columns)}"
    if len(name) <= 60:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[:51]}_{digest}"


def system_tables(metadata: sa.MetaData) -> None:
    """Tables the engine owns whatever the metadata says."""
    sa.Table(
        "kv_user", metadata,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("email", sa.String(255)),
        sa.Column("full_name", sa.String(255)),
        sa.Column("language", sa.String(8), nullable=False, server_default="en"),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("password_hash", sa.String(255)),
        sa.Column("created_at", _TS),
    )
    sa.Table(
        "kv_team", metadata,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(255), nullable=False),
    )
    sa.Table(
        "kv_audit", metadata,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("record_id", sa.BigInteger, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("field", sa.String(64)),
        sa.Column("old_value", sa.Text),
        sa.Column("new_value", sa.Text),
        sa.Column("user_id", sa.BigInteger),
        sa.Column("at", _TS, nullable=False),
        sa.Index("ix_kv_audit_record", "entity", "record_id", "id"),
    )
    sa.Table(
        "kv_series_counter", metadata,
        sa.Column("series", sa.String(64), primary_key=True),
        sa.Column("period", sa.String(16), primary_key=True),
        sa.Column("last_value", sa.BigInteger, nullable=False),
    )
    sa.Table(
        "kv_schema_column", metadata,
        sa.Column("table_name", sa.String(64), primary_key=True),
        sa.Column("column_name", sa.String(128), primary_key=True),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("updated_at", _TS),
    )
    sa.Table(
        "kv_archive", metadata,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("table_name", sa.String(64), nullable=False),
        sa.Column("column_name", sa.String(128), nullable=False),
        sa.Column("record_id", sa.BigInteger, nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("value", sa.Text),
        sa.Column("reason", sa.String(255)),
        sa.Column("archived_at", _TS, nullable=False),
        sa.Index("ix_kv_archive_column", "table_name", "column_name", "record_id"),
    )
    sa.Table(
        "kv_file", metadata,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("entity", sa.String(64)),
        sa.Column("record_id", sa.BigInteger),
        sa.Column("field", sa.String(64)),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(128), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("created_by", sa.BigInteger),
        sa.Index("ix_kv_file_record", "entity", "record_id"),
    )


    sa.Table(
        "kv_demo", metadata,
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("record_id", sa.BigInteger, nullable=False),
        sa.Column("loaded_at", _TS, nullable=False),
    )


    sa.Table(
        "kv_user_role", metadata,
        sa.Column("user_id", sa.BigInteger, primary_key=True),
        sa.Column("role", sa.String(64), primary_key=True),
    )
    sa.Table(
        "kv_user_team", metadata,
        sa.Column("user_id", sa.BigInteger, primary_key=True),
        sa.Column("team_id", sa.BigInteger, primary_key=True),
    )
    sa.Table(
        "kv_session", metadata,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("user_id", sa.BigInteger, nullable=False, index=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("last_seen_at", _TS),
        sa.Column("ended_at", _TS),
        sa.Column("ip", sa.String(64)),
    )
    sa.Table(
        "kv_api_token", metadata,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(12), nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False, index=True),
        sa.Column("label", sa.String(255)),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("last_used_at", _TS),
        sa.Column("revoked_at", _TS),
    )
    sa.Table(
        "kv_login_attempt", metadata,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("ip", sa.String(64)),
        sa.Column("success", sa.Boolean, nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Index("ix_kv_login_attempt_username", "username", "at"),
    )
    sa.Table(
        "kv_password_reset", metadata,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("used_at", _TS),
    )
    sa.Table(
        "kv_favourite", metadata,
        sa.Column("user_id", sa.BigInteger, primary_key=True),
        sa.Column("entity", sa.String(64), primary_key=True),
        sa.Column("record_id", sa.BigInteger, primary_key=True),
        sa.Column("created_at", _TS, nullable=False),
    )
    sa.Table(
        "kv_recent", metadata,
        sa.Column("user_id", sa.BigInteger, primary_key=True),
        sa.Column("entity", sa.String(64), primary_key=True),
        sa.Column("record_id", sa.BigInteger, primary_key=True),
        sa.Column("viewed_at", _TS, nullable=False),
        sa.Index("ix_kv_recent_user", "user_id", "viewed_at"),
    )
    sa.Table(
        "kv_saved_search", metadata,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.BigInteger, nullable=False, index=True),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    sa.Table(
        "kv_stage_history", metadata,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("record_id", sa.BigInteger, nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("from_stage", sa.String(64)),
        sa.Column("to_stage", sa.String(64)),
        sa.Column("from_category", sa.String(32)),
        sa.Column("to_category", sa.String(32)),
        sa.Column("user_id", sa.BigInteger),
        sa.Column("at", _TS, nullable=False),
        sa.Column("seconds_in_previous", sa.BigInteger),
        sa.Index("ix_kv_stage_history_record", "entity", "record_id", "id"),
    )
    sa.Table(
        "kv_notification", metadata,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("entity", sa.String(64)),
        sa.Column("record_id", sa.BigInteger),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("read_at", _TS),
        sa.Index("ix_kv_notification_user", "user_id", "read_at", "id"),
    )
    sa.Table(
        "kv_state", metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("metadata_version", sa.BigInteger, nullable=False),
    )
    sa.Table(
        "kv_pack", metadata,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("installed_at", _TS, nullable=False),
        sa.Column("installed_by", sa.BigInteger),
        sa.Column("position", sa.Integer, nullable=False),
    )
    sa.Table(
        "kv_pack_remap", metadata,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("pack", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("record_id", sa.BigInteger, nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("old_value", sa.String(64)),
        sa.Column("new_value", sa.String(64)),
        sa.Column("at", _TS, nullable=False),
        sa.Index("ix_kv_pack_remap_pack", "pack", "entity", "record_id"),
    )
    sa.Table(
        "kv_revision", metadata,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("author_id", sa.BigInteger),
        sa.Column("at", _TS, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("fragment", sa.Text),
        sa.Column("diff", sa.Text, nullable=False),
        sa.Column("plan", sa.Text),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("target", sa.BigInteger),
    )


SYSTEM_TABLES = ("kv_user", "kv_team", "kv_audit", "kv_series_counter", "kv_schema_column",
                 "kv_archive", "kv_file", "kv_demo", "kv_user_role", "kv_user_team",
                 "kv_session", "kv_api_token", "kv_login_attempt", "kv_password_reset",
                 "kv_favourite", "kv_recent", "kv_saved_search", "kv_stage_history",
                 "kv_notification", "kv_state", "kv_pack", "kv_pack_remap", "kv_revision")


def entity_columns(entity: Entity) -> list[tuple[sa.Column, str]]:
    """Columns of an entity table with their storage signatures, system columns first."""
    columns: list[tuple[sa.Column, str]] = [
        (sa.Column("id", _ID, primary_key=True, autoincrement=True), "id"),
        (sa.Column("created_at", _TS, nullable=False), "datetime"),
        (sa.Column("created_by", sa.BigInteger), "ref:kv_user"),
        (sa.Column("updated_at", _TS, nullable=False), "datetime"),
        (sa.Column("updated_by", sa.BigInteger), "ref:kv_user"),
        (sa.Column("owner", sa.BigInteger), "ref:kv_user"),
        (sa.Column("team", sa.BigInteger), "ref:kv_team"),
        (sa.Column("version", sa.Integer, nullable=False, server_default="1"), "integer"),
        (sa.Column("archived_at", _TS), "datetime"),
    ]
    for field in entity.user_fields.values():
        for storage in field.field_type.columns(field):
            columns.append((sa.Column(storage.name, storage.type), storage.signature))
    return columns


def entity_indexes(entity: Entity, table: sa.Table) -> list[sa.Index]:
    t = entity.table_name
    indexes = [
        sa.Index(index_name("ix", t, "created_at"), table.c.created_at, table.c.id),
        sa.Index(index_name("ix", t, "updated_at"), table.c.updated_at, table.c.id),
        sa.Index(index_name("ix", t, "team"), table.c.team),
    ]
    if entity.stage_field and entity.stage_field in table.c:
        # "my records in this stage, newest first / within these dates": the list sales
        # and operations people open all day, answered by one range read (and, by its
        # first column, everything else asked by owner)
        indexes.append(sa.Index(index_name("ix", t, "owner", entity.stage_field),
                                table.c.owner, table.c[entity.stage_field],
                                table.c.created_at, table.c.id))
    else:
        indexes.append(sa.Index(index_name("ix", t, "owner"), table.c.owner))
    for field in entity.user_fields.values():
        for position, storage in enumerate(field.field_type.columns(field)):
            if storage.unique or (position == 0 and field.unique):
                indexes.append(sa.Index(index_name("uq", t, storage.name),
                                        table.c[storage.name], unique=True))
            elif storage.index:
                indexes.append(sa.Index(index_name("ix", t, storage.name), table.c[storage.name]))
    return indexes


_BUILT: dict[int, tuple[Model, sa.MetaData]] = {}


def build_tables(model: Model) -> sa.MetaData:
    """The full database shape the model asks for (built once per resolved model)."""
    cached = _BUILT.get(id(model))
    if cached is not None and cached[0] is model:
        return cached[1]
    metadata = _build_tables(model)
    if len(_BUILT) > 16:
        _BUILT.clear()
    _BUILT[id(model)] = (model, metadata)
    return metadata


def _build_tables(model: Model) -> sa.MetaData:
    metadata = sa.MetaData()
    system_tables(metadata)
    for entity in model.entities.values():
        # AUTOINCREMENT: SQLite must never hand a deleted record's id (and history) to a new one
        table = sa.Table(entity.table_name, metadata,
                         *[column for column, _ in entity_columns(entity)],
                         sqlite_autoincrement=True)
        entity_indexes(entity, table)  # an Index built on table columns attaches itself
    return metadata


def column_signatures(model: Model) -> dict[tuple[str, str], str]:
    """(table, column) → storage signature for every entity column."""
    return {(entity.table_name, column.name): signature
            for entity in model.entities.values()
            for column, signature in entity_columns(entity)}
