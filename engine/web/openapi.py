"""The OpenAPI 3.1 document, generated from the same metadata as the API itself."""

from __future__ import annotations

from engine import __version__
from engine.definitions.model import Entity, Model

ERROR = {"$ref": "#/components/schemas/Error"}


def _response(description: str, schema: dict | None = None) -> dict:
    out = {"description": description}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    return out


def _errors(*codes: int) -> dict:
    words = {400: "Bad request", 401: "Not signed in", 403: "Access denied", 404: "Not found",
             409: "Conflict (stale version, or refused because of links or policy)",
             422: "Validation failed: `fields` names each problem"}
    return {str(c): _response(words[c], ERROR) for c in codes}


def record_schema(entity: Entity) -> dict:
    props = {k: f.field_type.json_schema(f) for k, f in entity.fields.items()}
    return {"type": "object", "properties": props, "additionalProperties": False,
            "description": entity.label.get("en", entity.key)}


def input_schema(entity: Entity, model: Model, patch: bool = False) -> dict:
    props = {}
    for key, f in entity.fields.items():
        if (f.system and key not in ("owner", "team")) or f.read_only or entity.series_for(key):
            continue
        if f.type == "child_table":
            child = model.entity(f.spec["entity"])
            props[key] = {"type": "array", "items": input_schema(child, model, patch=True)}
            continue
        props[key] = f.field_type.json_schema(f)
    if patch:
        props["id"] = {"type": "integer", "minimum": 1}
    schema = {"type": "object", "properties": props, "additionalProperties": False}
    if patch and not entity.child_of:
        schema["properties"]["version"] = {"type": "integer", "minimum": 1}
        schema["required"] = ["version"]
    return schema


def page_schema(entity_key: str) -> dict:
    return {"type": "object", "required": ["data", "next"], "properties": {
        "data": {"type": "array", "items": {"$ref": f"#/components/schemas/{entity_key}"}},
        "next": {"type": ["string", "null"]}, "count": {"type": "integer"},
        "at_least": {"type": "integer"}}}


