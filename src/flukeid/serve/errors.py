"""Why the curator service refuses a request: one class per kind of refusal, raised where the refusal is decided
(service, uploads, auth, dependencies). ``flukeid.serve.app.STATUS`` maps each class to its HTTP status; the
answer is ``{"detail": message}``."""

from __future__ import annotations

from flukeid.errors import FlukeidError


class Refused(FlukeidError):
    """A request the curator service refuses; the message says why (which photo, encounter or value)."""


class Unauthenticated(Refused):
    """No valid token came with the request (401)."""


class Forbidden(Refused):
    """The user's role may not do this (403)."""


class NotFound(Refused):
    """No such encounter, decision, individual or photo file (404)."""


class Conflict(Refused):
    """The catalogue's state refuses it now: decided already, changed meanwhile, exists already, files missing (409)."""


class TooLarge(Refused):
    """An upload over a limit: bytes per file, pixels per photo, photos per encounter (413)."""


class UnsupportedPhoto(Refused):
    """Not a JPEG, PNG or WebP photo, judged by its bytes, or one that cannot be decoded (415)."""


class Invalid(Refused):
    """A value breaks a rule: unknown action or role, an unusable ID or user name, no photos sent (422)."""
