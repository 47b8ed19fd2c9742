"""The curator web service: a JSON API under /api (OpenAPI docs at /docs) and server-rendered review pages.

Every request names its user by a bearer token (``Authorization: Bearer ...``) or, in the browser, by the
cookie the login page sets (SameSite=Strict, so other sites cannot make writes with it). Reads need the viewer
role, writes curator, user management admin.
"""
# no `from __future__ import annotations`: FastAPI reads the local Annotated aliases (Db, Viewer...) at runtime

import csv
import io
import re
import zipfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi import Path as InPath
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel
from sqlalchemy.orm import Session

from flukeid.errors import FlukeidError, ServiceError
from flukeid.serve.auth import add_user, may, user_for_token
from flukeid.serve.catalog import CatalogSettings, Proposals
from flukeid.serve.db import Decision, Encounter, Individual, Photo, User
from flukeid.serve.service import Curation, Upload
from flukeid.serve.uploads import without_exif

HERE = Path(__file__).parent
COOKIE = "flukeid_token"
MAX_ID = 2**31 - 1
"""The largest row id every supported database stores (an INTEGER column is 32-bit in PostgreSQL, 64 in SQLite):
larger ones are refused (422), never sent to SQL, where they overflow (500)."""
MAX_LIMIT = 1000

RowId = Annotated[int, InPath(ge=1, le=MAX_ID, description="a row id")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="at most this many rows")]
_UNSAFE = re.compile(r"[^\w.-]+")


class DecisionIn(BaseModel):
    action: str  # match, new or reject
    individual: str | None = None
    version: int | None = None  # the encounter version the decision was made on; stale -> 409


class UserIn(BaseModel):
    name: str
    role: str


class _LoginNeeded(Exception):
    pass


def _photo_url(photo: Photo) -> str:
    return f"/api/photos/{photo.id}/image"


def _photo_json(photo: Photo) -> dict[str, Any]:
    return {
        "id": photo.id,
        "image": photo.image,
        "original_name": photo.original_name,
        "status": photo.status,
        "individual": photo.individual_id,
        "encounter": photo.encounter_id,
        "created_at": photo.created_at.isoformat(),
        "url": _photo_url(photo),
    }


def _encounter_json(encounter: Encounter, photos: list[Photo]) -> dict[str, Any]:
    return {
        "id": encounter.id,
        "status": encounter.status,
        "individual": encounter.individual_id,
        "version": encounter.version,
        "created_at": encounter.created_at.isoformat(),
        "created_by": encounter.created_by,
        "photos": [_photo_json(p) for p in photos],
    }


def _decision_json(decision: Decision) -> dict[str, Any]:
    return {
        "id": decision.id,
        "encounter": decision.encounter_id,
        "user": decision.user,
        "at": decision.at.isoformat(),
        "action": decision.action,
        "individual": decision.individual_id,
        "previous": decision.previous,
        "undone_by": decision.undone_by,
    }


