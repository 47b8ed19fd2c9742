"""What the curator service does, apart from HTTP: upload encounters, propose matches, record decisions (and
undo them) with their audit trail, and grow the gallery at once when a match is confirmed."""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from flukeid.data.ids import id_problem
from flukeid.errors import FlukeidError
from flukeid.gallery.local import store_local_features
from flukeid.serve.catalog import UPLOADS, CatalogSettings, Matcher, Proposals, import_gallery, photo_file
from flukeid.serve.db import Action, Decision, Encounter, EncounterStatus, Individual, Photo, PhotoStatus, sessions
from flukeid.serve.errors import Conflict, Invalid, NotFound, Refused, TooLarge, UnsupportedPhoto
from flukeid.serve.recovery import hold_decisions, reconcile_gallery
from flukeid.serve.uploads import StoredPhoto, read_limited, store_photo

log = logging.getLogger(__name__)

DECIDED: dict[Action, EncounterStatus] = {
    Action.MATCH: EncounterStatus.MATCHED,
    Action.NEW: EncounterStatus.NEW,
    Action.REJECT: EncounterStatus.REJECTED,
}
"""The actions a curator decides, with the status each leaves the encounter in."""
FAULT_VARIABLE = "FLUKEID_FAULT"
"""Crash tests set it to a fault point's name (see ``fault_point``); the service then dies there."""


