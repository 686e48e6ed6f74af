"""Errors the record service raises; each says what is wrong and where."""

from __future__ import annotations


class RecordError(Exception):
    """Base of record service errors; `code` is stable, `message` is for people."""

    code = "error"
    status = 400

    def __init__(self, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = dict(fields or {})

    def __str__(self) -> str:
        if not self.fields:
            return self.message
        details = "; ".join(f"{k}: {v}" for k, v in self.fields.items())
        return f"{self.message} ({details})"

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "fields": self.fields}


class ValidationFailed(RecordError):
    code, status = "validation_failed", 422

    def __init__(self, entity: str, fields: dict[str, str]):
        count = len(fields)
        noun = "field needs" if count == 1 else "fields need"
        super().__init__(f"{entity}: {count} {noun} attention", fields)


class NotFound(RecordError):
    code, status = "not_found", 404

    def __init__(self, entity: str, record_id):
        super().__init__(f"{entity} #{record_id} does not exist")


class Conflict(RecordError):
    code, status = "conflict", 409

    def __init__(self, entity: str, record_id, expected, current):
        super().__init__(
            f"{entity} #{record_id} was changed by someone else (you edited version {expected}, "
            f"it is now at version {current}); reload it and apply your change again",
            {"version": f"stale: current version is {current}"})
        self.current_version = current


class DeleteRefused(RecordError):
    code, status = "delete_refused", 409
