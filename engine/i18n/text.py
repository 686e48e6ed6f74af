"""Case-insensitive text matching for search in Turkish, Persian and English.

SQL's LOWER/ILIKE get Turkish wrong: SQLite lowers ASCII only (so `Ş` never meets `ş`),
and no backend knows that `I` is the capital of `ı` and `İ` the capital of `i`. Both the
stored column and the typed text are therefore folded by the same SQL expression before
LIKE: the four i's (I ı İ i) are one letter, Turkish capitals meet their small letters and
Arabic yeh/kaf meet the Persian ones. PostgreSQL folds in one TRANSLATE() and also reads
Persian/Arabic digits as ASCII; SQLite folds with nested REPLACE() (its parser allows about
two dozen levels, so digits are left as typed there).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from .numerals import ARABIC_INDIC_DIGITS, ASCII_DIGITS, PERSIAN_DIGITS

#: (character, what it is compared as), applied before LOWER() on every backend.
LETTER_FOLDS: tuple[tuple[str, str], ...] = (
    ("İ", "i"), ("I", "i"), ("ı", "i"),
    ("Ş", "ş"), ("Ç", "ç"), ("Ğ", "ğ"), ("Ö", "ö"), ("Ü", "ü"),
    ("Â", "â"), ("Î", "î"), ("Û", "û"),
    ("ي", "ی"), ("ى", "ی"), ("ك", "ک"),
)
DIGIT_FOLDS: tuple[tuple[str, str], ...] = (
    *zip(PERSIAN_DIGITS, ASCII_DIGITS, strict=True),
    *zip(ARABIC_INDIC_DIGITS, ASCII_DIGITS, strict=True),
)
_FOLD_TABLE = str.maketrans(dict(LETTER_FOLDS + DIGIT_FOLDS))


def fold(text: str) -> str:
    """Text folded as PostgreSQL's `folded()` folds it (for checks and Python-side use)."""
    return text.translate(_FOLD_TABLE).lower()


class folded(FunctionElement):  # noqa: N801 - reads as a function in queries
    """`folded(expression)`: text folded for case-insensitive comparison, in SQL."""

    type = sa.String()
    name = "kv_folded"
    inherit_cache = True


def sql_literal(text: str) -> sa.ColumnElement:
    """A string constant written into the SQL itself, not bound (an index on an expression
    must read exactly like the queries that use it)."""
    return sa.literal_column("'" + text.replace("'", "''") + "'", sa.String())


def fold_sql(expression: sa.ColumnElement, dialect: str,
             inline: bool = False) -> sa.ColumnElement:
    """The SQL that folds `expression` on `dialect` (what `folded()` compiles to).
    `inline` writes the fold's constants into the statement (`sql_literal`) instead of
    binding them."""
    def constant(text: str):
        return sql_literal(text) if inline else text

    if dialect == "postgresql":
        pairs = LETTER_FOLDS + DIGIT_FOLDS
        return sa.func.lower(sa.func.translate(expression,
                                               constant("".join(s for s, _ in pairs)),
                                               constant("".join(t for _, t in pairs))))
    for source, target in LETTER_FOLDS:
        expression = sa.func.replace(expression, constant(source), constant(target))
    return sa.func.lower(expression)


def fold_like_sqlite(text: str) -> str:
    """Typed text folded in Python exactly as SQLite's `folded()` folds a column (its
    lower() knows ASCII letters only)."""
    for source, target in LETTER_FOLDS:
        text = text.replace(source, target)
    return "".join(c.lower() if c.isascii() else c for c in text)


@compiles(folded)
def _fold_with_replace(element, compiler, **kw):
    (expression,) = element.clauses
    return compiler.process(fold_sql(expression, "sqlite"), **kw)


@compiles(folded, "postgresql")
def _fold_with_translate(element, compiler, **kw):
    (expression,) = element.clauses
    return compiler.process(fold_sql(expression, "postgresql"), **kw)


def escape_like(text: str) -> str:
    """`text` with LIKE's wildcards and the backslash escaped (for `ESCAPE '\\'`)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_folded(column: sa.ColumnElement, pattern: str) -> sa.ColumnElement[bool]:
    """`column.ilike(pattern, escape="\\")`, ignoring case the Turkish way (the pattern's
    wildcards and backslash escapes are kept)."""
    return folded(column).like(folded(sa.literal(pattern, sa.String())), escape="\\")


def contains_folded(column: sa.ColumnElement, text: str) -> sa.ColumnElement[bool]:
    """`column` contains `text`, ignoring case the Turkish way, on SQLite and PostgreSQL:
    a drop-in replacement for `column.ilike(f"%{text}%")` in list search."""
    return like_folded(column, f"%{escape_like(text)}%")
