"""Number series: unique, gapless numbers such as T-2026-0001."""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from engine.definitions.model import Series

_COUNTER = sa.table("kv_series_counter", sa.column("series"), sa.column("period"),
                    sa.column("last_value"))


def period_of(series: Series, when: dt.datetime) -> str:
    return {"yearly": f"{when:%Y}", "monthly": f"{when:%Y-%m}"}.get(series.reset, "all")


def format_number(pattern: str, when: dt.datetime, value: int) -> str:
    """Fill a pattern's date tokens and counter."""

    def fill(match: re.Match) -> str:
        token = match.group(1)
        if set(token) == {"#"}:
            return str(value).zfill(len(token))
        return {"YYYY": f"{when:%Y}", "YY": f"{when:%y}", "MM": f"{when:%m}",
                "DD": f"{when:%d}"}[token]

    return re.sub(r"{([^{}]+)}", fill, pattern)


def next_number(conn: sa.Connection, series: Series, when: dt.datetime) -> str:
    """Take the next number inside the caller's write transaction.

    The counter row is updated in the same transaction as the record, so a failed
    insert gives its number back (gapless); PostgreSQL's row lock and SQLite's
    BEGIN IMMEDIATE make concurrent writers wait their turn (unique).
    """
    return next_numbers(conn, series, when, 1)[0]


def next_numbers(conn: sa.Connection, series: Series, when: dt.datetime, count: int) -> list[str]:
    """Take `count` consecutive numbers at once (the bulk path), with the same guarantees."""
    if count <= 0:
        return []
    period = period_of(series, when)
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(
        dialect.insert(_COUNTER)
        .values(series=series.key, period=period, last_value=series.start - 1)
        .on_conflict_do_nothing()
    )
    last = conn.execute(
        sa.update(_COUNTER)
        .where(_COUNTER.c.series == series.key, _COUNTER.c.period == period)
        .values(last_value=_COUNTER.c.last_value + count)
        .returning(_COUNTER.c.last_value)
    ).scalar_one()
    return [format_number(series.pattern, when, value) for value in range(last - count + 1,
                                                                           last + 1)]
