"""Users and their bearer tokens. Only a token's SHA-256 is stored; the token is shown once, at creation."""

from __future__ import annotations

import hashlib
import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from flukeid.errors import FlukeidError
from flukeid.serve.db import ROLES, User

_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(session: Session, name: str, role: str) -> str:
    """Create user ``name`` with ``role``; returns the new token (not stored, only its hash is)."""
    if role not in ROLES:
        raise FlukeidError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    if not _NAME.match(name):
        raise FlukeidError(f"user name {name!r} must be 1-64 letters, digits or _.@-")
    if session.get(User, name) is not None:
        raise FlukeidError(f"user {name!r} exists already")
    token = secrets.token_urlsafe(32)
    session.add(User(name=name, role=role, token_sha256=token_hash(token)))
    return token


def user_for_token(session: Session, token: str) -> User | None:
    return session.scalars(select(User).where(User.token_sha256 == token_hash(token))).first()


def may(role: str, needed: str) -> bool:
    """Whether ``role`` may do what ``needed`` may (admin > curator > viewer)."""
    return ROLES.index(role) >= ROLES.index(needed)
