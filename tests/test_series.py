"""Number series: formatted, reset by period, unique and gapless under concurrency."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from engine.definitions.model import Series
from engine.definitions.resolve import pattern_problems
from engine.records.series import format_number, period_of


def test_format_and_periods():
    when = dt.datetime(2026, 3, 9, 10, 0)
    assert format_number("T-{YYYY}-{####}", when, 7) == "T-2026-0007"
    assert format_number("{YY}{MM}/{###}", when, 12345) == "2603/12345"
    yearly = Series("q", "quote", "number", "T-{YYYY}-{####}", reset="yearly")
    monthly = Series("q", "quote", "number", "T-{YYYY}{MM}-{####}", reset="monthly")
    never = Series("q", "quote", "number", "T-{#####}", reset="never")
    assert (period_of(yearly, when), period_of(monthly, when), period_of(never, when)) == (
        "2026", "2026-03", "all")


@pytest.mark.parametrize("pattern, reset, message", [
    ("T-{####}", "yearly", "a yearly series needs {YYYY}"),
    ("T-{YYYY}", "yearly", "needs exactly one counter"),
    ("T-{YYYY}-{NNNN}", "yearly", "unknown tokens: {NNNN}"),
    ("T-{YYYY-{####}", "yearly", "unbalanced brace"),
    ("T-{YYYY}-{####}", "monthly", "a monthly series needs the year and {MM}"),
])
def test_bad_patterns_are_explained(pattern, reset, message):
    assert any(message in p for p in pattern_problems(pattern, reset))


def test_parallel_creations_get_distinct_consecutive_numbers(shop, backend):
    """50 writers on PostgreSQL (row lock), 10 threads on SQLite (BEGIN IMMEDIATE)."""
    writers = 50 if backend == "postgresql" else 10
    customer = shop.records.create("customer", {"name": "Paralel", "kind": "person",
                                                "email": "p@example.com"})
    numbers: list[str] = []
    failures: list[BaseException] = []
    start = threading.Barrier(writers)

    def create():
        try:
            start.wait()
            order = shop.records.create("order", {"customer": customer["id"]})
            numbers.append(order["number"])
        except BaseException as exc:  # reported below with the numbers we got
            failures.append(exc)

    threads = [threading.Thread(target=create) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    year = dt.datetime.now().year
    assert sorted(numbers) == [f"S-{year}-{n:04d}" for n in range(1, writers + 1)]
