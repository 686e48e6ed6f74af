"""The Solar Hijri (Jalali) calendar for Persian screens, built on jdatetime."""

from __future__ import annotations

import datetime as dt
import re

import jdatetime

from .numerals import ascii_digits

MONTHS = ("فروردین", "اردیبهشت", "خرداد", "تیر", "مرداد", "شهریور",
          "مهر", "آبان", "آذر", "دی", "بهمن", "اسفند")
#: Monday first, like `date.weekday()`.
WEEKDAYS = ("دوشنبه", "سه\u200cشنبه", "چهارشنبه", "پنج\u200cشنبه", "جمعه", "شنبه",
            "یک\u200cشنبه")
WEEKDAYS_SHORT = ("د", "س", "چ", "پ", "ج", "ش", "ی")

_DATE = re.compile(r"^\s*(\d{4})\s*[/\-.]\s*(\d{1,2})\s*[/\-.]\s*(\d{1,2})\s*$")
_DATETIME = re.compile(r"^\s*(\d{4})\s*[/\-.]\s*(\d{1,2})\s*[/\-.]\s*(\d{1,2})"
                       r"(?:\s+|\s*T\s*|\s*،\s*)(\d{1,2})\s*:\s*(\d{2})(?:\s*:\s*(\d{2}))?\s*$")
#: Years below this are Jalali when typed on a Persian screen (1405 is 2026).
GREGORIAN_FROM = 1700


def to_jalali(value: dt.date) -> jdatetime.date:
    """The Jalali date of a Gregorian date."""
    return jdatetime.date.fromgregorian(date=value)


def jalali_text(value: dt.date) -> str:
    """`1405/09/01` (ASCII digits; the caller localises them for the screen)."""
    j = to_jalali(value)
    return f"{j.year:04d}/{j.month:02d}/{j.day:02d}"


def month_name(value: dt.date) -> str:
    """The Jalali month and year a Gregorian date falls in: `آذر 1405`."""
    j = to_jalali(value)
    return f"{MONTHS[j.month - 1]} {j.year}"


def _gregorian(year: int, month: int, day: int) -> dt.date:
    if year >= GREGORIAN_FROM:
        return dt.date(year, month, day)
    try:
        return jdatetime.date(year, month, day).togregorian()
    except ValueError as exc:
        raise ValueError(f"{year}/{month}/{day} is not a Jalali date") from exc


def parse_date(text: str) -> dt.date | None:
    """A date typed on a Persian screen: `1405/09/01` in either digit set (a Gregorian
    `2026-11-22` is accepted too); None when the text is not shaped like a date.
    Raises ValueError for a date-shaped text that names no real day."""
    match = _DATE.match(ascii_digits(text))
    if not match:
        return None
    return _gregorian(*(int(part) for part in match.groups()))


def parse_datetime(text: str) -> dt.datetime | None:
    """A date and time typed on a Persian screen (`1405/09/01 14:30`), naive local time."""
    match = _DATETIME.match(ascii_digits(text))
    if not match:
        return None
    year, month, day, hour, minute, second = (int(p) if p else 0 for p in match.groups())
    return dt.datetime.combine(_gregorian(year, month, day), dt.time(hour, minute, second))
