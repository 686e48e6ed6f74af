"""Hand-written SQL: the floor each engine request is compared with.

A floor statement returns the same rows as the engine (same filters, order and page size)
written the way a person who knows the schema would write it: no NULLS LAST on columns
that cannot be NULL, a row-value comparison for the keyset, only the conditions that
matter.  Statements use `:name` parameters; values are made ready for the driver here.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from engine.definitions.model import Entity
from engine.fields.builtin import normalise_digits, searched_digits
from engine.i18n.text import DIGIT_FOLDS, LETTER_FOLDS
from engine.query.listing import COUNT_CAP

#: System columns that are never NULL, so an index serves either direction as it is.
NOT_NULL = {"id", "created_at", "updated_at", "version"}


class Floor:
    """Floor SQL for one database dialect."""

    def __init__(self, dialect: str, raw=None):
        from sqlalchemy.dialects import postgresql, sqlite

        self.dialect = dialect
        #: table → how its search index is reached, read from the database's own schema
        #: (the expression a GIN index covers, or the FTS5 table beside it)
        self.search_index: dict[str, str] = _search_indexes(raw) if raw else {}
        module = sqlite if dialect == "sqlite" else postgresql
        #: an identifier quoted when the database needs it (`case`, `order` are keywords)
        self.q = module.dialect().identifier_preparer.quote

    # -- values --------------------------------------------------------------------------
    def value(self, value):
        """A Python value as the driver stores it (SQLite keeps moments as text)."""
        if self.dialect == "sqlite":
            if isinstance(value, dt.datetime):
                if value.tzinfo is not None:
                    value = value.astimezone(dt.UTC).replace(tzinfo=None)
                return value.strftime("%Y-%m-%d %H:%M:%S.%f")
            if isinstance(value, dt.date):
                return value.isoformat()
            if isinstance(value, Decimal):
                return float(value)
            if isinstance(value, list | dict):
                return json.dumps(value, ensure_ascii=False)
            return value
        if isinstance(value, list | dict):
            from psycopg.types.json import Jsonb

            return Jsonb(value)
        return value

    # -- pieces --------------------------------------------------------------------------
    def folded(self, column: str) -> str:
        """The column folded for search the way engine/i18n/text.py folds it (Turkish i's
        and capitals, Arabic yeh/kaf; digits too on PostgreSQL), then lowered."""
        if self.dialect == "sqlite":
            for source, target in LETTER_FOLDS:
                column = f"replace({column}, '{source}', '{target}')"
            return f"lower({column})"
        pairs = LETTER_FOLDS + DIGIT_FOLDS
        source, target = "".join(s for s, _ in pairs), "".join(t for _, t in pairs)
        return f"lower(translate({column}, '{source}', '{target}'))"

    def fold(self, text: str) -> str:
        """Typed text folded as the database folds a column, done once here instead of
        in SQL (SQLite's lower() only lowers ASCII letters)."""
        if self.dialect == "sqlite":
            for source, target in LETTER_FOLDS:
                text = text.replace(source, target)
            return "".join(c.lower() if c.isascii() else c for c in text)
        pairs = LETTER_FOLDS + DIGIT_FOLDS
        return text.translate(str.maketrans(dict(pairs))).lower()

    def like(self, column: str, name: str) -> str:
        """Case-insensitive containment, as the engine's search matches text."""
        return f"{self.folded(column)} LIKE :{name} ESCAPE '\\'"

    def order(self, entity: Entity, sort: str | None = None) -> str:
        """ORDER BY for `field,-other`, with the id tiebreaker; NULLS LAST only where a
        column can hold NULL (the engine's order: NULLs last in every direction)."""
        spec = sort or entity.list_spec.get("default_sort") or "-created_at"
        items = [p.strip() for p in spec.split(",") if p.strip()]
        parts = []
        for item in items:
            fld = entity.fields[item.lstrip("-")]
            column = fld.field_type.sort_column(fld)
            direction = "DESC" if item.startswith("-") else "ASC"
            nulls = "" if column in NOT_NULL else " NULLS LAST"
            parts.append(f"{self.q(column)} {direction}{nulls}")
        if not any(p.startswith("id ") for p in parts):  # the tiebreaker follows the first key
            parts.append("id DESC" if items[0].startswith("-") else "id ASC")
        return ", ".join(parts)

    def search(self, entity: Entity, text: str) -> tuple[str, dict]:
        """The engine's search semantics (contains, phones by digits), one OR per field,
        reached through the table's search index for terms of three characters or more."""
        exact, params = self._search_exact(entity, text)
        looked_up = self._search_lookup(entity, text, params)
        return (f"{looked_up} AND {exact}" if looked_up else exact), params

    def _search_lookup(self, entity: Entity, text: str, params: dict) -> str | None:
        index = self.search_index.get(entity.table_name)
        text = text.strip()
        local, at, _domain = text.partition("@")  # an address: its name part is the rare one
        terms = [("text", local if at and len(local) >= 3 else text)]
        digits = searched_digits(text)
        if digits and digits != text:
            terms.append(("digits", digits))
        if index is None or any(len(t) < 3 for _, t in terms):
            return None
        likes = []
        for n, (kind, term) in enumerate(terms):
            params[f"sx{n}"] = (self.fold(term) if kind == "text" else term)
            if self.dialect == "sqlite":  # FTS5 LIKE: no ESCAPE clause, folded as stored
                params[f"sx{n}"] = "%" + params[f"sx{n}"] + "%"
                likes.append(f"SELECT rowid FROM {index} WHERE doc LIKE :sx{n}")
            else:
                escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                params[f"sx{n}"] = "%" + (self.fold(escaped) if kind == "text" else escaped) + "%"
                likes.append(f"({index}) LIKE :sx{n}")
        if self.dialect == "sqlite":
            return "id IN (" + " UNION ".join(likes) + ")"
        return "(" + " OR ".join(likes) + ")"

    def _search_exact(self, entity: Entity, text: str) -> tuple[str, dict]:
        text = text.strip()
        digits = searched_digits(text)
        parts, params = [], {}
        for key in entity.search_fields:
            fld = entity.fields.get(key)
            if fld is None or not fld.stored:
                continue
            if fld.type == "phone":
                if digits:
                    parts.append(f"{self.q(key + '__digits')} LIKE :digits")
                    params["digits"] = f"%{digits}%"
            elif fld.field_type.textual:
                parts.append(self.like(self.q(key), "text"))
                escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                params["text"] = self.fold(f"%{escaped}%")
            elif fld.type == "integer" and normalise_digits(text).isdigit():
                parts.append(f"{self.q(key)} = :number")
                params["number"] = int(normalise_digits(text))
        return "(" + " OR ".join(parts or ["1 = 0"]) + ")", params

    # -- statements ----------------------------------------------------------------------
    def page(self, table: str, where: str, order: str, size: int) -> str:
        return (f"SELECT * FROM {self.q(table)} WHERE {where} ORDER BY {order} "
                f"LIMIT {size + 1}")

    def count(self, table: str, where: str) -> str:
        """The capped count a list shows (“10,000+” beyond the cap)."""
        return (f"SELECT count(*) FROM (SELECT 1 FROM {self.q(table)} WHERE {where} "
                f"LIMIT {COUNT_CAP + 1}) AS capped")

    def user_with_roles(self, source: str, key: str) -> str:
        """Who is asking, with roles and teams, in one query (`source` holds `user_id`)."""
        agg = "group_concat" if self.dialect == "sqlite" else "string_agg"
        sep = "','"
        return (f"SELECT u.id, u.username, u.full_name, u.language, u.active, "
                f"(SELECT {agg}(r.role, {sep}) FROM kv_user_role r WHERE r.user_id = u.id) "
                f"AS roles, (SELECT {agg}(CAST(t.team_id AS TEXT), {sep}) FROM kv_user_team t "
                f"WHERE t.user_id = u.id) AS teams FROM {source} s JOIN kv_user u "
                f"ON u.id = s.user_id WHERE s.token_hash = :{key} AND u.active")

    def token_user(self) -> str:
        return self.user_with_roles("kv_api_token", "token_hash") + " AND s.revoked_at IS NULL"

    def session_user(self) -> str:
        return self.user_with_roles("kv_session", "session_hash") + " AND s.ended_at IS NULL"


def _search_indexes(raw) -> dict[str, str]:
    """Search indexes as the database describes them."""
    if raw.dialect == "sqlite":
        names = [r[0] for r in raw.rows(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'kv_search_%' "
            "AND sql LIKE 'CREATE VIRTUAL TABLE%'")]
        return {name.removeprefix("kv_search_"): name for name in names}
    found = {}
    for table, definition in raw.rows("SELECT tablename, indexdef FROM pg_indexes "
                                      "WHERE left(indexname, 3) = 'sx_'"):
        start = definition.index("USING gin (") + len("USING gin (")
        found[table] = definition[start:definition.rindex(" gin_trgm_ops)")]
    return found
