"""The field types that ship with the engine (registered as a plugin)."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from abc import abstractmethod
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from .base import FieldType, FieldValueError, StorageColumn

#: The largest whole number a BIGINT column holds.
MAX_INTEGER = 2**63 - 1

#: Persian and Arabic-Indic digits are accepted wherever digits are.
_DIGIT_MAP = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def normalise_digits(text: str) -> str:
    """Replace Persian/Arabic digits with ASCII ones."""
    return text.translate(_DIGIT_MAP)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return normalise_digits(value.strip()) if value.strip().isdigit() else value.strip()
    if isinstance(value, bool | int | float | Decimal):
        return str(value)
    raise FieldValueError("must be text")


class StringType(FieldType):
    name = "string"
    textual = True
    properties = frozenset({"max_length"})

    def max_length(self, field) -> int:
        return int(field.spec.get("max_length", 255))

    def columns(self, field):
        n = self.max_length(field)
        return [StorageColumn(field.key, sa.String(n), f"string:{n}",
                              index=field.indexed, unique=field.unique)]

    def coerce(self, field, value):
        if value is None:
            return None
        text = _text(value)
        if text == "":
            return None
        if len(text) > self.max_length(field):
            raise FieldValueError(f"must be at most {self.max_length(field)} characters")
        return text

    def json_schema(self, field):
        return {"type": ["string", "null"], "maxLength": self.max_length(field)}


class TextType(FieldType):
    name = "text"
    textual = True

    def columns(self, field):
        return [StorageColumn(field.key, sa.Text(), "text")]

    def coerce(self, field, value):
        if value is None:
            return None
        if not isinstance(value, str):
            raise FieldValueError("must be text")
        return value if value.strip() else None

    def sort_column(self, field):
        return None

    def json_schema(self, field):
        return {"type": ["string", "null"]}


class IntegerType(FieldType):
    name = "integer"
    ordered = True
    properties = frozenset({"min", "max"})

    def columns(self, field):
        return [StorageColumn(field.key, sa.BigInteger(), "integer",
                              index=field.indexed, unique=field.unique)]

    def coerce(self, field, value):
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            raise FieldValueError("must be a whole number")
        if isinstance(value, int):
            number = value
        elif isinstance(value, float | Decimal) and value == int(value):
            number = int(value)
        elif isinstance(value, str) and re.fullmatch(r"[+-]?\d+", normalise_digits(value.strip())):
            number = int(normalise_digits(value.strip()))
        else:
            raise FieldValueError("must be a whole number")
        if abs(number) > MAX_INTEGER:
            raise FieldValueError("is too large")
        _check_range(field, number)
        return number

    def json_schema(self, field):
        return {"type": ["integer", "null"], "minimum": -MAX_INTEGER, "maximum": MAX_INTEGER}


def _check_range(field, number) -> None:
    low, high = field.spec.get("min"), field.spec.get("max")
    if low is not None and number < _bound(low):
        raise FieldValueError(f"must be at least {low}")
    if high is not None and number > _bound(high):
        raise FieldValueError(f"must be at most {high}")


@functools.lru_cache(maxsize=256)
def _bound(value) -> Decimal:
    """A declared min or max as a Decimal (made once, not for every value checked)."""
    return Decimal(str(value))


@functools.lru_cache(maxsize=64)
def _decimal_limits(precision: int, scale: int) -> tuple[Decimal, Decimal]:
    """The step and the exclusive ceiling of a decimal(precision, scale): made once, not
    for every value coerced (a bulk load coerces hundreds of thousands)."""
    return Decimal(1).scaleb(-scale), Decimal(10) ** (precision - scale)


def parse_decimal(value: Any) -> Decimal:
    """Parse a number written with '.' as the decimal point (digits of any script)."""
    if isinstance(value, bool):
        raise FieldValueError("must be a number")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(str(value))
    elif isinstance(value, str):
        text = normalise_digits(value.strip()).replace("٫", ".").replace("٬", "")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise FieldValueError("must be a number") from None
    else:
        raise FieldValueError("must be a number")
    if not number.is_finite():
        raise FieldValueError("must be a finite number")
    return number


class DecimalType(FieldType):
    name = "decimal"
    ordered = True
    properties = frozenset({"precision", "scale", "min", "max"})
    default_precision, default_scale = 18, 4

    def shape(self, field) -> tuple[int, int]:
        return (int(field.spec.get("precision", self.default_precision)),
                int(field.spec.get("scale", self.default_scale)))

    def columns(self, field):
        p, s = self.shape(field)
        return [StorageColumn(field.key, sa.Numeric(p, s), f"decimal:{p}:{s}",
                              index=field.indexed, unique=field.unique)]

    def coerce(self, field, value):
        if value is None or value == "":
            return None
        number = parse_decimal(value)
        p, s = self.shape(field)
        quantum, ceiling = _decimal_limits(p, s)
        if abs(number) >= ceiling:
            raise FieldValueError(f"is too large (at most {p - s} digits before the decimal point)")
        quantized = number.quantize(quantum)
        if number != quantized:
            raise FieldValueError(f"must have at most {s} decimal places")
        _check_range(field, number)
        return quantized

    def to_json(self, field, value):
        return None if value is None else str(value)

    def from_storage(self, field, row):
        value = row.get(field.key)
        if value is None:
            return None
        _, s = self.shape(field)
        return Decimal(str(value)).quantize(Decimal(1).scaleb(-s))

    def check_definition(self, field):
        p, s = self.shape(field)
        return [f"scale {s} must be smaller than precision {p}"] if s >= p else []

    def json_schema(self, field):
        return {"type": ["string", "null"], "pattern": r"^-?\d+(\.\d+)?$",
                "description": "a decimal number written as text, e.g. \"1234.50\""}


class PercentType(DecimalType):
    name = "percent"
    default_precision, default_scale = 7, 4

    def coerce(self, field, value):
        number = super().coerce(field, value)
        if number is not None and not (Decimal(-1000) <= number <= Decimal(1000)):
            raise FieldValueError("must be a percentage between -1000 and 1000")
        return number


CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


class MoneyType(DecimalType):
    """An amount with its currency, stored in `<key>` and `<key>__currency`."""

    name = "money"
    properties = frozenset({"precision", "scale", "min", "max", "currency"})
    default_precision, default_scale = 18, 2

    def columns(self, field):
        p, s = self.shape(field)
        return [
            StorageColumn(field.key, sa.Numeric(p, s), f"decimal:{p}:{s}", index=field.indexed),
            StorageColumn(f"{field.key}__currency", sa.String(3), "string:3"),
        ]

    def coerce(self, field, value):
        if value is None or value == "":
            return None
        if isinstance(value, dict):
            unknown = set(value) - {"amount", "currency"}
            if unknown:
                raise FieldValueError("must be {amount, currency}")
            amount, currency = value.get("amount"), value.get("currency")
        else:
            amount, currency = value, None
        currency = currency or field.spec.get("currency")
        if amount is None or amount == "":
            return None
        number = super().coerce(field, amount)
        if not currency:
            raise FieldValueError("needs a currency (for example TRY, EUR, USD, IRR)")
        currency = str(currency).strip().upper()
        if not CURRENCY_RE.match(currency):
            raise FieldValueError(f"currency {currency!r} is not a three-letter ISO code")
        return {"amount": number, "currency": currency}

    def to_storage(self, field, value):
        if value is None:
            return {field.key: None, f"{field.key}__currency": None}
        return {field.key: value["amount"], f"{field.key}__currency": value["currency"]}

    def from_storage(self, field, row):
        amount = super().from_storage(field, row)
        if amount is None:
            return None
        return {"amount": amount, "currency": row.get(f"{field.key}__currency")}

    def to_json(self, field, value):
        if value is None:
            return None
        return {"amount": str(value["amount"]), "currency": value["currency"]}

    def json_schema(self, field):
        return {"type": ["object", "null"], "required": ["amount", "currency"],
                "properties": {"amount": {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"},
                               "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}},
                "additionalProperties": False}


class BooleanType(FieldType):
    name = "boolean"
    ordered = True
    _true = {"true", "1", "yes", "on", "evet", "بله"}
    _false = {"false", "0", "no", "off", "hayır", "خیر"}

    def columns(self, field):
        return [StorageColumn(field.key, sa.Boolean(), "boolean", index=field.indexed)]

    def coerce(self, field, value):
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            text = value.strip().lower()
            if text in self._true:
                return True
            if text in self._false:
                return False
        raise FieldValueError("must be true or false")

    def is_empty(self, value):
        return value is None

    def json_schema(self, field):
        return {"type": ["boolean", "null"]}


class DateType(FieldType):
    name = "date"
    ordered = True

    def columns(self, field):
        return [StorageColumn(field.key, sa.Date(), "date", index=field.indexed)]

    def coerce(self, field, value):
        if value is None or value == "":
            return None
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(normalise_digits(value.strip()))
            except ValueError:
                pass
        raise FieldValueError("must be a date written as YYYY-MM-DD")

    def to_json(self, field, value):
        return None if value is None else value.isoformat()

    def json_schema(self, field):
        return {"type": ["string", "null"], "format": "date"}


class DateTimeType(FieldType):
    """A moment in time, stored in UTC."""

    name = "datetime"
    ordered = True

    def columns(self, field):
        return [StorageColumn(field.key, sa.DateTime(timezone=True), "datetime",
                              index=field.indexed)]

    def coerce(self, field, value):
        if value is None or value == "":
            return None
        if isinstance(value, str):
            text = normalise_digits(value.strip()).replace("Z", "+00:00")
            try:
                value = dt.datetime.fromisoformat(text)
            except ValueError:
                raise FieldValueError(
                    "must be a date and time written as YYYY-MM-DDTHH:MM[:SS][+HH:MM]") from None
        if isinstance(value, dt.datetime):
            return to_utc(value)
        if isinstance(value, dt.date):
            return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
        raise FieldValueError("must be a date and time")

    def from_storage(self, field, row):
        return to_utc(row.get(field.key))

    def to_json(self, field, value):
        return None if value is None else value.isoformat()

    def json_schema(self, field):
        return {"type": ["string", "null"], "format": "date-time"}


def to_utc(value: dt.datetime | None) -> dt.datetime | None:
    """Attach UTC to naive datetimes (SQLite drops the zone) and convert aware ones."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class EmailType(StringType):
    name = "email"

    def coerce(self, field, value):
        text = super().coerce(field, value)
        if text is None:
            return None
        text = text.lower()
        if not EMAIL_RE.match(text):
            raise FieldValueError(f"{text!r} is not a valid e-mail address")
        return text


