"""Crash consistency of the curator service: a real `flukeid serve` process is killed (SIGKILL, at a named fault
point) between its gallery and database writes; the next start must reconcile the gallery with the database
(the truth) and serve again."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import serve_fixtures
from fastapi.testclient import TestClient
from serve_fixtures import Service, a_catalogue_photo
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from flukeid.gallery import Gallery
from flukeid.serve.app import create_app
from flukeid.serve.catalog import CatalogSettings, import_gallery
from flukeid.serve.db import Decision, Encounter, Individual, Photo, sessions
from flukeid.serve.recovery import hold_decisions
from flukeid.serve.service import FAULT_VARIABLE, Curation

made, service = serve_fixtures.made, serve_fixtures.service  # the catalogue fixtures (see serve_fixtures)
START_TIMEOUT = 240.0  # seconds for `flukeid serve` to answer (it imports torch on a busy 2-core machine)


@dataclass
class Served:
    """A `flukeid serve` process on a free 127.0.0.1 port."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


Start = Callable[[Service, str], Served]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Start]:
    """Start `python -m flukeid serve FOLDER` with FLUKEID_FAULT=fault; every process is ended after the test."""
    started: list[Served] = []

    def start(service: Service, fault: str) -> Served:
        port, log = _free_port(), tmp_path / f"serve-{len(started)}.log"
        env = {**os.environ, FAULT_VARIABLE: fault}  # PYTHONPATH and FLUKEID_CACHE carry over
        command = [sys.executable, "-m", "flukeid", "serve", str(service.folder), "--port", str(port)]
        with log.open("wb") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        served = Served(process, f"http://127.0.0.1:{port}", log)
        started.append(served)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, f"flukeid serve exited with {process.returncode}:\n{served.output()}"
            assert time.monotonic() < deadline, f"flukeid serve did not answer in {START_TIMEOUT} s:\n{served.output()}"
            try:
                if httpx.get(served.url + "/api/me", headers=service.auth("viewer"), timeout=5).status_code == 200:
                    return served
            except httpx.TransportError:
                pass
            time.sleep(0.3)

    yield start
    for served in started:
        if served.process.poll() is None:
            served.process.terminate()
            served.process.wait(30)


def _killed_by(served: Served, request: httpx.Request) -> None:
    """Send ``request``; the service must die of SIGKILL at its fault point without answering."""
    with pytest.raises(httpx.TransportError):
        answer = httpx.Client(timeout=120).send(request)
        pytest.fail(f"the service answered {answer.status_code} {answer.text}; it should have died")
    assert served.process.wait(60) == -signal.SIGKILL, served.output()


def _gallery(service: Service) -> Gallery:
    return Gallery.open(service.folder.parent / "gallery")


def _database(service: Service) -> Session:
    return sessions(CatalogSettings.load(service.folder).database)()


def assert_gallery_is_the_catalogue(service: Service) -> None:
    """The gallery holds exactly the database's catalogue photos, each under its recorded gallery id."""
    with _database(service) as db:
        rows = db.execute(select(Photo.image, Photo.gallery_id).where(Photo.status == "catalogue")).all()
    assert {(p.image, p.id) for p in _gallery(service).photos()} == {(r.image, r.gallery_id) for r in rows}


def assert_import_alone_fails(service: Service) -> None:
    """What a start did before reconciliation: importing the gallery trips over the crash's leftover."""
    with pytest.raises(IntegrityError, match="image"), _database(service) as db, db.begin():
        import_gallery(db, _gallery(service))


def _trail(service: Service, encounter_id: int) -> tuple[str, list[tuple[str, bool]]]:
    """The encounter's status and its decisions (action, undone?), oldest first."""
    with _database(service) as db:
        encounter = db.get(Encounter, encounter_id)
        assert encounter is not None
        decisions = db.scalars(select(Decision).where(Decision.encounter_id == encounter_id).order_by(Decision.id))
        return encounter.status, [(d.action, d.undone_by is not None) for d in decisions]


def test_killed_after_the_gallery_write_of_a_new_decision_the_restart_forgets_it(
    service: Service, serve: Start
) -> None:
    photo, _ = a_catalogue_photo(service)
    encounter = service.upload(photo).json()
    image = encounter["photos"][0]["image"]
    served = serve(service, "decide:gallery-written")
    body = {"action": "new", "individual": "w_crash", "version": encounter["version"]}
    url = f"{served.url}/api/encounters/{encounter['id']}/decision"
    _killed_by(served, httpx.Request("POST", url, json=body, headers=service.auth("curator")))
    assert image in {p.image for p in _gallery(service).photos()}  # the crash left it searchable...
    assert _trail(service, encounter["id"]) == ("pending", [])  # ...with no decision committed
    assert_import_alone_fails(service)

    client = TestClient(create_app(service.folder))  # the restart (it failed with IntegrityError before)
    assert_gallery_is_the_catalogue(service)
    assert image not in {p.image for p in _gallery(service).photos()}
    assert _trail(service, encounter["id"]) == ("pending", [])
    with _database(service) as db:
        assert db.get(Individual, "w_crash") is None
    again = client.post(f"/api/encounters/{encounter['id']}/decision", json=body, headers=service.auth("curator"))
    assert again.status_code == 200, again.text
    assert_gallery_is_the_catalogue(service)
    assert image in {p.image for p in _gallery(service).photos()}