def fault_point(name: str) -> None:
    """Die at once (SIGKILL: no cleanup, as a power cut or the OOM killer would) when FLUKEID_FAULT names this
    point; crash tests use it to stop the service between its two stores' writes. The points:
    ``decide:gallery-written`` (a match or new decision's photos are in the gallery, its database transaction
    not committed) and ``undo:committed`` (an undo is committed, its photos not yet removed from the gallery).
    Unset, it does nothing."""
    if os.environ.get(FAULT_VARIABLE) == name:
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def _like_escaped(text: str) -> str:
    """``text`` as a LIKE pattern that matches it literally (escape character: backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class Upload:
    name: str
    stream: Any  # a binary file object


def _state(encounter: Encounter) -> dict[str, Any]:
    """What the audit trail keeps of an encounter before a decision changes it."""
    return {"status": encounter.status, "individual": encounter.individual_id, "version": encounter.version}


def _vector(photo: Photo) -> np.ndarray:
    if photo.vector is None:
        raise Conflict(f"photo {photo.id} has no embedding")
    return np.frombuffer(photo.vector, dtype="<f4")


class Curation:
    """The service's state: database sessions, the matcher (model + gallery) and the uploads folder.

    Decisions and undos hold one lock, so a process never interleaves two gallery writes; the version check in
    the encounter's UPDATE makes a second decision on the same encounter fail with 409 across processes too.

    The database is the truth; the gallery (a second store, with its own transactions) follows it in one order:
    photos join the gallery before the decision's database commit and leave it after an undo's commit, so
    whatever the moment of a crash, the gallery never lacks a committed catalogue photo, and at most holds
    photos no committed decision put there. Start-up removes those (``reconcile_gallery``) before importing
    photos enrolled meanwhile with ``flukeid enroll``."""

    def __init__(self, folder: Path, settings: CatalogSettings) -> None:
        self.folder, self.settings = Path(folder).resolve(), settings  # uploads never depend on the working dir
        self.make_session: sessionmaker[Session] = sessions(settings.database)
        self.matcher = Matcher.of(settings)
        self.uploads = self.folder / UPLOADS
        self._lock = threading.Lock()
        with self.make_session.begin() as session:
            hold_decisions(session)  # another service process on this catalogue finishes its decision first
            reconcile_gallery(session, self.matcher.gallery, self.folder)
            import_gallery(session, self.matcher.gallery)

    def photo_file(self, photo: Photo) -> Path:
        """The file of ``photo`` (stored relative to the catalogue folder, or absolute when imported)."""
        return photo_file(self.folder, photo.path)

    # -- uploads -----------------------------------------------------------------------------------------------

    def _store(self, files: Sequence[Upload], folder: Path) -> list[StoredPhoto]:
        limits = self.settings.limits
        if not files:
            raise Invalid("no photos were sent")
        if len(files) > limits.max_files:
            raise TooLarge(f"{len(files)} photos sent; at most {limits.max_files} per encounter")
        stored: list[StoredPhoto] = []
        try:
            for upload in files:
                stored.append(
                    store_photo(read_limited(upload.stream, upload.name, limits), upload.name, folder, limits)
                )
        except Refused:
            for photo in stored:
                photo.path.unlink(missing_ok=True)
            raise
        return stored

    def _embed(self, stored: list[StoredPhoto]) -> list[np.ndarray]:
        vectors = self.matcher.embed([p.path for p in stored])
        unread = [p.original_name for p in stored if p.path not in vectors]
        if unread:
            for photo in stored:
                photo.path.unlink(missing_ok=True)
            raise UnsupportedPhoto(f"cannot read {', '.join(unread)} as photos")
        return [vectors[p.path] for p in stored]

    def upload(self, files: Sequence[Upload], user: str) -> Encounter:
        """Store an encounter's photos with their embeddings; it waits for a decision."""
        stored = self._store(files, self.uploads)
        vectors = self._embed(stored)
        with self.make_session.begin() as session:
            encounter = Encounter(created_by=user, status=EncounterStatus.PENDING, version=1)
            session.add(encounter)
            session.flush()
            for photo, vector in zip(stored, vectors):
                session.add(
                    Photo(
                        image=photo.image,
                        original_name=photo.original_name,
                        path=(Path(UPLOADS) / photo.image).as_posix(),  # relative: the folder may move
                        status=PhotoStatus.PENDING,
                        encounter_id=encounter.id,
                        sha1=photo.sha1,
                        width=photo.width,
                        height=photo.height,
                        vector=vector.astype("<f4").tobytes(),
                    )
                )
        return encounter

    def identify(self, files: Sequence[Upload], k: int = 5) -> Proposals:
        """Proposals for photos that are not kept (nothing is stored)."""
        with tempfile.TemporaryDirectory() as tmp:
            stored = self._store(files, Path(tmp))
            self._embed(stored)  # refuses unreadable photos
            return self.matcher.proposals([p.path for p in stored], k=k)

    # -- reading -----------------------------------------------------------------------------------------------

    def encounter(self, session: Session, encounter_id: int) -> Encounter:
        encounter = session.get(Encounter, encounter_id)
        if encounter is None:
            raise NotFound(f"no encounter {encounter_id}")
        return encounter

    def encounter_photos(self, session: Session, encounter_id: int) -> list[Photo]:
        return list(session.scalars(select(Photo).where(Photo.encounter_id == encounter_id).order_by(Photo.id)))

    def proposals(self, session: Session, encounter_id: int, k: int = 5) -> Proposals:
        self.encounter(session, encounter_id)
        photos = self.encounter_photos(session, encounter_id)
        return self.matcher.proposals([photo_file(self.folder, p.path) for p in photos], k=k)

    def photos_of_gallery_ids(self, session: Session, gallery_ids: Sequence[int]) -> dict[int, Photo]:
        if not gallery_ids:
            return {}
        rows = session.scalars(select(Photo).where(Photo.gallery_id.in_(list(gallery_ids))))
        return {p.gallery_id: p for p in rows if p.gallery_id is not None}

    def individual_photos(self, session: Session, individual: str, limit: int | None = None) -> list[Photo]:
        query = select(Photo).where(Photo.individual_id == individual, Photo.status == PhotoStatus.CATALOGUE)
        return list(session.scalars(query.order_by(Photo.created_at.desc(), Photo.id.desc()).limit(limit)))

    def individual(self, session: Session, individual: str) -> list[Photo]:
        """The catalogue photos of ``individual``, newest first; NotFound when the catalogue lacks it."""
        photos = self.individual_photos(session, individual)
        if not photos and session.get(Individual, individual) is None:
            raise NotFound(f"no individual {individual!r}")
        return photos

    def photo_path(self, session: Session, photo_id: int) -> Path:
        """The file of photo ``photo_id``; NotFound when there is no such photo or its file is missing."""
        photo = session.get(Photo, photo_id)
        path = self.photo_file(photo) if photo is not None else None
        if path is None or not path.is_file():
            raise NotFound(f"no photo file for photo {photo_id}")
        return path

    def search_individuals(self, session: Session, text: str = "", limit: int = 50) -> list[tuple[str, int]]:
        """Individuals whose ID contains ``text`` (case-insensitive), with their catalogue photo counts."""
        counts = (
            select(Individual.id, func.count(Photo.id))
            .join(Photo, (Photo.individual_id == Individual.id) & (Photo.status == PhotoStatus.CATALOGUE), isouter=True)
            .where(Individual.id.ilike(f"%{_like_escaped(text)}%", escape="\\"))
            .group_by(Individual.id)
            .order_by(Individual.id)
            .limit(limit)
        )
        return [(name, int(n)) for name, n in session.execute(counts)]

    def next_pending(self, session: Session, after: int = 0) -> int | None:
        query = (
            select(Encounter.id)
            .where(Encounter.status == EncounterStatus.PENDING, Encounter.id > after)
            .order_by(Encounter.id)
        )
        found = session.scalars(query.limit(1)).first()
        if found is None and after:
            return self.next_pending(session, 0)
        return found

    def catalogue_rows(self, session: Session) -> list[Photo]:
        query = select(Photo).where(Photo.status == PhotoStatus.CATALOGUE, Photo.individual_id.is_not(None))
        return list(session.scalars(query.order_by(Photo.id)))

    # -- decisions ---------------------------------------------------------------------------------------------

    def decide(
        self, encounter_id: int, action: str, individual: str | None, user: str, version: int | None = None
    ) -> Decision:
        """Match the encounter to ``individual``, make it a new individual named ``individual``, or reject it.
        Matched photos join the gallery at once. A decision on an encounter that is no longer pending, or
        whose version moved since ``version``, raises Conflict; an unknown action or a missing individual Invalid."""
        if action not in DECIDED:
            raise Invalid(f"unknown action {action!r}; expected one of {', '.join(DECIDED)}")
        kind = Action(action)
        if kind != Action.REJECT and not individual:
            raise Invalid(f"action {action!r} needs an individual")
        with self._lock:
            session = self.make_session()
            enrolled: list[str] = []
            try:
                with session.begin():
                    decision, enrolled = self._decide(session, encounter_id, kind, individual, user, version)
                    if enrolled:
                        fault_point("decide:gallery-written")
                return decision
            except Exception:
                if enrolled:  # the database refused the decision: the gallery forgets it too
                    self.matcher.gallery.remove(images=enrolled)
                raise
            finally:
                session.close()

    def _decide(
        self,
        session: Session,
        encounter_id: int,
        action: Action,
        individual: str | None,
        user: str,
        version: int | None,
    ) -> tuple[Decision, list[str]]:
        """The decision, inside the caller's transaction; returns it and the images it enrolled."""
        encounter = self.encounter(session, encounter_id)
        if encounter.status != EncounterStatus.PENDING:
            raise Conflict(f"encounter {encounter_id} was decided already ({encounter.status})")
        if version is not None and version != encounter.version:
            raise Conflict(f"encounter {encounter_id} changed (version {encounter.version}, not {version})")
        target = self._target(session, action, individual, user)
        previous = _state(encounter)
        moved = session.execute(
            update(Encounter)
            .where(Encounter.id == encounter_id, Encounter.version == encounter.version)
            .values(status=DECIDED[action], individual_id=target, version=encounter.version + 1)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:
            raise Conflict(f"encounter {encounter_id} was decided by someone else meanwhile")
        decision = Decision(
            encounter_id=encounter_id, user=user, action=action, individual_id=target, previous=previous
        )
        session.add(decision)
        photos = [p for p in self.encounter_photos(session, encounter_id) if p.status == PhotoStatus.PENDING]
        if action == Action.REJECT:
            for photo in photos:
                photo.status = PhotoStatus.REJECTED
            return decision, []
        return decision, self._enroll(session, photos, target)

    def _target(self, session: Session, action: Action, individual: str | None, user: str) -> str | None:
        if action == Action.REJECT:
            return None
        assert individual is not None
        exists = session.get(Individual, individual) is not None
        if action == Action.MATCH and not exists:
            raise Invalid(f"no individual {individual!r} in the catalogue; use action 'new' to add one")
        if action == Action.NEW:
            if exists:
                raise Conflict(f"individual {individual!r} exists already; match to it instead")
            problem = id_problem(individual)
            if problem is not None:
                raise Invalid(f"{problem}; choose another ID for the new individual")
            session.add(Individual(id=individual, created_by=user))
        return individual

    def _enroll(self, session: Session, photos: list[Photo], individual: str | None) -> list[str]:
        """Add photos to the gallery within the open transaction; returns their image names."""
        vectors = np.stack([_vector(p) for p in photos])
        identifier = self.matcher.identifier
        crops = identifier.crops([self.photo_file(p) for p in photos])  # what is matched, as in `gallery build`
        gallery = self.matcher.gallery
        ids = gallery.add(
            [p.image for p in photos],
            [individual] * len(photos),
            vectors,
            paths=[str(c.resolve()) for c in crops],  # absolute: other flukeid commands read them
        )
        store_local_features(gallery, identifier.matchers, list(gallery.photos_by_id(ids).values()))
        for photo, gallery_id in zip(photos, ids):
            photo.status, photo.individual_id, photo.gallery_id = PhotoStatus.CATALOGUE, individual, gallery_id
        return [p.image for p in photos]

    def undo(self, decision_id: int, user: str) -> Decision:
        """Undo the latest decision on an encounter: its photos leave the gallery and wait again; an individual
        the decision created is removed. Undoing anything else raises Conflict, an unknown decision NotFound."""
        with self._lock:
            return self._undo(decision_id, user)

    def _undo(self, decision_id: int, user: str) -> Decision:
        with self.make_session() as session, session.begin():
            decision = session.get(Decision, decision_id)
            if decision is None:
                raise NotFound(f"no decision {decision_id}")
            if decision.action == Action.UNDO or decision.undone_by is not None:
                raise Conflict(f"decision {decision_id} is an undo or was undone already")
            latest = session.scalars(
                select(Decision.id)
                .where(Decision.encounter_id == decision.encounter_id, Decision.action != Action.UNDO)
                .order_by(Decision.id.desc())
                .limit(1)
            ).first()
            if latest != decision_id:
                raise Conflict(f"decision {decision_id} is not the latest on its encounter; undo {latest}")
            encounter = self.encounter(session, decision.encounter_id)
            previous = _state(encounter)
            photos = [p for p in self.encounter_photos(session, encounter.id) if p.status != PhotoStatus.PENDING]
            enrolled = [p.image for p in photos if p.gallery_id is not None]
            for photo in photos:
                photo.status, photo.individual_id, photo.gallery_id = PhotoStatus.PENDING, None, None
            encounter.status = EncounterStatus(decision.previous["status"])
            encounter.individual_id = decision.previous["individual"]
            encounter.version += 1
            session.flush()
            if decision.action == Action.NEW and decision.individual_id:
                others = session.scalar(
                    select(func.count(Photo.id)).where(Photo.individual_id == decision.individual_id)
                )
                if not others:
                    session.delete(session.get(Individual, decision.individual_id))
            undo = Decision(
                encounter_id=encounter.id,
                user=user,
                action=Action.UNDO,
                individual_id=decision.individual_id,
                previous=previous,
            )
            session.add(undo)
            session.flush()
            decision.undone_by = undo.id
        if enrolled:  # after the commit: the database is the service's truth
            fault_point("undo:committed")
            self._forget(enrolled)
        return undo

    def _forget(self, images: list[str]) -> None:
        """Remove undone photos from the gallery; ones already gone (removed by another process's start-up
        reconciliation) are no error."""
        try:
            self.matcher.gallery.remove(images=images)
        except FlukeidError:
            held = {p.image for p in self.matcher.gallery.photos()} & set(images)
            if held:
                self.matcher.gallery.remove(images=sorted(held))
            log.warning("undo: %d of %d photos had left the gallery already", len(images) - len(held), len(images))

    def audit(
        self, session: Session, encounter_id: int | None = None, individual: str | None = None, limit: int = 200
    ) -> list[Decision]:
        """Decisions, newest first, of one encounter and/or about one individual, or all."""
        query = select(Decision).order_by(Decision.id.desc()).limit(limit)
        if encounter_id is not None:
            query = query.where(Decision.encounter_id == encounter_id)
        if individual is not None:
            query = query.where(Decision.individual_id == individual)
        return list(session.scalars(query))

    def encounters(self, session: Session, status: str = EncounterStatus.PENDING, limit: int = 100) -> list[Encounter]:
        query = select(Encounter).where(Encounter.status == status).order_by(Encounter.id).limit(limit)
        return list(session.scalars(query))