PHONE_RE = re.compile(r"^\+?[0-9 ()\-./]{5,}$")


SEARCHED_PHONE_RE = re.compile(r"^\+?[0-9 ()\-./]+$")


def searched_digits(text: str) -> str | None:
    """The digits to look for in phones when `text` is typed into a search: only when the
    text is written like a phone (`0532 111 22 33`, `+98-21-…`), at least three of them.
    An e-mail or a name with digits in it is not a phone."""
    text = normalise_digits(text.strip())
    if not SEARCHED_PHONE_RE.match(text):
        return None
    digits = phone_digits(text)
    return digits if digits and len(digits) >= 3 else None


def phone_digits(text: str | None) -> str | None:
    """The digits of a phone number, for matching however it was written."""
    if not text:
        return None
    digits = re.sub(r"\D", "", normalise_digits(text))
    return digits or None


class PhoneType(StringType):
    """A phone number; its digits are kept in `<key>__digits` for search."""

    name = "phone"

    def columns(self, field):
        n = self.max_length(field)
        return [
            StorageColumn(field.key, sa.String(n), f"string:{n}", unique=field.unique),
            StorageColumn(f"{field.key}__digits", sa.String(n), f"string:{n}", index=True),
        ]

    def coerce(self, field, value):
        text = super().coerce(field, value)
        if text is None:
            return None
        text = normalise_digits(text)
        if not PHONE_RE.match(text) or len(phone_digits(text) or "") < 7:
            raise FieldValueError(f"{text!r} is not a valid phone number")
        return text

    def to_storage(self, field, value):
        return {field.key: value, f"{field.key}__digits": phone_digits(value)}