def test_killed_after_the_commit_of_an_undo_the_restart_removes_the_photo(service: Service, serve: Start) -> None:
    photo, individual = a_catalogue_photo(service)
    encounter = service.upload(photo).json()
    image = encounter["photos"][0]["image"]
    decided = service.decide(encounter["id"], action="match", individual=individual).json()
    served = serve(service, "undo:committed")
    url = f"{served.url}/api/decisions/{decided['id']}/undo"
    _killed_by(served, httpx.Request("POST", url, headers=service.auth("curator")))
    assert _trail(service, encounter["id"]) == ("pending", [("match", True), ("undo", False)])  # undo committed...
    assert image in {p.image for p in _gallery(service).photos()}  # ...but the gallery still has the photo
    assert_import_alone_fails(service)

    client = TestClient(create_app(service.folder))
    assert_gallery_is_the_catalogue(service)
    assert image not in {p.image for p in _gallery(service).photos()}
    assert _trail(service, encounter["id"]) == ("pending", [("match", True), ("undo", False)])
    decision = {"action": "reject"}
    redo = client.post(f"/api/encounters/{encounter['id']}/decision", json=decision, headers=service.auth("curator"))
    assert redo.status_code == 200, redo.text


class _Crash(BaseException):
    """A crash at a fault point, in-process: no `except Exception` cleanup runs, the open transaction is lost."""


@pytest.mark.parametrize("action", ["match", "new"])
def test_a_crash_at_either_fault_point_leaves_a_consistent_catalogue_after_restart(
    service: Service, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    photo, individual = a_catalogue_photo(service)
    encounter = service.upload(photo).json()
    target = individual if action == "match" else "w_fresh"

    crash_at: list[str] = ["decide:gallery-written"]

    def fault(name: str) -> None:
        if name in crash_at:
            raise _Crash(name)

    monkeypatch.setattr("flukeid.serve.service.fault_point", fault)
    with pytest.raises(_Crash):
        service.app.state.curation.decide(encounter["id"], action, target, "curator")
    Curation(service.folder, CatalogSettings.load(service.folder))  # restart
    assert_gallery_is_the_catalogue(service)
    assert _trail(service, encounter["id"]) == ("pending", [])

    curation = Curation(service.folder, CatalogSettings.load(service.folder))
    crash_at[:] = []
    decision = curation.decide(encounter["id"], action, target, "curator")
    assert_gallery_is_the_catalogue(service)
    crash_at[:] = ["undo:committed"]
    with pytest.raises(_Crash):
        curation.undo(decision.id, "curator")
    Curation(service.folder, CatalogSettings.load(service.folder))
    assert_gallery_is_the_catalogue(service)
    assert _trail(service, encounter["id"]) == ("pending", [(action, True), ("undo", False)])


def test_catalogue_photos_missing_from_the_gallery_are_enrolled_again_or_reported(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    photo, individual = a_catalogue_photo(service)
    encounter = service.upload(photo).json()
    uploaded = encounter["photos"][0]["image"]
    assert service.decide(encounter["id"], action="match", individual=individual).status_code == 200
    gallery = _gallery(service)
    imported = next(p for p in gallery.photos() if p.individual == individual and p.image != uploaded)
    vector = gallery.all_vectors()[[p.id for p in gallery.photos()].index(imported.id)]
    gallery.remove(images=[uploaded, imported.image])  # e.g. an older copy of the gallery was restored

    with caplog.at_level(logging.WARNING, logger="flukeid.serve.recovery"):
        client = TestClient(create_app(service.folder))
    assert "enrolled again from their stored vectors" in caplog.text and uploaded in caplog.text
    assert "no stored vector" in caplog.text and imported.image in caplog.text
    assert uploaded in {p.image for p in gallery.photos()}  # the upload kept its vector: searchable again
    body = client.get(f"/api/encounters/{encounter['id']}", headers=service.auth("viewer")).json()
    assert body["status"] == "matched"
    with _database(service) as db:
        lost = db.scalars(select(Photo).where(Photo.image == imported.image)).one()
        assert lost.status == "catalogue" and lost.gallery_id is None  # kept in the catalogue, unlinked

    gallery.add([imported.image], [individual], np.stack([vector]), paths=[imported.path])  # enrolled again
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flukeid.serve.recovery"):
        create_app(service.folder)
    assert "under another id; linked" in caplog.text
    assert_gallery_is_the_catalogue(service)


def test_an_undo_whose_photos_left_the_gallery_already_succeeds(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    photo, individual = a_catalogue_photo(service)
    encounter = service.upload(photo).json()
    decided = service.decide(encounter["id"], action="match", individual=individual).json()
    _gallery(service).remove(images=[encounter["photos"][0]["image"]])  # another process's start reconciled it
    with caplog.at_level(logging.WARNING, logger="flukeid.serve.service"):
        undone = service.client.post(f"/api/decisions/{decided['id']}/undo", headers=service.auth("curator"))
    assert undone.status_code == 200, undone.text
    assert "1 of 1 photos had left the gallery already" in caplog.text
    assert_gallery_is_the_catalogue(service)


def test_start_up_holds_decisions_of_other_processes_until_it_has_reconciled(service: Service) -> None:
    url = CatalogSettings.load(service.folder).database
    sqlite = url.startswith("sqlite")
    other = create_engine(url, connect_args={"timeout": 0.2} if sqlite else {})
    with sessions(url).begin() as session:
        hold_decisions(session)
        with other.connect() as connection, pytest.raises(OperationalError, match="lock"):
            if not sqlite:
                connection.execute(text("SET lock_timeout = '200ms'"))
            connection.execute(text("UPDATE encounters SET version = version + 1"))  # what a decision does
    other.dispose()
