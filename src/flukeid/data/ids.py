"""The one rule for individual IDs, applied wherever an ID enters flukeid (catalogue check, enrol, import, the
service): what flukeid writes later (a Kaggle submission separates IDs by spaces) must be able to hold it."""

from __future__ import annotations

from flukeid import NEW_WHALE
from flukeid.errors import FlukeidError

MAX_ID_LENGTH = 128


def id_problem(value: str, allow_new_whale: bool = False) -> str | None:
    """Why ``value`` cannot name an individual, or None when it can.

    An ID is 1 to 128 printable characters without whitespace, and not ``new_whale`` (the label of unknown
    individuals: allowed as a catalogue label with ``allow_new_whale``, never as a name to enrol).
    """
    if not value:
        return "empty ID"
    if len(value) > MAX_ID_LENGTH:
        return f"ID of {len(value)} characters (at most {MAX_ID_LENGTH})"
    if any(c.isspace() for c in value):
        return f"ID {value!r} contains whitespace (submissions separate IDs by spaces)"
    if not value.isprintable():
        return f"ID {value!r} contains unprintable characters"
    if value == NEW_WHALE and not allow_new_whale:
        return f"{NEW_WHALE!r} marks unknown individuals; it cannot name one"
    return None


def check_id(value: str, where: str = "") -> str:
    """``value`` when it can name an individual, else FlukeidError saying why (prefixed by ``where``)."""
    problem = id_problem(value)
    if problem is not None:
        raise FlukeidError(f"{where}: {problem}" if where else problem)
    return value