class UrlType(StringType):
    name = "url"

    def columns(self, field):
        n = int(field.spec.get("max_length", 2000))
        return [StorageColumn(field.key, sa.String(n), f"string:{n}", index=field.indexed)]

    def max_length(self, field):
        return int(field.spec.get("max_length", 2000))

    def coerce(self, field, value):
        text = super().coerce(field, value)
        if text is None:
            return None
        if not re.match(r"^[a-z][a-z0-9+.-]*://", text, re.I):
            text = "https://" + text
        if not re.match(r"^https?://[^\s/$.?#][^\s]*\.[^\s]+$|^https?://localhost", text, re.I):
            raise FieldValueError(f"{value!r} is not a valid web address")
        return text


class EnumType(FieldType):
    """One value out of the declared options (stages and statuses are enums)."""

    name = "enum"
    ordered = True
    properties = frozenset({"options"})
    required_properties = frozenset({"options"})

    def columns(self, field):
        return [StorageColumn(field.key, sa.String(64), "string:64", index=field.indexed)]

    def coerce(self, field, value):
        if value is None or value == "":
            return None
        if not isinstance(value, str) or value not in field.option_keys:
            raise FieldValueError(
                f"{value!r} is not one of the options: {', '.join(field.option_keys)}")
        return value

    def json_schema(self, field):
        return {"enum": [*field.option_keys, None]}


