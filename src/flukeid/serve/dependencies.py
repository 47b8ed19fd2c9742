"""What the routes take from a request: the app's Curation, a database session, the user and the role it needs,
and bounded row ids and limits.

A request names its user by a bearer token (``Authorization: Bearer ...``) or, in the browser, by the cookie
the login page sets. API routes answer 401/403 without one; pages send the browser to the login page.
"""
# no `from __future__ import annotations`: FastAPI reads these Annotated aliases at runtime

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi import Path as InPath
from sqlalchemy.orm import Session

from flukeid.serve.auth import may, user_for_token
from flukeid.serve.db import Role, User
from flukeid.serve.errors import Forbidden, Unauthenticated
from flukeid.serve.service import Curation

COOKIE = "flukeid_token"
MAX_ID = 2**31 - 1
"""The largest row id every supported database stores (an INTEGER column is 32-bit in PostgreSQL, 64 in SQLite):
larger ones are refused (422), never sent to SQL, where they overflow (500)."""
MAX_LIMIT = 1000

RowId = Annotated[int, InPath(ge=1, le=MAX_ID, description="a row id")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="at most this many rows")]


class LoginNeeded(Exception):
    """A page was asked for without a valid token; the app answers with a redirect to the login page."""


def curation_of(request: Request) -> Curation:
    """The app's Curation (``app.state.curation``, made by ``create_app``)."""
    return request.app.state.curation


CurationDep = Annotated[Curation, Depends(curation_of)]


def session(curation: CurationDep) -> Iterator[Session]:
    """A database session for one request, closed after it."""
    with curation.make_session() as s:
        yield s


Db = Annotated[Session, Depends(session)]


def token_of(request: Request) -> str | None:
    """The bearer token of the Authorization header, else the login cookie's."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(COOKIE)


def user_of(request: Request, db: Session) -> User | None:
    token = token_of(request)
    return user_for_token(db, token) if token else None


def needs(role: Role) -> Callable[[Request, Session], User]:
    """A dependency giving the request's user; Unauthenticated without one, Forbidden when its role is less."""

    def check(request: Request, db: Db) -> User:
        user = user_of(request, db)
        if user is None:
            raise Unauthenticated("a valid token is needed")
        if not may(user.role, role):
            raise Forbidden(f"{user.name} is {user.role}; this needs {role}")
        return user

    return check


def page_user(request: Request, db: Db) -> User:
    """The request's user, whatever its role; LoginNeeded without one."""
    user = user_of(request, db)
    if user is None:
        raise LoginNeeded
    return user


Viewer = Annotated[User, Depends(needs(Role.VIEWER))]
Curator = Annotated[User, Depends(needs(Role.CURATOR))]
Admin = Annotated[User, Depends(needs(Role.ADMIN))]
PageUser = Annotated[User, Depends(page_user)]
