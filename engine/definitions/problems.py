"""Problems found in metadata, reported as `file:line: key: message`."""

from __future__ import annotations

from dataclasses import dataclass

from .yamlsource import Origin


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the metadata, with where it is."""

    origin: Origin | None
    key: str
    message: str

    def __str__(self) -> str:
        where = str(self.origin) if self.origin else "<metadata>"
        return f"{where}: {self.key}: {self.message}"


class MetadataError(Exception):
    """Raised when metadata cannot be resolved; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