def openapi_document(model: Model, server: str = "") -> dict:
    schemas: dict = {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message", "fields"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}}}}}},
        "History": {"type": "object", "properties": {"data": {"type": "array", "items": {
            "type": "object", "properties": {
                "id": {"type": "integer"}, "action": {"type": "string"},
                "field": {"type": ["string", "null"]}, "old": {}, "new": {},
                "user_id": {"type": ["integer", "null"]},
                "at": {"type": "string", "format": "date-time"}}}}}},
    }
    paths: dict = {}
    id_param = {"name": "id", "in": "path", "required": True,
                "schema": {"type": "integer", "minimum": 1}}
    for entity in model.entities.values():
        schemas[entity.key] = record_schema(entity)
        if entity.child_of:
            continue
        k = entity.key
        ref = {"$ref": f"#/components/schemas/{k}"}
        schemas[f"{k}_create"] = input_schema(entity, model)
        schemas[f"{k}_update"] = input_schema(entity, model, patch=True)
        filters = [{"name": key, "in": "query", "required": False,
                    "schema": {"type": "string"}, "description": f"{key} equals"}
                   for key, f in entity.fields.items() if f.stored and f.filterable]
        common = [
            {"name": "q", "in": "query", "schema": {"type": "string"},
             "description": "full-text search"},
            {"name": "_sort", "in": "query", "schema": {"type": "string"},
             "description": "field,-other"},
            {"name": "_size", "in": "query",
             "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
            {"name": "_next", "in": "query", "schema": {"type": "string"},
             "description": "cursor from the previous page"},
        ]
        tag = [entity.label.get("en", k)]
        paths[f"/api/v1/{k}"] = {
            "get": {"tags": tag, "operationId": f"list_{k}", "parameters": common + filters,
                    "summary": f"List {entity.plural.get('en', k)}; filter with field=value or "
                               f"field__op=value (eq, ne, lt, lte, gt, gte, in, contains, "
                               f"startswith, isnull)",
                    "responses": {"200": _response("A keyset page", page_schema(k)),
                                  **_errors(400, 401, 403, 404)}},
            "post": {"tags": tag, "operationId": f"create_{k}",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": f"#/components/schemas/{k}_create"}}}},
                     "responses": {"201": _response("Created", ref),
                                   **_errors(400, 401, 403, 404, 422)}},
        }
        paths[f"/api/v1/{k}/{{id}}"] = {
            "parameters": [id_param],
            "get": {"tags": tag, "operationId": f"get_{k}",
                    "responses": {"200": _response("The record", ref),
                                  **_errors(401, 403, 404)}},
            "patch": {"tags": tag, "operationId": f"update_{k}",
                      "requestBody": {"required": True, "content": {"application/json": {
                          "schema": {"$ref": f"#/components/schemas/{k}_update"}}}},
                      "responses": {"200": _response("The changed record", ref),
                                    **_errors(400, 401, 403, 404, 409, 422)}},
            "delete": {"tags": tag, "operationId": f"delete_{k}",
                       "responses": {"204": _response("Deleted"),
                                     **_errors(400, 401, 403, 404, 409)}},
        }
        for action in ("archive", "restore"):
            paths[f"/api/v1/{k}/{{id}}/{action}"] = {"parameters": [id_param], "post": {
                "tags": tag, "operationId": f"{action}_{k}",
                "responses": {"200": _response("The record", ref),
                              **_errors(400, 401, 403, 404, 409, 422)}}}
        paths[f"/api/v1/{k}/{{id}}/history"] = {"parameters": [id_param], "get": {
            "tags": tag, "operationId": f"history_{k}",
            "responses": {"200": _response("Audit trail, oldest first",
                                           {"$ref": "#/components/schemas/History"}),
                          **_errors(401, 403, 404)}}}
        if entity.stage_field:
            stage = entity.fields[entity.stage_field]
            paths[f"/api/v1/{k}/{{id}}/transition"] = {"parameters": [id_param], "post": {
                "tags": tag, "operationId": f"transition_{k}",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["to"], "properties": {
                        "to": {"enum": stage.option_keys},
                        "version": {"type": "integer", "minimum": 1}}}}}},
                "responses": {"200": _response("The moved record", ref),
                              **_errors(400, 401, 403, 404, 409, 422)}}}
    schemas["StageHistory"] = {"type": "object", "properties": {"data": {"type": "array", "items": {
        "type": "object", "properties": {
            "from": {"type": ["string", "null"]}, "to": {"type": ["string", "null"]},
            "from_category": {"type": ["string", "null"]},
            "to_category": {"type": ["string", "null"]},
            "user_id": {"type": ["integer", "null"]},
            "at": {"type": "string", "format": "date-time"},
            "seconds_in_previous": {"type": ["integer", "null"]}}}}}}
    for entity in model.entities.values():
        if entity.child_of:
            continue
        k = entity.key
        tag = [entity.label.get("en", k)]
        if entity.stage_field or any(p.get("entity") == k for p in
                                     model.documents.get("pipelines", {}).values()):
            paths[f"/api/v1/{k}/{{id}}/stages"] = {"parameters": [id_param], "get": {
                "tags": tag, "operationId": f"stages_{k}",
                "responses": {"200": _response("Stage history",
                                               {"$ref": "#/components/schemas/StageHistory"}),
                              **_errors(401, 403, 404)}}}
    for conversion in model.documents.get("conversions", {}).values():
        k = conversion["source"]
        links = {step["key"]: {"type": "integer", "minimum": 1,
                               "description": f"link to this {step['entity']} instead"}
                 for step in conversion["create"]}
        paths[f"/api/v1/{k}/{{id}}/convert"] = {"parameters": [id_param], "post": {
            "tags": [model.entity(k).label.get("en", k)], "operationId": f"convert_{k}",
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False,
                "properties": {**links, "create_new": {"type": "boolean"},
                               "values": {"type": "object", "additionalProperties": {
                                   "type": "object"}}}}}}},
            "responses": {"200": _response("What was created or linked", {
                "type": "object", "properties": {"source": {"type": "integer"}},
                "additionalProperties": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "created": {"type": "boolean"}}}}),
                **_errors(400, 401, 403, 404, 409, 422)}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Kervan API", "version": __version__,
                 "description": "Generated from the resolved metadata."},
        "servers": [{"url": server or "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "session"}}},
    }
