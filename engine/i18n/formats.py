"""Numbers, money and dates as each language writes them. Pure functions: the caller
says which language (engine.web.display picks the user's)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from babel.dates import format_date as format_babel_date
from babel.numbers import format_decimal, get_currency_precision, get_currency_symbol

from .jalali import MONTHS, WEEKDAYS, WEEKDAYS_SHORT, jalali_text, month_name, to_jalali
from .jalali import parse_date as parse_jalali_date
from .jalali import parse_datetime as parse_jalali_datetime
from .numerals import ascii_digits, localise_digits

LOCALES = {"en": "en_US", "tr": "tr_TR", "fa": "fa_IR"}
#: The Turkish lira sign in every language (CLDR writes "TRY" outside Turkish).
SYMBOLS = {"TRY": "₺"}
#: How Iranians name currencies after an amount: ۱۲٬۵۰۰٬۰۰۰ ریال.
PERSIAN_CURRENCY_NAMES = {"IRR": "ریال", "IRT": "تومان", "USD": "دلار", "EUR": "یورو",
                          "TRY": "لیر", "GBP": "پوند", "AED": "درهم"}
PERCENT = {"en": "{}%", "tr": "%{}", "fa": "{}٪"}
DATE_PATTERNS = {"en": "%d %b %Y", "tr": "%d.%m.%Y"}


def _locale(language: str) -> str:
    return LOCALES.get(language, LOCALES["en"])


def format_number(value, language: str, places: int | None = None) -> str:
    """1234.5 → `1,234.5` (en), `1.234,5` (tr), `۱٬۲۳۴٫۵` (fa)."""
    if places is not None:
        value = Decimal(str(value)).quantize(Decimal(1).scaleb(-places))
        pattern = "#,##0" + ("." + "0" * places if places else "")
    else:
        pattern = None
    text = format_decimal(value, format=pattern, locale=_locale(language),
                          numbering_system="default")
    return localise_digits(text, language)


def format_percent(value, language: str) -> str:
    """A percentage stored as 12.5 → `12.5%` (en), `%12,5` (tr), `۱۲٫۵٪` (fa)."""
    return PERCENT.get(language, PERCENT["en"]).format(format_number(value, language))


def format_money(amount, currency: str | None, language: str, toman: bool = False) -> str:
    """An amount in its currency as the reader writes it: `₺1.234,56` (tr),
    `۱۲٬۵۰۰٬۰۰۰ ریال` (fa; with `toman`, rials are shown divided by ten as تومان)."""
    currency = (currency or "").upper()
    if language == "fa":
        if currency == "IRR" and toman:
            amount, currency = Decimal(str(amount)) / 10, "IRT"
        places = 0 if currency == "IRT" else get_currency_precision(currency)
        name = PERSIAN_CURRENCY_NAMES.get(currency, currency)
        return f"{format_number(amount, language, places)} {name}"
    number = format_number(amount, language, get_currency_precision(currency))
    symbol = SYMBOLS.get(currency) or get_currency_symbol(currency, _locale(language))
    if symbol.isalpha():  # an ISO code reads best after the amount: 12,500,000 IRR
        return f"{number}\u00a0{symbol}"
    return f"{symbol}{number}"


def format_date(value: dt.date | None, language: str) -> str:
    """`22 Nov 2026` (en), `22.11.2026` (tr), `۱۴۰۵/۰۹/۰۱` (fa, Jalali)."""
    if value is None:
        return ""
    if language == "fa":
        return localise_digits(jalali_text(value), language)
    return value.strftime(DATE_PATTERNS.get(language, DATE_PATTERNS["en"]))


def format_time(value: dt.time | dt.datetime, language: str) -> str:
    return localise_digits(f"{value:%H:%M}", language)


def format_datetime(local: dt.datetime | None, language: str) -> str:
    """A moment already in the company time zone: date then 24-hour time."""
    if local is None:
        return ""
    return f"{format_date(local.date(), language)} {format_time(local, language)}"


def date_input_value(value, language: str) -> str:
    """What a date input shows: ISO for the browser's date picker, Jalali text in fa."""
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            return value  # as typed, to be corrected
    if not isinstance(value, dt.date):
        return ""
    return jalali_text(value) if language == "fa" else value.isoformat()


def datetime_input_value(local, language: str) -> str:
    """What a date-and-time input shows, for a moment already in the company time zone."""
    if not isinstance(local, dt.datetime):
        return "" if local is None else str(local)
    if language == "fa":
        return f"{jalali_text(local.date())} {local:%H:%M}"
    return local.strftime("%Y-%m-%dT%H:%M")


def month_title(value: dt.date, language: str) -> str:
    """The month a date falls in: `November 2026`, `Kasım 2026`, `آذر ۱۴۰۵` (Jalali)."""
    if language == "fa":
        return localise_digits(month_name(value), language)
    return format_babel_date(value, "LLLL y", locale=_locale(language))


def weekday_name(value: dt.date, language: str, short: bool = False) -> str:
    """`Sunday` / `Pazar` / `یک‌شنبه` (`Sun` / `Paz` / `ی` when short)."""
    if language == "fa":
        return (WEEKDAYS_SHORT if short else WEEKDAYS)[value.weekday()]
    return format_babel_date(value, "EEE" if short else "EEEE", locale=_locale(language))


def day_label(value: dt.date, language: str) -> str:
    """A calendar cell's day: the day of the month, with the month's name on its first day
    (Jalali months in Persian)."""
    if language == "fa":
        j = to_jalali(value)
        text = f"{j.day} {MONTHS[j.month - 1]}" if j.day == 1 else str(j.day)
        return localise_digits(text, language)
    if value.day == 1:
        return format_babel_date(value, "d MMM", locale=_locale(language))
    return str(value.day)


_TURKISH_GROUPED = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+$")


def number_input_value(value, language: str) -> str:
    """A stored number as a form shows it for editing: `1234,5` in Turkish, else `1234.5`."""
    if value is None or value == "":
        return ""
    text = str(value)
    if language == "tr" and isinstance(value, int | float | Decimal):
        return text.replace(".", ",")
    return text


def read_number_input(text: str, language: str) -> str:
    """A typed number with the reader's separators removed, as the field types parse it:
    `1.234,56` (tr) and `1,234.56` (en) both become `1234.56`; Persian and Arabic digits and
    separators are read by the field types themselves."""
    text = ascii_digits(text.strip()).replace("\u00a0", "").replace(" ", "")
    if language == "tr":
        if "," in text:
            return text.replace(".", "").replace(",", ".")
        if _TURKISH_GROUPED.match(text):
            return text.replace(".", "")
        return text
    if language == "en":
        return text.replace(",", "")
    return text.replace("٬", "").replace(",", "").replace("٫", ".")


def read_date_input(kind: str, text: str, language: str):
    """A typed date (`kind` "date") or date and time ("datetime") as the field types read
    it. Persian screens take Jalali dates in either digit set (`1405/09/01`, `۱۴۰۵/۰۹/۰۱
    ۱۴:۳۰`) and give a Gregorian `date` or a naive local `datetime`; anything else, and
    every other language, passes the text through for the field type to judge."""
    if language != "fa":
        return text
    try:
        parsed = parse_jalali_datetime(text) if kind == "datetime" else None
        if parsed is None:
            parsed = parse_jalali_date(text)
    except ValueError:
        return text  # the field type reports it as a date it cannot read
    if parsed is None:
        return text
    if kind == "datetime" and not isinstance(parsed, dt.datetime):
        return dt.datetime.combine(parsed, dt.time())
    return parsed
