"""Password hashing (argon2) and the password policy."""

from __future__ import annotations

import os
from functools import cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 8
# Cost of a password hash; lower only for test suites (KERVAN_ARGON2_TIME_COST / _MEMORY_KIB).
_hasher = PasswordHasher(
    time_cost=int(os.environ.get("KERVAN_ARGON2_TIME_COST", "3")),
    memory_cost=int(os.environ.get("KERVAN_ARGON2_MEMORY_KIB", "65536")))


@cache
def common_passwords() -> frozenset[str]:
    text = resources.files("engine.security").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


def password_problem(password: str, username: str | None = None) -> str | None:
    """Why a password is not acceptable, or None."""
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    lowered = password.lower()
    if lowered in common_passwords():
        return "is one of the most common passwords; choose another"
    if username and lowered == username.lower():
        return "must not be the username"
    return None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    if not stored:
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def dummy_verify() -> None:
    """Spend the time a real check takes, so unknown usernames are not revealed by timing."""
    verify_password(_DUMMY, "not the password")


_DUMMY = _hasher.hash("kervan-dummy-password")