def _kaggle_csv(rows: Iterable[tuple[str, str | None]]) -> str:
    """(image, individual) rows as a Kaggle train.csv (Image,Id)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Image", "Id"])
    writer.writerows(rows)
    return out.getvalue()


def _safe_name(image: str, fallback: str) -> str:
    """The last part of an image name, with only letters, digits and ``._-`` (others become ``_``) and no leading
    dot: a file name that stays in the folder it is extracted to (never ``..``, absolute or in a subfolder)."""
    last = image.replace("\\", "/").rsplit("/", 1)[-1]
    return _UNSAFE.sub("_", last).lstrip(".") or fallback


def _archive_names(photos: list[Photo]) -> dict[int, str]:
    """A distinct safe file name per photo id for the export's train/ folder: the image name where it is one
    already (uploads, usual imports); a name taken before (ignoring case) gets the photo id appended."""
    names: dict[int, str] = {}
    taken: set[str] = set()
    for photo in photos:
        name = _safe_name(photo.image, f"photo-{photo.id}")
        stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix
        candidate, repeat = name, 1
        while candidate.casefold() in taken:
            candidate = f"{stem}-{photo.id}{'' if repeat == 1 else f'-{repeat}'}{suffix}"
            repeat += 1
        taken.add(candidate.casefold())
        names[photo.id] = candidate
    return names


def _missing_files(missing: list[tuple[Photo, Path]], shown: int = 10) -> str:
    """The first photos whose files are missing, for an error message."""
    listed = [f"photo {p.id} {p.image!r} ({path if p.path else 'no file recorded'})" for p, path in missing[:shown]]
    return "; ".join(listed) + (f" and {len(missing) - shown} more" if len(missing) > shown else "")


def create_app(folder: Path) -> FastAPI:
    """The service for catalogue ``folder`` (see flukeid.serve.catalog)."""
    curation = Curation(folder, CatalogSettings.load(folder))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        curation.matcher.gallery.close()  # writes the FAISS index file if recent enrolments left it stale

    app = FastAPI(title="flukeid curator", description=__doc__, lifespan=lifespan)
    app.state.curation = curation
    templates = Jinja2Templates(directory=HERE / "templates")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    limits = curation.settings.limits

    def session() -> Iterator[Session]:
        with curation.make_session() as s:
            yield s

    Db = Annotated[Session, Depends(session)]

    def token_of(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return header[7:].strip()
        return request.cookies.get(COOKIE)

    def user_of(request: Request, db: Session) -> User | None:
        token = token_of(request)
        return user_for_token(db, token) if token else None

    def role(needed: str) -> Callable[..., User]:
        def check(request: Request, db: Db) -> User:
            user = user_of(request, db)
            if user is None:
                raise HTTPException(401, "a valid token is needed", headers={"WWW-Authenticate": "Bearer"})
            if not may(user.role, needed):
                raise HTTPException(403, f"{user.name} is {user.role}; this needs {needed}")
            return user

        return check

    def page_user(request: Request, db: Db) -> User:
        user = user_of(request, db)
        if user is None:
            raise _LoginNeeded
        return user

    Viewer = Annotated[User, Depends(role("viewer"))]
    Curator = Annotated[User, Depends(role("curator"))]
    Admin = Annotated[User, Depends(role("admin"))]
    PageUser = Annotated[User, Depends(page_user)]

    @app.exception_handler(ServiceError)
    def _service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(_LoginNeeded)
    def _login(request: Request, _exc: _LoginNeeded) -> RedirectResponse:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    @app.middleware("http")
    async def _body_limit(request: Request, call_next):  # type: ignore[no-untyped-def]
        """Refuse an upload by its announced size before reading it."""
        length = request.headers.get("content-length")
        if length is not None and not length.strip().isdigit():
            return JSONResponse({"detail": f"Content-Length {length[:40]!r} is not a number of bytes"}, 400)
        if request.method == "POST" and length and int(length) > limits.max_bytes * limits.max_files + 2**20:
            return JSONResponse({"detail": f"request of {int(length):,} bytes is over the upload limit"}, 413)
        return await call_next(request)

    def proposals_json(db: Session, proposals: Proposals) -> dict[str, Any]:
        gallery_ids = [i for c in proposals.candidates for i in c.photos]
        by_gallery_id = curation.photos_of_gallery_ids(db, gallery_ids)
        candidates = []
        for c in proposals.candidates:
            photos = [by_gallery_id[i] for i in c.photos if i in by_gallery_id]
            photos = photos or curation.individual_photos(db, c.individual, limit=3)
            candidates.append(
                {
                    "individual": c.individual,
                    "score": round(c.score, 5),
                    "probability": round(c.probability, 5),
                    "photos": [_photo_json(p) for p in photos],
                }
            )
        new = {"probability": round(proposals.new_probability, 5), "rank": proposals.new_rank}
        return {"candidates": candidates, "new_individual": new}

    # -- API ---------------------------------------------------------------------------------------------------

    @app.get("/api/me", tags=["users"])
    def me(user: Viewer) -> dict[str, str]:
        return {"name": user.name, "role": user.role}

    @app.post("/api/encounters", status_code=201, tags=["encounters"])
    def upload(files: Annotated[list[UploadFile], File()], user: Curator, db: Db) -> dict[str, Any]:
        """Upload an encounter: one or more photos taken together, matched as one query."""
        encounter = curation.upload([Upload(f.filename or "photo", f.file) for f in files], user.name)
        return _encounter_json(encounter, curation.encounter_photos(db, encounter.id))

    @app.post("/api/identify", tags=["encounters"])
    def identify(files: Annotated[list[UploadFile], File()], _user: Viewer, db: Db) -> dict[str, Any]:
        """Proposals for photos without keeping them (no encounter is made)."""
        return proposals_json(db, curation.identify([Upload(f.filename or "photo", f.file) for f in files]))

    @app.get("/api/encounters", tags=["encounters"])
    def encounters(_user: Viewer, db: Db, status: str = "pending", limit: Limit = 100) -> list[dict[str, Any]]:
        return [_encounter_json(e, curation.encounter_photos(db, e.id)) for e in curation.encounters(db, status, limit)]

    @app.get("/api/encounters/{encounter_id}", tags=["encounters"])
    def encounter(encounter_id: RowId, _user: Viewer, db: Db) -> dict[str, Any]:
        found = curation.encounter(db, encounter_id)
        return _encounter_json(found, curation.encounter_photos(db, encounter_id))

    @app.get("/api/encounters/{encounter_id}/proposals", tags=["encounters"])
    def proposals(encounter_id: RowId, _user: Viewer, db: Db, k: int = Query(5, ge=1, le=20)) -> dict[str, Any]:
        """The k most likely individuals (score, calibrated probability, best catalogue photos) and the
        new-individual option (its probability and the rank the tuned threshold gives it)."""
        found = curation.encounter(db, encounter_id)
        return {
            "encounter": encounter_id,
            "version": found.version,
            **proposals_json(db, curation.proposals(db, encounter_id, k)),
        }

    @app.post("/api/encounters/{encounter_id}/decision", tags=["decisions"])
    def decide(encounter_id: RowId, body: DecisionIn, user: Curator) -> dict[str, Any]:
        """Match to an individual, add a new individual with the given ID, or reject; 409 if the encounter was
        decided meanwhile (or ``version`` is stale)."""
        return _decision_json(curation.decide(encounter_id, body.action, body.individual, user.name, body.version))

    @app.post("/api/decisions/{decision_id}/undo", tags=["decisions"])
    def undo(decision_id: RowId, user: Curator) -> dict[str, Any]:
        return _decision_json(curation.undo(decision_id, user.name))

    @app.get("/api/decisions", tags=["decisions"])
    def audit(
        _user: Viewer,
        db: Db,
        encounter: Annotated[int | None, Query(ge=1, le=MAX_ID, description="only this encounter's")] = None,
        limit: Limit = 200,
    ) -> list[dict[str, Any]]:
        """The audit trail, newest first: who decided what, when, and the state before."""
        return [_decision_json(d) for d in curation.audit(db, encounter_id=encounter, limit=limit)]

    @app.get("/api/individuals", tags=["individuals"])
    def individuals(_user: Viewer, db: Db, q: str = "", limit: Limit = 50) -> list[dict[str, Any]]:
        """Individuals whose ID contains ``q`` (plain text, case-insensitive), with their photo counts."""
        return [{"id": name, "photos": n} for name, n in curation.search_individuals(db, q, limit)]

    @app.get("/api/individuals/{individual:path}", tags=["individuals"])  # :path: an ID may hold a slash
    def individual(individual: str, _user: Viewer, db: Db) -> dict[str, Any]:
        photos = curation.individual_photos(db, individual)
        if not photos and db.get(Individual, individual) is None:
            raise ServiceError(404, f"no individual {individual!r}")
        return {"id": individual, "photos": [_photo_json(p) for p in photos]}

    @app.get("/api/photos/{photo_id}/image", tags=["photos"])
    def photo_image(photo_id: RowId, _user: Viewer, db: Db) -> FileResponse:
        photo = db.get(Photo, photo_id)
        path = curation.photo_file(photo) if photo is not None else None
        if path is None or not path.is_file():
            raise ServiceError(404, f"no photo file for photo {photo_id}")
        return FileResponse(path)

    @app.get("/api/export.csv", tags=["export"])
    def export_csv(_user: Viewer, db: Db) -> Response:
        """The catalogue as a Kaggle train.csv (Image,Id)."""
        return Response(
            _kaggle_csv((p.image, p.individual_id) for p in curation.catalogue_rows(db)), media_type="text/csv"
        )

    @app.get("/api/export.zip", tags=["export"])
    def export_zip(_user: Viewer, db: Db, strip_exif: bool = False) -> Response:
        """The catalogue in Kaggle layout (train.csv + train/, photos under safe file names that train.csv lists);
        ``strip_exif`` removes photo metadata (GPS...). 409 naming the photos whose files are missing: an export
        never leaves a catalogue photo out silently."""
        rows = curation.catalogue_rows(db)
        files = {p.id: curation.photo_file(p) for p in rows}
        missing = [(p, files[p.id]) for p in rows if not files[p.id].is_file()]
        if missing:
            raise ServiceError(
                409,
                f"{len(missing)} catalogue photo file(s) are missing, so the export would lack them: "
                f"{_missing_files(missing)}; restore the files, then export again",
            )
        names = _archive_names(rows)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("train.csv", _kaggle_csv((names[p.id], p.individual_id) for p in rows))
            for p in rows:
                data = without_exif(files[p.id]) if strip_exif else files[p.id].read_bytes()
                archive.writestr(f"train/{names[p.id]}", data)
        return Response(buffer.getvalue(), media_type="application/zip")

    @app.get("/api/users", tags=["users"])
    def users(_user: Admin, db: Db) -> list[dict[str, str]]:
        return [{"name": u.name, "role": u.role} for u in db.query(User).order_by(User.name)]

    @app.post("/api/users", status_code=201, tags=["users"])
    def create_user(body: UserIn, _user: Admin, db: Db) -> dict[str, str]:
        """A new user; the token is in this answer only."""
        try:
            token = add_user(db, body.name, body.role)
        except FlukeidError as exc:
            raise ServiceError(409 if "exists" in str(exc) else 422, str(exc)) from exc
        db.commit()
        return {"name": body.name, "role": body.role, "token": token}

    # -- pages -------------------------------------------------------------------------------------------------

    def page(request: Request, name: str, user: User, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(
            request, name, {"user": user, "can_write": may(user.role, "curator"), **context}
        )

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request, next: str = "/") -> HTMLResponse:
        return templates.TemplateResponse(request, "login.html", {"next": next, "error": None})

    @app.post("/login", include_in_schema=False)
    def login(request: Request, db: Db, token: Annotated[str, Form()], next: Annotated[str, Form()] = "/") -> Response:
        if user_for_token(db, token) is None:
            return templates.TemplateResponse(request, "login.html", {"next": next, "error": "unknown token"}, 401)
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.post("/logout", include_in_schema=False)
    def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def queue_page(request: Request, user: PageUser, db: Db) -> HTMLResponse:
        pending = curation.encounters(db, "pending", limit=200)
        recent = curation.audit(db, limit=10)
        return page(request, "queue.html", user, pending=pending, recent=recent)

    @app.get("/review/{encounter_id}", response_class=HTMLResponse, include_in_schema=False)
    def review_page(encounter_id: RowId, request: Request, user: PageUser, db: Db) -> HTMLResponse:
        found = curation.encounter(db, encounter_id)
        photos = curation.encounter_photos(db, encounter_id)
        proposed = proposals_json(db, curation.proposals(db, encounter_id)) if found.status == "pending" else None
        after = curation.next_pending(db, encounter_id)
        return page(
            request,
            "review.html",
            user,
            encounter=found,
            photos=photos,
            proposals=proposed,
            next_id=after if after != encounter_id else None,
        )

    @app.get("/individuals", response_class=HTMLResponse, include_in_schema=False)
    def individuals_page(request: Request, user: PageUser, db: Db, q: str = "") -> HTMLResponse:
        return page(request, "individuals.html", user, q=q, found=curation.search_individuals(db, q, 200))

    @app.get("/individuals/{individual:path}", response_class=HTMLResponse, include_in_schema=False)
    def individual_page(individual: str, request: Request, user: PageUser, db: Db) -> HTMLResponse:
        photos = curation.individual_photos(db, individual)
        decisions = curation.audit(db, individual=individual, limit=1000)
        return page(request, "individual.html", user, individual=individual, photos=photos, decisions=decisions)

    return app
