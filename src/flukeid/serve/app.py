"""The curator web service: a JSON API under /api (OpenAPI docs at /docs) and server-rendered review pages.

Every request names its user by a bearer token (``Authorization: Bearer ...``) or, in the browser, by the
cookie the login page sets (SameSite=Strict, so other sites cannot make writes with it). Reads need the viewer
role, writes curator, user management admin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from flukeid.serve import api, pages
from flukeid.serve.catalog import CatalogSettings
from flukeid.serve.dependencies import LoginNeeded
from flukeid.serve.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Refused,
    TooLarge,
    Unauthenticated,
    UnsupportedPhoto,
)
from flukeid.serve.service import Curation

STATUS: dict[type[Refused], int] = {
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    UnsupportedPhoto: 415,
    Invalid: 422,
}
"""The HTTP status of each kind of refusal; the answer's body is ``{"detail": message}``."""


def _refusal(status: int) -> Callable[[Request, Exception], JSONResponse]:
    """The exception handler answering a refusal with ``status`` (401 also names the Bearer scheme)."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None

    def answer(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    return answer


def _to_login(request: Request, _exc: Exception) -> RedirectResponse:
    return RedirectResponse(f"/login?next={request.url.path}", status_code=303)


async def _body_limit(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Refuse an upload by its announced size before reading it."""
    limits = request.app.state.curation.settings.limits
    length = request.headers.get("content-length")
    if length is not None and not length.strip().isdigit():
        return JSONResponse({"detail": f"Content-Length {length[:40]!r} is not a number of bytes"}, 400)
    if request.method == "POST" and length and int(length) > limits.max_bytes * limits.max_files + 2**20:
        return JSONResponse({"detail": f"request of {int(length):,} bytes is over the upload limit"}, 413)
    return await call_next(request)


def create_app(folder: Path) -> FastAPI:
    """The service for catalogue ``folder`` (see flukeid.serve.catalog)."""
    curation = Curation(folder, CatalogSettings.load(folder))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        curation.matcher.gallery.close()  # writes the FAISS index file if recent enrolments left it stale

    app = FastAPI(title="flukeid curator", description=__doc__, lifespan=lifespan)
    app.state.curation = curation
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.include_router(api.router)
    app.include_router(pages.router)
    for kind, status in STATUS.items():
        app.add_exception_handler(kind, _refusal(status))
    app.add_exception_handler(LoginNeeded, _to_login)
    app.middleware("http")(_body_limit)
    return app
