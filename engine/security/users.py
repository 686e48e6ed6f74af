"""Users, teams, sessions, API tokens, login throttling and password resets.

Everything lives in the database, so any web or worker process can check a session or
a token: nothing another process needs is kept in memory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass, field

import sqlalchemy as sa

from engine.records.actor import Actor
from engine.records.errors import RecordError, ValidationFailed
from engine.storage.database import WRITE, reading

from .passwords import dummy_verify, hash_password, password_problem, verify_password

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
LANGUAGES = ("en", "tr", "fa")
MAX_FAILURES = 5
FAILURE_WINDOW = dt.timedelta(minutes=15)
RESET_LIFETIME = dt.timedelta(hours=1)
SESSION_IDLE = dt.timedelta(hours=12)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LoginThrottled(RecordError):
    code, status = "throttled", 429


@dataclass
class User:
    id: int
    username: str
    email: str | None
    full_name: str | None
    language: str
    active: bool
    roles: list[str]
    teams: list[str]
    #: The ids of `teams`, lowest first, when read with them (None: `actor` looks them up).
    team_ids: list[int] | None = field(default=None, repr=False, compare=False)

    @property
    def display_name(self) -> str:
        return self.full_name or self.username


class Users:
    """The user directory of one Kervan instance."""

    def __init__(self, kervan):
        self.kervan = kervan

    def _t(self, name: str) -> sa.Table:
        return self.kervan.tables.tables[name]

    def _write(self):
        return self.kervan.db.connect().execution_options(**WRITE)

    # -- directory ----------------------------------------------------------------
    def create(self, username: str, password: str, roles: list[str], email: str | None = None,
               full_name: str | None = None, language: str = "en",
               teams: list[str] | None = None) -> User:
        username = (username or "").strip().lower()
        errors: dict[str, str] = {}
        if not USERNAME_RE.match(username):
            errors["username"] = ("must be 2–64 lower-case letters, digits, '.', '_' or '-', "
                                  "starting with a letter or digit")
        problem = password_problem(password or "", username)
        if problem:
            errors["password"] = problem
        known = self.kervan.permissions.role_keys()
        unknown = [r for r in roles if r not in known]
        if unknown:
            errors["roles"] = (f"unknown role(s) {', '.join(unknown)}; known roles: "
                               f"{', '.join(known) or 'none declared'}")
        if language not in LANGUAGES:
            errors["language"] = f"must be one of {', '.join(LANGUAGES)}"
        if email and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", email):
            errors["email"] = f"{email!r} is not a valid e-mail address"
        users = self._t("kv_user")
        with self._write() as conn, conn.begin():
            if not errors.get("username") and conn.execute(
                    sa.select(users.c.id).where(users.c.username == username)).first():
                errors["username"] = f"{username!r} is already taken"
            if errors:
                raise ValidationFailed("user", errors)
            user_id = conn.execute(users.insert().values(
                username=username, email=(email or None) and email.lower(), full_name=full_name,
                language=language, active=True, password_hash=hash_password(password),
                created_at=_now()).returning(users.c.id)).scalar_one()
            self._set_roles(conn, user_id, roles)
            self._set_teams(conn, user_id, teams or [])
        return self.get(user_id)

    def _set_roles(self, conn, user_id: int, roles: list[str]) -> None:
        table = self._t("kv_user_role")
        conn.execute(table.delete().where(table.c.user_id == user_id))
        if roles:
            conn.execute(table.insert(), [{"user_id": user_id, "role": r}
                                          for r in dict.fromkeys(roles)])

    def _set_teams(self, conn, user_id: int, team_keys: list[str]) -> None:
        teams, links = self._t("kv_team"), self._t("kv_user_team")
        conn.execute(links.delete().where(links.c.user_id == user_id))
        for key in dict.fromkeys(k.strip().lower() for k in team_keys if k.strip()):
            team_id = conn.execute(sa.select(teams.c.id).where(teams.c.key == key)).scalar()
            if team_id is None:
                team_id = conn.execute(teams.insert().values(key=key, name=key.title())
                                       .returning(teams.c.id)).scalar_one()
            conn.execute(links.insert().values(user_id=user_id, team_id=team_id))

    def update(self, user_id: int, *, roles: list[str] | None = None,
               teams: list[str] | None = None, active: bool | None = None,
               full_name: str | None = None, email: str | None = None,
               language: str | None = None) -> User:
        users = self._t("kv_user")
        values = {k: v for k, v in {"active": active, "full_name": full_name, "email": email,
                                    "language": language}.items() if v is not None}
        with self._write() as conn, conn.begin():
            if values:
                conn.execute(users.update().where(users.c.id == user_id).values(values))
            if roles is not None:
                self._set_roles(conn, user_id, roles)
            if teams is not None:
                self._set_teams(conn, user_id, teams)
            if active is False:  # a deactivated user's sessions and tokens die at once
                self._end_sessions(conn, user_id)
        return self.get(user_id)

    def set_password(self, user_id: int, password: str) -> None:
        user = self.get(user_id)
        problem = password_problem(password, user.username)
        if problem:
            raise ValidationFailed("user", {"password": problem})
        users = self._t("kv_user")
        with self._write() as conn, conn.begin():
            conn.execute(users.update().where(users.c.id == user_id)
                         .values(password_hash=hash_password(password)))

    def get(self, user_id: int) -> User:
        users = self._t("kv_user")
        with reading(self.kervan.db) as conn:
            found = self._read(conn, users.c.id == user_id)
        if not found:
            raise RecordError(f"user #{user_id} does not exist")
        return found[0][0]

    def by_username(self, username: str) -> User | None:
        users = self._t("kv_user")
        with reading(self.kervan.db) as conn:
            found = self._read(conn, users.c.username == (username or "").strip().lower())
        return found[0][0] if found else None

    def all(self) -> list[User]:
        with reading(self.kervan.db) as conn:
            return [user for user, _row in self._read(conn, sa.true())]

    def _read(self, conn, where, via: sa.Table | None = None,
              via_columns: tuple[str, ...] = ()) -> list[tuple[User, sa.Row]]:
        """Users matching `where`, by username, each with its roles, team keys and team ids,
        in one query: a row per role (one with no role when it has none) united with a row
        per team. `via` is a table joined on its `user_id` (a session or an API token),
        which `where` may test; its `via_columns` come with each user as `via_<name>`."""
        users, roles_t, links, teams = (self._t("kv_user"), self._t("kv_user_role"),
                                        self._t("kv_user_team"), self._t("kv_team"))
        source = users if via is None else via.join(users, users.c.id == via.c.user_id)
        head = [users.c.id, users.c.username, users.c.email, users.c.full_name,
                users.c.language, users.c.active,
                *[via.c[name].label(f"via_{name}") for name in via_columns]]
        stmt = sa.union_all(
            sa.select(*head, sa.literal_column("0").label("kind"),
                      roles_t.c.role.label("value"), sa.null().label("team_id"))
            .select_from(source.outerjoin(roles_t, roles_t.c.user_id == users.c.id))
            .where(where),
            sa.select(*head, sa.literal_column("1"), teams.c.key, teams.c.id)
            .select_from(source.join(links, links.c.user_id == users.c.id)
                         .join(teams, teams.c.id == links.c.team_id))
            .where(where))
        stmt = stmt.order_by(*[stmt.selected_columns[k] for k in ("username", "kind", "value")])
        found: dict[int, tuple[User, sa.Row]] = {}
        for row in conn.execute(stmt):
            if row.id not in found:
                found[row.id] = (User(id=row.id, username=row.username, email=row.email,
                                      full_name=row.full_name, language=row.language or "en",
                                      active=bool(row.active), roles=[], teams=[],
                                      team_ids=[]), row)
            user = found[row.id][0]
            if row.kind == 0 and row.value is not None:
                user.roles.append(row.value)
            elif row.kind == 1:
                user.teams.append(row.value)
                user.team_ids.append(row.team_id)
        for user, _row in found.values():
            user.team_ids.sort()
        return list(found.values())

    def actor(self, user: User) -> Actor:
        team_ids = user.team_ids
        if team_ids is None:
            links = self._t("kv_user_team")
            with reading(self.kervan.db) as conn:
                team_ids = conn.execute(sa.select(links.c.team_id).where(
                    links.c.user_id == user.id).order_by(links.c.team_id)).scalars().all()
        return Actor(user_id=user.id, username=user.username, roles=frozenset(user.roles),
                     team_id=team_ids[0] if team_ids else None, team_ids=frozenset(team_ids),
                     language=user.language)

    # -- authentication -------------------------------------------------------------
    def authenticate(self, username: str, password: str, ip: str | None = None) -> User:
        """Check a password; repeated failures lock the username for a while."""
        username = (username or "").strip().lower()
        attempts = self._t("kv_login_attempt")
        since = _now() - FAILURE_WINDOW
        with self._write() as conn, conn.begin():
            failures = conn.execute(
                sa.select(attempts.c.at).where(attempts.c.username == username,
                                               attempts.c.success.is_(False),
                                               attempts.c.at >= since)
                .order_by(attempts.c.at.desc())).scalars().all()
            if len(failures) >= MAX_FAILURES:
                oldest = min(_aware(a) for a in failures[:MAX_FAILURES])
                wait = max(1, int(((oldest + FAILURE_WINDOW) - _now()).total_seconds() // 60) + 1)
                raise LoginThrottled(f"too many failed sign-in attempts for {username}; try "
                                     f"again in {wait} minute(s) or reset your password")
            user = self.by_username(username)
            users = self._t("kv_user")
            stored = conn.execute(sa.select(users.c.password_hash).where(
                users.c.username == username)).scalar() if user else None
            if user is None:
                dummy_verify()
            ok = user is not None and user.active and verify_password(stored, password)
            conn.execute(attempts.insert().values(username=username, ip=ip, success=ok,
                                                  at=_now()))
        if not ok:
            raise RecordError("wrong username or password, or the account is inactive")
        return user

    def start_session(self, user: User, ip: str | None = None) -> str:
        token = secrets.token_urlsafe(32)
        sessions = self._t("kv_session")
        with self._write() as conn, conn.begin():
            conn.execute(sessions.insert().values(token_hash=_hash(token), user_id=user.id,
                                                  created_at=_now(), last_seen_at=_now(), ip=ip))
        return token

    def session_user(self, token: str | None) -> User | None:
        """The active user of a live session, or None: one query (and a write at most every
        five minutes, to keep the session alive)."""
        if not token:
            return None
        sessions = self._t("kv_session")
        with reading(self.kervan.db) as conn:
            found = self._read(conn, sa.and_(sessions.c.token_hash == _hash(token),
                                             sessions.c.ended_at.is_(None)),
                               via=sessions, via_columns=("id", "created_at", "last_seen_at"))
        if not found:
            return None
        user, row = found[0]
        if _aware(row.via_last_seen_at or row.via_created_at) < _now() - SESSION_IDLE:
            return None
        if not user.active:
            return None
        if _aware(row.via_last_seen_at) < _now() - dt.timedelta(minutes=5):
            with self._write() as conn, conn.begin():
                conn.execute(sessions.update().where(sessions.c.id == row.via_id)
                             .values(last_seen_at=_now()))
        return user

    def end_session(self, token: str | None) -> None:
        if not token:
            return
        sessions = self._t("kv_session")
        with self._write() as conn, conn.begin():
            conn.execute(sessions.update().where(sessions.c.token_hash == _hash(token))
                         .values(ended_at=_now()))

    def _end_sessions(self, conn, user_id: int) -> None:
        sessions = self._t("kv_session")
        conn.execute(sessions.update().where(sessions.c.user_id == user_id,
                                             sessions.c.ended_at.is_(None))
                     .values(ended_at=_now()))

    # -- API tokens -------------------------------------------------------------------
    def create_token(self, user: User, label: str | None = None) -> str:
        token = "kv_" + secrets.token_urlsafe(32)
        tokens = self._t("kv_api_token")
        with self._write() as conn, conn.begin():
            conn.execute(tokens.insert().values(token_hash=_hash(token), prefix=token[:10],
                                                user_id=user.id, label=label,
                                                created_at=_now()))
        return token

    def token_user(self, token: str | None) -> User | None:
        """The active user of an API token that is not revoked, or None: one query."""
        if not token:
            return None
        tokens = self._t("kv_api_token")
        with reading(self.kervan.db) as conn:
            found = self._read(conn, sa.and_(tokens.c.token_hash == _hash(token),
                                             tokens.c.revoked_at.is_(None)), via=tokens)
        if not found:
            return None
        user = found[0][0]
        return user if user.active else None

    def revoke_token(self, token_or_prefix: str) -> int:
        tokens = self._t("kv_api_token")
        with self._write() as conn, conn.begin():
            result = conn.execute(tokens.update().where(
                sa.or_(tokens.c.token_hash == _hash(token_or_prefix),
                       tokens.c.prefix == token_or_prefix[:10]),
                tokens.c.revoked_at.is_(None)).values(revoked_at=_now()))
            return result.rowcount

    # -- password reset ---------------------------------------------------------------
    def create_reset(self, user: User) -> str:
        token = secrets.token_urlsafe(32)
        resets = self._t("kv_password_reset")
        with self._write() as conn, conn.begin():
            conn.execute(resets.insert().values(token_hash=_hash(token), user_id=user.id,
                                                created_at=_now(),
                                                expires_at=_now() + RESET_LIFETIME))
        return token

    def reset_password(self, token: str, password: str) -> User:
        """Use a reset token once to set a new password; ends the user's sessions."""
        resets, users = self._t("kv_password_reset"), self._t("kv_user")
        with self._write() as conn, conn.begin():
            row = conn.execute(sa.select(resets).where(resets.c.token_hash == _hash(token or "")
                                                       )).mappings().first()
            if row is None or row["used_at"] is not None or _aware(row["expires_at"]) < _now():
                raise RecordError("this password reset link is invalid, used or expired; "
                                  "ask for a new one")
            user = self.get(row["user_id"])
            problem = password_problem(password or "", user.username)
            if problem:
                raise ValidationFailed("user", {"password": problem})
            conn.execute(resets.update().where(resets.c.id == row["id"]).values(used_at=_now()))
            conn.execute(users.update().where(users.c.id == user.id)
                         .values(password_hash=hash_password(password)))
            self._end_sessions(conn, user.id)
            attempts = self._t("kv_login_attempt")
            conn.execute(attempts.delete().where(attempts.c.username == user.username,
                                                 attempts.c.success.is_(False)))
        return user


def _aware(moment: dt.datetime | None) -> dt.datetime:
    if moment is None:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
