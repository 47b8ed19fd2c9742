"""The JSON the curator API reads and answers, as Pydantic models (so /docs and /openapi.json describe them),
each answer built from the database rows by its ``of``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, PlainSerializer, WithJsonSchema
from sqlalchemy.orm import Session

from flukeid.serve.catalog import Proposals
from flukeid.serve.db import Action, Decision, Encounter, EncounterStatus, Photo, PhotoStatus, Role, User
from flukeid.serve.service import Curation

IsoTime = Annotated[
    datetime,
    PlainSerializer(datetime.isoformat, return_type=str),  # as stored: with an offset where the database keeps one
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class DecisionIn(BaseModel):
    action: str = Field(description="match, new or reject")
    individual: str | None = Field(None, description="the individual matched, or the new individual's ID")
    version: int | None = Field(None, description="the encounter version the decision was made on; stale: 409")


class UserIn(BaseModel):
    name: str
    role: str = Field(description="viewer, curator or admin")


class UserOut(BaseModel):
    name: str
    role: Role

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(name=user.name, role=user.role)


class NewUserOut(UserOut):
    token: str = Field(description="the user's bearer token, shown in this answer only")


class PhotoOut(BaseModel):
    id: int
    image: str = Field(description="the stored file name")
    original_name: str | None
    status: PhotoStatus
    individual: str | None
    encounter: int | None
    created_at: IsoTime
    url: str = Field(description="where the photo file is served")

    @classmethod
    def of(cls, photo: Photo) -> PhotoOut:
        return cls(
            id=photo.id,
            image=photo.image,
            original_name=photo.original_name,
            status=photo.status,
            individual=photo.individual_id,
            encounter=photo.encounter_id,
            created_at=photo.created_at,
            url=f"/api/photos/{photo.id}/image",
        )


class EncounterOut(BaseModel):
    id: int
    status: EncounterStatus
    individual: str | None
    version: int = Field(description="moves with every decision; send it with a decision")
    created_at: IsoTime
    created_by: str
    photos: list[PhotoOut]

    @classmethod
    def of(cls, encounter: Encounter, photos: list[Photo]) -> EncounterOut:
        return cls(
            id=encounter.id,
            status=encounter.status,
            individual=encounter.individual_id,
            version=encounter.version,
            created_at=encounter.created_at,
            created_by=encounter.created_by,
            photos=[PhotoOut.of(p) for p in photos],
        )


class DecisionOut(BaseModel):
    id: int
    encounter: int
    user: str
    at: IsoTime
    action: Action
    individual: str | None
    previous: dict[str, Any] = Field(description="the encounter's status, individual and version before")
    undone_by: int | None = Field(description="the id of the undo decision, once undone")

    @classmethod
    def of(cls, decision: Decision) -> DecisionOut:
        return cls(
            id=decision.id,
            encounter=decision.encounter_id,
            user=decision.user,
            at=decision.at,
            action=decision.action,
            individual=decision.individual_id,
            previous=decision.previous,
            undone_by=decision.undone_by,
        )


class CandidateOut(BaseModel):
    individual: str
    score: float
    probability: float = Field(description="P(the photos show this individual)")
    photos: list[PhotoOut] = Field(description="its catalogue photos most like the query, best first")


class NewIndividualOut(BaseModel):
    probability: float = Field(description="P(none of the catalogue's individuals)")
    rank: int = Field(description="0-based place of the new-individual option among the candidates")


class ProposalsOut(BaseModel):
    candidates: list[CandidateOut]
    new_individual: NewIndividualOut

    @classmethod
    def of(cls, curation: Curation, session: Session, proposals: Proposals) -> ProposalsOut:
        """Proposals with each candidate's best photos (its latest three when none scored)."""
        by_gallery_id = curation.photos_of_gallery_ids(session, [i for c in proposals.candidates for i in c.photos])
        candidates = []
        for c in proposals.candidates:
            photos = [by_gallery_id[i] for i in c.photos if i in by_gallery_id]
            photos = photos or curation.individual_photos(session, c.individual, limit=3)
            candidates.append(
                CandidateOut(
                    individual=c.individual,
                    score=round(c.score, 5),
                    probability=round(c.probability, 5),
                    photos=[PhotoOut.of(p) for p in photos],
                )
            )
        new = NewIndividualOut(probability=round(proposals.new_probability, 5), rank=proposals.new_rank)
        return cls(candidates=candidates, new_individual=new)


class EncounterProposalsOut(BaseModel):
    encounter: int
    version: int = Field(description="the encounter version these proposals were made on")
    candidates: list[CandidateOut]
    new_individual: NewIndividualOut


class IndividualCount(BaseModel):
    id: str
    photos: int = Field(description="its number of catalogue photos")


class IndividualOut(BaseModel):
    id: str
    photos: list[PhotoOut] = Field(description="its catalogue photos, newest first")
