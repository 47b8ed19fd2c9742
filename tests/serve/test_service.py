"""Curation, without HTTP: which typed refusal each bad request raises, what decisions and undo leave in the
database (the enums' plain strings), and that every refusal has one HTTP status."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import serve_fixtures
from serve_fixtures import Service, a_catalogue_photo
from sqlalchemy import text

from flukeid.errors import FlukeidError
from flukeid.serve.app import STATUS
from flukeid.serve.db import Action, EncounterStatus, Individual, PhotoStatus
from flukeid.serve.errors import Conflict, Invalid, NotFound, Refused, TooLarge, UnsupportedPhoto
from flukeid.serve.service import Curation, Upload

made, service = serve_fixtures.made, serve_fixtures.service  # the catalogue fixtures (see serve_fixtures)


def uploaded(curation: Curation, photo: Path) -> int:
    """The id of a new encounter of ``photo``."""
    return curation.upload([Upload(photo.name, io.BytesIO(photo.read_bytes()))], "curator").id


def test_every_refusal_has_one_http_status() -> None:
    assert set(STATUS) == set(Refused.__subclasses__())
    assert len(set(STATUS.values())) == len(STATUS) and all(400 <= s < 500 for s in STATUS.values())
    assert issubclass(Refused, FlukeidError)  # the CLI prints it as one red line


def test_bad_decisions_raise_their_refusals(service: Service) -> None:
    curation: Curation = service.app.state.curation
    photo, individual = a_catalogue_photo(service)
    encounter = uploaded(curation, photo)
    with pytest.raises(Invalid, match="unknown action 'merge'; expected one of match, new, reject"):
        curation.decide(encounter, "merge", individual, "curator")
    with pytest.raises(Invalid, match="action 'match' needs an individual"):
        curation.decide(encounter, "match", None, "curator")
    with pytest.raises(Invalid, match="no individual 'w_nobody'"):
        curation.decide(encounter, "match", "w_nobody", "curator")
    with pytest.raises(Conflict, match="exists already"):
        curation.decide(encounter, "new", individual, "curator")
    with pytest.raises(Invalid, match="choose another ID"):
        curation.decide(encounter, "new", "two words", "curator")
    with pytest.raises(Conflict, match=f"encounter {encounter} changed"):
        curation.decide(encounter, "reject", None, "curator", version=2)
    with pytest.raises(NotFound, match="no encounter 99999"):
        curation.decide(99999, "reject", None, "curator")
    curation.decide(encounter, "reject", None, "curator", version=1)
    with pytest.raises(Conflict, match="decided already"):
        curation.decide(encounter, "reject", None, "curator")


def test_a_decision_and_its_undo_store_the_same_strings_as_before(service: Service) -> None:
    curation: Curation = service.app.state.curation
    encounter = uploaded(curation, a_catalogue_photo(service)[0])
    decision = curation.decide(encounter, "new", "w_fresh", "curator")
    assert decision.action is Action.NEW and decision.previous["status"] == "pending"
    with curation.make_session() as db:
        assert curation.encounter(db, encounter).status is EncounterStatus.NEW
        [photo] = curation.encounter_photos(db, encounter)
        assert photo.status is PhotoStatus.CATALOGUE and photo.gallery_id is not None
        raw = db.execute(text("SELECT status FROM encounters WHERE id = :id"), {"id": encounter}).scalar_one()
        assert type(raw) is str and raw == "new"  # the column holds the plain value: no migration
        assert curation.encounters(db, "no such status") == []  # any text queries; it finds nothing

    undo = curation.undo(decision.id, "curator")
    assert undo.action is Action.UNDO
    with curation.make_session() as db:
        assert curation.encounter(db, encounter).status is EncounterStatus.PENDING
        assert db.get(Individual, "w_fresh") is None  # the individual the undone decision made is gone
        assert [p.status for p in curation.encounter_photos(db, encounter)] == [PhotoStatus.PENDING]
        actions = db.execute(text("SELECT action FROM decisions ORDER BY id")).scalars().all()
        assert actions == ["new", "undo"]
    with pytest.raises(Conflict, match="is an undo or was undone already"):
        curation.undo(decision.id, "curator")
    with pytest.raises(Conflict, match="is an undo"):
        curation.undo(undo.id, "curator")
    with pytest.raises(NotFound, match="no decision 99999"):
        curation.undo(99999, "curator")


def test_uploads_refused_keep_nothing(service: Service) -> None:
    curation: Curation = service.app.state.curation
    photo, _ = a_catalogue_photo(service)
    with pytest.raises(Invalid, match="no photos were sent"):
        curation.upload([], "curator")
    too_many = [Upload(f"{i}.jpg", io.BytesIO(b"")) for i in range(curation.settings.limits.max_files + 1)]
    with pytest.raises(TooLarge, match="photos sent; at most"):
        curation.upload(too_many, "curator")
    good, bad = Upload("good.jpg", io.BytesIO(photo.read_bytes())), Upload("bad.jpg", io.BytesIO(b"text"))
    with pytest.raises(UnsupportedPhoto, match=r"bad\.jpg: not a JPEG"):
        curation.upload([good, bad], "curator")
    assert list(curation.uploads.iterdir()) == []  # the good one went too
    with pytest.raises(UnsupportedPhoto):
        curation.identify([Upload("bad.jpg", io.BytesIO(b"text"))])


def test_lookups_raise_not_found(service: Service) -> None:
    curation: Curation = service.app.state.curation
    photo, individual = a_catalogue_photo(service)
    encounter = uploaded(curation, photo)
    with curation.make_session() as db:
        assert {p.individual_id for p in curation.individual(db, individual)} == {individual}
        with pytest.raises(NotFound, match="no individual 'w_nobody'"):
            curation.individual(db, "w_nobody")
        with pytest.raises(NotFound, match="no encounter 99999"):
            curation.encounter(db, 99999)
        [mine] = curation.encounter_photos(db, encounter)
        path = curation.photo_path(db, mine.id)
        assert path.read_bytes() == photo.read_bytes()
        path.unlink()
        with pytest.raises(NotFound, match=f"no photo file for photo {mine.id}"):
            curation.photo_path(db, mine.id)
        with pytest.raises(NotFound, match="no photo file for photo 99999"):
            curation.photo_path(db, 99999)
