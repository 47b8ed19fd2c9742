"""The JSON API under /api: encounters and their proposals, decisions and undo, individuals, photos, export,
users. Reads need the viewer role, writes curator, user management admin."""
# no `from __future__ import annotations`: FastAPI reads the route signatures at runtime

from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import FileResponse, Response
from sqlalchemy import select

from flukeid.serve.auth import add_user
from flukeid.serve.db import EncounterStatus, User
from flukeid.serve.dependencies import MAX_ID, Admin, CurationDep, Curator, Db, Limit, RowId, Viewer
from flukeid.serve.export import catalogue_zip, kaggle_csv
from flukeid.serve.schemas import (
    DecisionIn,
    DecisionOut,
    EncounterOut,
    EncounterProposalsOut,
    IndividualCount,
    IndividualOut,
    NewUserOut,
    PhotoOut,
    ProposalsOut,
    UserIn,
    UserOut,
)
from flukeid.serve.service import Upload

router = APIRouter(prefix="/api")
Photos = Annotated[list[UploadFile], File()]


def _uploads(files: list[UploadFile]) -> list[Upload]:
    return [Upload(f.filename or "photo", f.file) for f in files]


@router.get("/me", tags=["users"])
def me(user: Viewer) -> UserOut:
    return UserOut.of(user)


@router.post("/encounters", status_code=201, tags=["encounters"])
def upload(files: Photos, user: Curator, db: Db, curation: CurationDep) -> EncounterOut:
    """Upload an encounter: one or more photos taken together, matched as one query."""
    encounter = curation.upload(_uploads(files), user.name)
    return EncounterOut.of(encounter, curation.encounter_photos(db, encounter.id))


@router.post("/identify", tags=["encounters"])
def identify(files: Photos, _user: Viewer, db: Db, curation: CurationDep) -> ProposalsOut:
    """Proposals for photos without keeping them (no encounter is made)."""
    return ProposalsOut.of(curation, db, curation.identify(_uploads(files)))


@router.get("/encounters", tags=["encounters"])
def encounters(
    _user: Viewer, db: Db, curation: CurationDep, status: str = EncounterStatus.PENDING.value, limit: Limit = 100
) -> list[EncounterOut]:
    return [EncounterOut.of(e, curation.encounter_photos(db, e.id)) for e in curation.encounters(db, status, limit)]


@router.get("/encounters/{encounter_id}", tags=["encounters"])
def encounter(encounter_id: RowId, _user: Viewer, db: Db, curation: CurationDep) -> EncounterOut:
    found = curation.encounter(db, encounter_id)
    return EncounterOut.of(found, curation.encounter_photos(db, encounter_id))


@router.get("/encounters/{encounter_id}/proposals", tags=["encounters"])
def proposals(
    encounter_id: RowId, _user: Viewer, db: Db, curation: CurationDep, k: int = Query(5, ge=1, le=20)
) -> EncounterProposalsOut:
    """The k most likely individuals (score, calibrated probability, best catalogue photos) and the
    new-individual option (its probability and the rank the tuned threshold gives it)."""
    found = curation.encounter(db, encounter_id)
    proposed = ProposalsOut.of(curation, db, curation.proposals(db, encounter_id, k))
    return EncounterProposalsOut(
        encounter=encounter_id,
        version=found.version,
        candidates=proposed.candidates,
        new_individual=proposed.new_individual,
    )


@router.post("/encounters/{encounter_id}/decision", tags=["decisions"])
def decide(encounter_id: RowId, body: DecisionIn, user: Curator, curation: CurationDep) -> DecisionOut:
    """Match to an individual, add a new individual with the given ID, or reject; 409 if the encounter was
    decided meanwhile (or ``version`` is stale)."""
    return DecisionOut.of(curation.decide(encounter_id, body.action, body.individual, user.name, body.version))


@router.post("/decisions/{decision_id}/undo", tags=["decisions"])
def undo(decision_id: RowId, user: Curator, curation: CurationDep) -> DecisionOut:
    return DecisionOut.of(curation.undo(decision_id, user.name))


@router.get("/decisions", tags=["decisions"])
def audit(
    _user: Viewer,
    db: Db,
    curation: CurationDep,
    encounter: Annotated[int | None, Query(ge=1, le=MAX_ID, description="only this encounter's")] = None,
    limit: Limit = 200,
) -> list[DecisionOut]:
    """The audit trail, newest first: who decided what, when, and the state before."""
    return [DecisionOut.of(d) for d in curation.audit(db, encounter_id=encounter, limit=limit)]


@router.get("/individuals", tags=["individuals"])
def individuals(_user: Viewer, db: Db, curation: CurationDep, q: str = "", limit: Limit = 50) -> list[IndividualCount]:
    """Individuals whose ID contains ``q`` (plain text, case-insensitive), with their photo counts."""
    return [IndividualCount(id=name, photos=n) for name, n in curation.search_individuals(db, q, limit)]


@router.get("/individuals/{individual:path}", tags=["individuals"])  # :path: an ID may hold a slash
def individual(individual: str, _user: Viewer, db: Db, curation: CurationDep) -> IndividualOut:
    return IndividualOut(id=individual, photos=[PhotoOut.of(p) for p in curation.individual(db, individual)])


@router.get("/photos/{photo_id}/image", tags=["photos"])
def photo_image(photo_id: RowId, _user: Viewer, db: Db, curation: CurationDep) -> FileResponse:
    return FileResponse(curation.photo_path(db, photo_id))


@router.get("/export.csv", tags=["export"])
def export_csv(_user: Viewer, db: Db, curation: CurationDep) -> Response:
    """The catalogue as a Kaggle train.csv (Image,Id)."""
    return Response(kaggle_csv((p.image, p.individual_id) for p in curation.catalogue_rows(db)), media_type="text/csv")


@router.get("/export.zip", tags=["export"])
def export_zip(_user: Viewer, db: Db, curation: CurationDep, strip_exif: bool = False) -> Response:
    """The catalogue in Kaggle layout (train.csv + train/, photos under safe file names that train.csv lists);
    ``strip_exif`` removes photo metadata (GPS...). 409 naming the photos whose files are missing: an export
    never leaves a catalogue photo out silently."""
    archive = catalogue_zip(curation.catalogue_rows(db), curation.photo_file, strip_exif)
    return Response(archive, media_type="application/zip")


@router.get("/users", tags=["users"])
def users(_user: Admin, db: Db) -> list[UserOut]:
    return [UserOut.of(u) for u in db.scalars(select(User).order_by(User.name))]


@router.post("/users", status_code=201, tags=["users"])
def create_user(body: UserIn, _user: Admin, db: Db) -> NewUserOut:
    """A new user; the token is in this answer only. 409 when the name is taken, 422 for a bad name or role."""
    token = add_user(db, body.name, body.role)
    db.commit()
    return NewUserOut(name=body.name, role=body.role, token=token)
