"""Users and their bearer tokens. Only a token's SHA-256 is stored; the token is shown once, at creation."""

from __future__ import annotations

import hashlib
import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from flukeid.serve.db import Role, User
from flukeid.serve.errors import Conflict, Invalid

_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(session: Session, name: str, role: str) -> str:
    """Create user ``name`` with ``role``; returns the new token (not stored, only its hash is). Invalid for an
    unknown role or a bad name, Conflict when the user exists."""
    if role not in set(Role):
        raise Invalid(f"unknown role {role!r}; expected one of {', '.join(Role)}")
    if not _NAME.match(name):
        raise Invalid(f"user name {name!r} must be 1-64 letters, digits or _.@-")
    if session.get(User, name) is not None:
        raise Conflict(f"user {name!r} exists already")
    token = secrets.token_urlsafe(32)
    session.add(User(name=name, role=Role(role), token_sha256=token_hash(token)))
    return token


def user_for_token(session: Session, token: str) -> User | None:
    return session.scalars(select(User).where(User.token_sha256 == token_hash(token))).first()


def may(role: Role, needed: Role) -> bool:
    """Whether ``role`` may do what ``needed`` may (admin > curator > viewer)."""
    order = list(Role)
    return order.index(role) >= order.index(needed)
