"""Marshmallow schemas generated from metadata: one per entity, built from its field types.

Each field delegates to its field type (coerce to load, to_json to dump), so the API, the
record service and the OpenAPI document share one definition of every value.
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, missing

from engine.definitions.model import Entity, Field, Model
from engine.fields.base import FieldType, FieldValueError


class KervanField(fields.Field):
    """A metadata field: load = the field type's coercion, dump = its JSON form."""

    def __init__(self, meta_field: Field, model: Model, **kwargs):
        super().__init__(allow_none=True, **kwargs)
        self.meta_field = meta_field
        self.model = model

    def _serialize(self, value, attr, obj, **kwargs):
        f = self.meta_field
        if f.type == "child_table":
            child = entity_schema(self.model, self.model.entity(f.spec["entity"]))
            return dump_records(child, value or [])
        return f.field_type.to_json(f, value)

    def _deserialize(self, value, attr, data, **kwargs):
        f = self.meta_field
        if f.type == "child_table":
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ValidationError("must be a list of line objects")
            return value  # lines are checked by the record service, which knows the parent
        try:
            return f.field_type.coerce(f, value)
        except FieldValueError as exc:
            raise ValidationError(str(exc)) from None


_CACHE: dict[tuple[int, str, frozenset], Schema] = {}


def entity_schema(model: Model, entity: Entity, hidden: frozenset[str] = frozenset()) -> Schema:
    """The schema of an entity as one caller may see it (hidden fields left out)."""
    key = (id(model), entity.key, hidden)
    schema = _CACHE.get(key)
    if schema is None or schema.context_model is not model:
        declared = {k: KervanField(f, model, dump_only=f.system and k not in ("owner", "team"))
                    for k, f in entity.fields.items() if k not in hidden}
        cls = Schema.from_dict(declared, name=f"{entity.key}_schema")
        schema = cls(unknown=RAISE)
        schema.context_model = model
        if len(_CACHE) > 512:
            _CACHE.clear()
        _CACHE[key] = schema
    return schema


def dump_records(schema: Schema, records: list[dict]) -> list[dict]:
    """`schema.dump(records, many=True)` for a schema of `entity_schema`, with the same
    result, faster: its fields are listed once, and a record being a dict, each value is
    read from it directly rather than through marshmallow's lookup for every value (a key
    the record lacks still goes through marshmallow, which leaves it out)."""
    plan = [(name, field.data_key or name, field,
             field.attribute is None and "." not in name, _as_is(field))
            for name, field in schema.dump_fields.items()]
    out = []
    for record in records:
        data, is_dict = {}, isinstance(record, dict)
        for name, key, field, direct, as_is in plan:
            if direct and is_dict and name in record:
                data[key] = record[name] if as_is else field._serialize(record[name], name,
                                                                        record)
                continue
            value = field.serialize(name, record, accessor=schema.get_attribute)
            if value is not missing:
                data[key] = value
        out.append(data)
    return out


def _as_is(field) -> bool:
    """Whether a schema field dumps its value unchanged (a field type whose JSON form is
    the value itself: text, numbers, options, links)."""
    return (isinstance(field, KervanField) and field.meta_field.type != "child_table"
            and type(field.meta_field.field_type).to_json is FieldType.to_json)


def load_errors(error: ValidationError) -> dict[str, str]:
    """Marshmallow's error dict flattened to {field: message}."""
    out = {}
    for key, messages in error.messages.items():
        if isinstance(messages, list):
            text = "; ".join(str(m) for m in messages)
        else:
            text = str(messages)
        out[key] = text.replace("Unknown field.", "unknown field")
    return out
