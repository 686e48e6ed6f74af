"""Which days a calendar screen shows, in the reader's calendar: Gregorian months with
Monday-first weeks (Turkish, English), Jalali months with Saturday-first weeks (Persian)."""

from __future__ import annotations

import calendar as gregorian
import datetime as dt
from dataclasses import dataclass

import jdatetime

from .jalali import to_jalali

#: The first day of the week, as `date.weekday()` numbers it (Monday is 0).
WEEK_STARTS = {"fa": 5}


@dataclass(frozen=True)
class CalendarRange:
    """The days shown (`start` to `end`, end excluded) and where «previous»/«next» lead."""

    start: dt.date
    end: dt.date
    previous: dt.date
    following: dt.date

    @property
    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days)]


def week_start(day: dt.date, language: str) -> dt.date:
    """The first day of the week `day` is in."""
    return day - dt.timedelta(days=(day.weekday() - WEEK_STARTS.get(language, 0)) % 7)


def month_bounds(day: dt.date, language: str) -> tuple[dt.date, dt.date]:
    """The first and last day of the month `day` is in (a Jalali month in Persian)."""
    if language == "fa":
        j = to_jalali(day)
        first = jdatetime.date(j.year, j.month, 1)
        after = jdatetime.date(j.year + (j.month == 12), j.month % 12 + 1, 1)
        return first.togregorian(), after.togregorian() - dt.timedelta(days=1)
    return day.replace(day=1), day.replace(day=gregorian.monthrange(day.year, day.month)[1])


def calendar_range(view: str, day: dt.date, language: str) -> CalendarRange:
    """The days of a `day`, `week` or `month` view around `day`, with whole weeks in a month."""
    if view == "day":
        step = dt.timedelta(days=1)
        return CalendarRange(day, day + step, day - step, day + step)
    if view == "week":
        start = week_start(day, language)
        step = dt.timedelta(days=7)
        return CalendarRange(start, start + step, day - step, day + step)
    first, last = month_bounds(day, language)
    start = week_start(first, language)
    end = week_start(last, language) + dt.timedelta(days=7)
    previous = month_bounds(first - dt.timedelta(days=1), language)[0]
    following = last + dt.timedelta(days=1)
    return CalendarRange(start, end, previous, following)
