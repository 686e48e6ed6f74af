"""Digits of the three scripts: Persian digits on screen, any digits accepted on input."""

from __future__ import annotations

ASCII_DIGITS = "0123456789"
PERSIAN_DIGITS = "۰۱۲۳۴۵۶۷۸۹"
ARABIC_INDIC_DIGITS = "٠١٢٣٤٥٦٧٨٩"

_TO_ASCII = str.maketrans(PERSIAN_DIGITS + ARABIC_INDIC_DIGITS, ASCII_DIGITS * 2)
_TO_PERSIAN = str.maketrans(ASCII_DIGITS, PERSIAN_DIGITS)

#: Languages whose screens show their own digits.
NATIVE_DIGITS = {"fa": _TO_PERSIAN}


def ascii_digits(text: str) -> str:
    """Persian and Arabic-Indic digits as ASCII digits; everything else unchanged."""
    return text.translate(_TO_ASCII)


def persian_digits(text: str) -> str:
    """ASCII digits as Persian digits (۰–۹); everything else unchanged."""
    return text.translate(_TO_PERSIAN)


def localise_digits(text, language: str) -> str:
    """Text with the digits a reader of `language` expects on screen."""
    text = "" if text is None else str(text)
    table = NATIVE_DIGITS.get(language)
    return text.translate(table) if table else text
