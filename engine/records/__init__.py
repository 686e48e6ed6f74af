"""The record service: the single door for every write."""

from .actor import SYSTEM, Actor
from .errors import Conflict, DeleteRefused, NotFound, RecordError, ValidationFailed
from .service import RecordService

__all__ = ["Actor", "SYSTEM", "RecordService", "RecordError", "ValidationFailed", "NotFound",
           "Conflict", "DeleteRefused"]