class TagsType(FieldType):
    """Several values: options when declared (multi-enum), free tags otherwise."""

    name = "tags"
    properties = frozenset({"options", "free"})

    def columns(self, field):
        return [StorageColumn(field.key, _JSON, "json")]

    def coerce(self, field, value):
        if value is None or value == "" or value == []:
            return None
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",")]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise FieldValueError("must be a list of tags")
        tags: list[str] = []
        for tag in value:
            tag = tag.strip()
            if tag and tag not in tags:
                if len(tag) > 64:
                    raise FieldValueError(f"tag {tag[:20]!r}… is longer than 64 characters")
                tags.append(tag)
        if field.option_keys and not field.spec.get("free"):
            wrong = [t for t in tags if t not in field.option_keys]
            if wrong:
                raise FieldValueError(
                    f"{', '.join(map(repr, wrong))} not among the options: "
                    f"{', '.join(field.option_keys)}")
        return tags or None

    def from_storage(self, field, row):
        value = row.get(field.key)
        if isinstance(value, str):  # some drivers hand back the JSON text
            value = json.loads(value)
        return value

    def json_schema(self, field):
        items = {"type": "string"}
        if field.option_keys and not field.spec.get("free"):
            items = {"enum": field.option_keys}
        return {"type": ["array", "null"], "items": items}


class ReferenceType(FieldType):
    """Base of fields that hold the id of another record."""

    ordered = True

    def columns(self, field):
        return [StorageColumn(field.key, sa.BigInteger(), f"ref:{self.reference_target(field)}",
                              index=True)]

    @abstractmethod
    def reference_target(self, field) -> str:
        """The table the stored id points into."""

    def coerce(self, field, value):
        if value is None or value == "":
            return None
        if isinstance(value, dict) and "id" in value:
            value = value["id"]
        if isinstance(value, bool):
            raise FieldValueError("must be the id of a record")
        if isinstance(value, str) and normalise_digits(value.strip()).isdigit():
            value = int(normalise_digits(value.strip()))
        if isinstance(value, int) and 0 < value <= MAX_INTEGER:
            return value
        raise FieldValueError("must be the id of a record")

    def json_schema(self, field):
        return {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_INTEGER}


class LinkType(ReferenceType):
    """Many-to-one link to a record of another entity."""

    name = "link"
    properties = frozenset({"target"})
    required_properties = frozenset({"target"})

    def reference_target(self, field):
        return field.spec.get("target", "")


class UserType(ReferenceType):
    name = "user"

    def reference_target(self, field):
        return "kv_user"


class AttachmentType(ReferenceType):
    name = "attachment"
    properties = frozenset({"accept"})

    def reference_target(self, field):
        return "kv_file"

    def sort_column(self, field):
        return None


class ChildTableType(FieldType):
    """Lines owned by the record (quote lines); stored in the child entity's table."""

    name = "child_table"
    stored = False
    properties = frozenset({"entity", "link_field"})
    required_properties = frozenset({"entity"})

    def columns(self, field):
        return []

    def coerce(self, field, value):
        if value is None:
            return []
        if not isinstance(value, list | tuple) or not all(isinstance(v, dict) for v in value):
            raise FieldValueError("must be a list of lines")
        return list(value)

    def sort_column(self, field):
        return None

    def json_schema(self, field):
        return {"type": "array", "items": {"$ref": f"#/components/schemas/{field.spec['entity']}"}}


BUILTIN_TYPES: list[type[FieldType]] = [
    StringType, TextType, IntegerType, DecimalType, MoneyType, PercentType, BooleanType,
    DateType, DateTimeType, EmailType, PhoneType, UrlType, EnumType, TagsType, LinkType,
    ChildTableType, AttachmentType, UserType,
]

#: Other names accepted for a type.
ALIASES = {"multi_enum": "tags"}


class TeamType(ReferenceType):
    name = "team"

    def reference_target(self, field):
        return "kv_team"


BUILTIN_TYPES.append(TeamType)
