"""One problem found in a catalogue, with where it is and how bad it is."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    WARNING = "warning"  # used as is or converted (greyscale, EXIF rotation, duplicate)
    ERROR = "error"  # this row or image is skipped, the rest goes on
    FATAL = "fatal"  # the catalogue cannot be used at all


@dataclass(frozen=True)
class Problem:
    severity: Severity
    file: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        if self.line is None and self.message.startswith(f"{self.file}:"):
            return f"{self.severity.value}: {self.message}"  # the message names its file already
        return f"{self.severity.value}: {where}: {self.message}"
