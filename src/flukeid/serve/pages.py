"""The server-rendered pages: login, the review queue, an encounter's review, individuals. A page asked for
without a login sends the browser to the login page, which sets the token cookie (SameSite=Strict, so other
sites cannot make writes with it)."""
# no `from __future__ import annotations`: FastAPI reads the route signatures at runtime

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from flukeid.serve.auth import may, user_for_token
from flukeid.serve.db import EncounterStatus, Role, User
from flukeid.serve.dependencies import COOKIE, CurationDep, Db, PageUser, RowId
from flukeid.serve.schemas import ProposalsOut

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(include_in_schema=False)


def _page(request: Request, name: str, user: User, **context: Any) -> HTMLResponse:
    """Template ``name`` rendered for ``user`` (``can_write``: whether it may decide and upload)."""
    return TEMPLATES.TemplateResponse(
        request, name, {"user": user, "can_write": may(user.role, Role.CURATOR), **context}
    )


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, "login.html", {"next": next, "error": None})


@router.post("/login")
def login(request: Request, db: Db, token: Annotated[str, Form()], next: Annotated[str, Form()] = "/") -> Response:
    """Set the token cookie and go to ``next`` (a path on this site only); 401 and the form again for an
    unknown token."""
    if user_for_token(db, token) is None:
        return TEMPLATES.TemplateResponse(request, "login.html", {"next": next, "error": "unknown token"}, 401)
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/", response_class=HTMLResponse)
def queue_page(request: Request, user: PageUser, db: Db, curation: CurationDep) -> HTMLResponse:
    pending = curation.encounters(db, EncounterStatus.PENDING, limit=200)
    recent = curation.audit(db, limit=10)
    return _page(request, "queue.html", user, pending=pending, recent=recent)


@router.get("/review/{encounter_id}", response_class=HTMLResponse)
def review_page(encounter_id: RowId, request: Request, user: PageUser, db: Db, curation: CurationDep) -> HTMLResponse:
    found = curation.encounter(db, encounter_id)
    photos = curation.encounter_photos(db, encounter_id)
    proposed = None
    if found.status == EncounterStatus.PENDING:
        proposed = ProposalsOut.of(curation, db, curation.proposals(db, encounter_id))
    after = curation.next_pending(db, encounter_id)
    return _page(
        request,
        "review.html",
        user,
        encounter=found,
        photos=photos,
        proposals=proposed,
        next_id=after if after != encounter_id else None,
    )


@router.get("/individuals", response_class=HTMLResponse)
def individuals_page(request: Request, user: PageUser, db: Db, curation: CurationDep, q: str = "") -> HTMLResponse:
    return _page(request, "individuals.html", user, q=q, found=curation.search_individuals(db, q, 200))


@router.get("/individuals/{individual:path}", response_class=HTMLResponse)
def individual_page(individual: str, request: Request, user: PageUser, db: Db, curation: CurationDep) -> HTMLResponse:
    photos = curation.individual_photos(db, individual)
    decisions = curation.audit(db, individual=individual, limit=1000)
    return _page(request, "individual.html", user, individual=individual, photos=photos, decisions=decisions)
