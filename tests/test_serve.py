"""Curator service API on a tiny untrained model: auth and roles, uploads and their limits, proposals,
decisions with conflicts and undo, the gallery growing without retraining, export, pages."""

from __future__ import annotations

import csv
import html
import io
import json
import os
import shutil
import socket
import sqlite3
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import torch
import uvicorn
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import create_engine, event, select, text, update

from flukeid import NEW_WHALE
from flukeid.cli import main
from flukeid.detect.model import DetectorConfig, attach_detector, build_detector, save_detector
from flukeid.errors import FlukeidError
from flukeid.gallery import Gallery
from flukeid.models.artifact import ModelConfig, build_model, save_model
from flukeid.serve.app import create_app
from flukeid.serve.auth import add_user
from flukeid.serve.catalog import SETTINGS_FILE, CatalogSettings, init_catalog
from flukeid.serve.db import Base, Photo, migrate, sessions
from flukeid.synth import SynthConfig, generate

TINY = ModelConfig(backbone="timm/test_efficientnet", pretrained=False, embedding_dim=32, image_size=(48, 96))


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic catalogue (12 individuals), a tiny model and its gallery, built once."""
    root = tmp_path_factory.mktemp("serve")
    generate(root / "cat", SynthConfig(individuals=12, photos=(2, 3), size=(64, 96), seed=3, train_new_whale=0.1))
    save_model(root / "model", build_model(TINY).eval(), TINY, labels=[], threshold=0.95)
    assert main(["gallery", "build", str(root / "model"), str(root / "cat"), "--out", str(root / "gallery")]) == 0
    return root


def fresh_database() -> str | None:
    """None (a SQLite file in the catalogue) unless FLUKEID_TEST_DATABASE names a server database, e.g.
    postgresql+psycopg://postgres@127.0.0.1:5433/flukeid, which is then emptied for the test."""
    url = os.environ.get("FLUKEID_TEST_DATABASE")
    if url:
        engine = create_engine(url)
        Base.metadata.drop_all(engine)
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        engine.dispose()
    return url


class Service:
    """A fresh catalogue folder with one user per role and a client for it."""

    def __init__(self, made: Path, folder: Path, **limits: int) -> None:
        shutil.copytree(made / "gallery", folder / "gallery")
        self.folder, self.cat = folder / "catalog", made / "cat"
        settings = init_catalog(self.folder, made / "model", folder / "gallery", fresh_database())
        if limits:
            raw = json.loads((self.folder / SETTINGS_FILE).read_text())
            raw["limits"] = limits
            (self.folder / SETTINGS_FILE).write_text(json.dumps(raw))
        with sessions(settings.database).begin() as session:
            self.tokens = {role: add_user(session, role, role) for role in ("viewer", "curator", "admin")}
        self.app = create_app(self.folder)
        self.client = TestClient(self.app)

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def photo(self, name: str) -> Path:
        return next((self.cat / "train").glob(name))

    def upload(self, *paths: Path, role: str = "curator", names: list[str] | None = None):
        files = [("files", (n, p.read_bytes(), "image/jpeg")) for n, p in zip(names or [p.name for p in paths], paths)]
        return self.client.post("/api/encounters", files=files, headers=self.auth(role))

    def decide(self, encounter: int, role: str = "curator", **body: object):
        return self.client.post(f"/api/encounters/{encounter}/decision", json=body, headers=self.auth(role))


@pytest.fixture
def service(made: Path, tmp_path: Path) -> Service:
    return Service(made, tmp_path)


def a_catalogue_photo(service: Service) -> tuple[Path, str]:
    row = next(p for p in Gallery.open(service.folder.parent / "gallery").photos() if p.individual != NEW_WHALE)
    return Path(row.path), row.individual


def test_migrations_make_exactly_the_models_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    migrate(url)
    with create_engine(url).connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_every_endpoint_needs_a_token_and_the_right_role(service: Service) -> None:
    photo, _ = a_catalogue_photo(service)
    assert service.client.get("/api/individuals").status_code == 401
    assert service.client.get("/api/individuals", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert service.client.get("/api/individuals", headers=service.auth("viewer")).status_code == 200
    assert service.upload(photo, role="viewer").status_code == 403
    assert service.client.get("/api/users", headers=service.auth("curator")).status_code == 403
    made = service.client.post("/api/users", json={"name": "ann", "role": "viewer"}, headers=service.auth("admin"))
    assert made.status_code == 201
    me = service.client.get("/api/me", headers={"Authorization": f"Bearer {made.json()['token']}"})
    assert me.json() == {"name": "ann", "role": "viewer"}
    again = service.client.post("/api/users", json={"name": "ann", "role": "viewer"}, headers=service.auth("admin"))
    assert again.status_code == 409
    listed = service.client.get("/api/users", headers=service.auth("admin")).json()
    assert {u["name"]: u["role"] for u in listed}["ann"] == "viewer" and len(listed) == 4
    assert "token" not in listed[0] and "token_sha256" not in listed[0]
    for missing in ("/api/individuals/w_nobody", "/api/photos/99999/image", "/api/encounters/99999"):
        assert service.client.get(missing, headers=service.auth("viewer")).status_code == 404


def test_upload_proposes_five_candidates_and_the_new_option(service: Service) -> None:
    photo, individual = a_catalogue_photo(service)
    answer = service.upload(photo, names=["../../escape.jpg"])
    assert answer.status_code == 201, answer.text
    encounter = answer.json()
    [stored] = encounter["photos"]
    assert stored["original_name"] == "escape.jpg" and stored["image"] != "escape.jpg"
    assert (service.folder / "uploads" / stored["image"]).is_file()
    assert not (service.folder.parent / "escape.jpg").exists()
    proposals = service.client.get(f"/api/encounters/{encounter['id']}/proposals", headers=service.auth("viewer"))
    body = proposals.json()
    assert body["candidates"][0]["individual"] == individual  # the very photo is in the catalogue
    assert len(body["candidates"]) == 5 and body["candidates"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert all(0.0 <= c["probability"] <= 1.0 and c["photos"] for c in body["candidates"])
    assert 0.0 <= body["new_individual"]["probability"] <= 1.0 and 0 <= body["new_individual"]["rank"] <= 5
    image = service.client.get(body["candidates"][0]["photos"][0]["url"], headers=service.auth("viewer"))
    assert image.status_code == 200 and image.content == photo.read_bytes()


def test_an_encounter_of_several_photos_is_one_query(service: Service) -> None:
    photos = sorted((service.cat / "train").iterdir())[:3]
    encounter = service.upload(*photos).json()
    assert len(encounter["photos"]) == 3
    body = service.client.get(f"/api/encounters/{encounter['id']}/proposals", headers=service.auth("viewer")).json()
    assert body["candidates"][0]["score"] == pytest.approx(1.0, abs=1e-4)


def test_a_confirmed_match_grows_the_gallery_and_undo_takes_it_back(service: Service) -> None:
    photo, individual = a_catalogue_photo(service)
    gallery = Gallery.open(service.folder.parent / "gallery")
    before = len(gallery)
    encounter = service.upload(photo).json()
    decided = service.decide(encounter["id"], action="match", individual=individual, version=encounter["version"])
    assert decided.status_code == 200, decided.text
    assert len(gallery) == before + 1 and encounter["photos"][0]["image"] in {p.image for p in gallery.photos()}
    history = service.client.get(f"/api/individuals/{individual}", headers=service.auth("viewer")).json()
    assert encounter["photos"][0]["image"] in [p["image"] for p in history["photos"]]
    assert service.client.get("/api/export.csv", headers=service.auth("viewer")).text.count(individual) >= 2
    trail = service.client.get("/api/decisions", headers=service.auth("viewer")).json()
    assert trail[0]["user"] == "curator" and trail[0]["previous"]["status"] == "pending"

    undone = service.client.post(f"/api/decisions/{decided.json()['id']}/undo", headers=service.auth("curator"))
    assert undone.status_code == 200 and undone.json()["action"] == "undo"
    assert len(gallery) == before
    state = service.client.get(f"/api/encounters/{encounter['id']}", headers=service.auth("viewer")).json()
    assert state["status"] == "pending" and state["version"] == 3
    twice = service.client.post(f"/api/decisions/{decided.json()['id']}/undo", headers=service.auth("curator"))
    assert twice.status_code == 409


def test_a_second_decision_on_the_same_encounter_conflicts(service: Service) -> None:
    photo, individual = a_catalogue_photo(service)
    encounter = service.upload(photo).json()
    assert service.decide(encounter["id"], action="match", individual=individual, version=1).status_code == 200
    assert service.decide(encounter["id"], action="reject").status_code == 409
    other = service.upload(photo).json()
    assert service.decide(other["id"], action="reject", version=7).status_code == 409  # stale view
    assert service.decide(12345, action="reject").status_code == 404


def test_a_decision_the_database_refuses_leaves_the_gallery_as_it_was(service: Service) -> None:
    photo, individual = a_catalogue_photo(service)
    encounter = service.upload(photo).json()
    curation, gallery = service.app.state.curation, Gallery.open(service.folder.parent / "gallery")
    before = len(gallery)

    def fail(_session: object) -> None:
        raise RuntimeError("disk full")

    event.listen(curation.make_session, "before_commit", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        curation.decide(encounter["id"], "match", individual, "curator")
    event.remove(curation.make_session, "before_commit", fail)
    assert len(gallery) == before
    state = service.client.get(f"/api/encounters/{encounter['id']}", headers=service.auth("viewer")).json()
    assert state["status"] == "pending" and state["version"] == 1
    assert service.decide(encounter["id"], action="match", individual=individual).status_code == 200


def test_concurrent_decisions_one_wins_the_other_gets_409(service: Service) -> None:
    photo, individual = a_catalogue_photo(service)
    encounter = service.upload(photo).json()
    codes: list[int] = []

    def decide() -> None:
        codes.append(service.decide(encounter["id"], action="match", individual=individual, version=1).status_code)

    threads = [threading.Thread(target=decide) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200, 409, 409, 409]


def test_new_individual_rules(service: Service) -> None:
    photo, individual = a_catalogue_photo(service)
    encounter = service.upload(photo).json()
    assert service.decide(encounter["id"], action="new", individual=individual).status_code == 409
    assert service.decide(encounter["id"], action="new", individual="two words").status_code == 422
    assert service.decide(encounter["id"], action="match", individual="w_nobody").status_code == 422
    assert service.decide(encounter["id"], action="new", individual="w_fresh").status_code == 200
    found = service.client.get("/api/individuals?q=FRESH", headers=service.auth("viewer")).json()
    assert found == [{"id": "w_fresh", "photos": 1}]
    again = service.upload(photo).json()
    body = service.client.get(f"/api/encounters/{again['id']}/proposals", headers=service.auth("viewer")).json()
    assert "w_fresh" in [c["individual"] for c in body["candidates"][:2]]  # enrolled without retraining


def test_uploads_over_the_limits_or_not_images_are_refused(made: Path, tmp_path: Path) -> None:
    service = Service(made, tmp_path, max_bytes=60_000, max_pixels=100 * 100, max_files=2)
    photo, _ = a_catalogue_photo(service)
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo at all")
    assert service.upload(text).status_code == 415
    big = tmp_path / "big.png"
    Image.new("RGB", (200, 200), "white").save(big)
    assert service.upload(big).status_code == 413  # pixels
    bitmap = tmp_path / "small.bmp"
    Image.new("RGB", (50, 50), "white").save(bitmap)
    assert service.upload(bitmap, names=["small.jpg"]).status_code == 415  # a BMP, whatever its name says
    blob = tmp_path / "blob.jpg"
    blob.write_bytes(photo.read_bytes()[:3] + bytes(70_000))
    assert service.upload(blob).status_code == 413  # bytes
    assert service.upload(photo, photo, photo).status_code == 413  # files per encounter
    assert list((service.folder / "uploads").iterdir()) == []  # nothing refused is kept


def test_export_zip_strips_exif_on_request(service: Service, tmp_path: Path) -> None:
    with_exif = tmp_path / "gps.jpg"
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    Image.new("RGB", (96, 64), "gray").save(with_exif, exif=exif.tobytes())
    encounter = service.upload(with_exif).json()
    assert service.decide(encounter["id"], action="new", individual="w_exif").status_code == 200
    name = encounter["photos"][0]["image"]
    for strip, expected in ((False, True), (True, False)):
        answer = service.client.get(f"/api/export.zip?strip_exif={strip}", headers=service.auth("viewer"))
        archive = zipfile.ZipFile(io.BytesIO(answer.content))
        assert f"{name},w_exif" in archive.read("train.csv").decode()
        assert (b"SecretCam" in archive.read(f"train/{name}")) is expected


def test_identify_endpoint_keeps_nothing(service: Service) -> None:
    photo, individual = a_catalogue_photo(service)
    files = [("files", (photo.name, photo.read_bytes(), "image/jpeg"))]
    answer = service.client.post("/api/identify", files=files, headers=service.auth("viewer"))
    assert answer.status_code == 200 and answer.json()["candidates"][0]["individual"] == individual
    assert service.client.get("/api/encounters", headers=service.auth("viewer")).json() == []


def test_pages_need_a_login_and_show_the_review(service: Service) -> None:
    photo, individual = a_catalogue_photo(service)
    encounter = service.upload(photo).json()
    first = service.client.get("/", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"].startswith("/login")
    assert service.client.post("/login", data={"token": "wrong"}).status_code == 401
    logged = service.client.post("/login", data={"token": service.tokens["curator"]}, follow_redirects=False)
    assert logged.status_code == 303 and "samesite=strict" in logged.headers["set-cookie"].lower()
    page = service.client.get(f"/review/{encounter['id']}")
    assert page.status_code == 200 and page.text.count('class="candidate"') == 5 and individual in page.text
    assert "/docs" in page.text and service.client.get("/openapi.json").status_code == 200


def test_cli_makes_a_catalogue_and_users(made: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gallery, folder = tmp_path / "gallery", tmp_path / "catalog"
    shutil.copytree(made / "gallery", gallery)
    unknown = sorted((made / "cat" / "test").iterdir())[0]
    assert main(["enroll", str(gallery), str(unknown), "--id", NEW_WHALE]) == 1  # not a name to enrol
    store = Gallery.open(gallery)
    store.add([unknown.name], [NEW_WHALE], np.ones((1, store.dim)))  # the Python API stores it, never scored
    init = ["catalog", "init", str(folder), "--model", str(made / "model"), "--gallery", str(gallery)]
    assert main(init) == 0
    assert main(["users", "add", str(folder), "kim", "--role", "viewer"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    client, auth = TestClient(create_app(folder)), {"Authorization": f"Bearer {token}"}
    assert client.get("/api/me", headers=auth).json()["role"] == "viewer"
    names = [i["id"] for i in client.get("/api/individuals?limit=1000", headers=auth).json()]
    labelled = [p for p in Gallery.open(gallery).photos() if p.individual != NEW_WHALE]
    assert NEW_WHALE not in names and len(labelled) == len(Gallery.open(gallery)) - 1
    assert len(client.get("/api/export.csv", headers=auth).text.splitlines()) == 1 + len(labelled)
    assert main(["users", "add", str(folder), "kim"]) == 1  # exists
    assert main(init) == 1  # a catalogue already


ARTIFACTS = Path(__file__).parents[1] / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def live(service: Service) -> Iterator[str]:
    """The service on a free 127.0.0.1 port, in a thread, for the browser."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(service.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the service did not start in 30 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_browser_upload_confirm_with_keyboard_then_individual_page(service: Service, live: str, tmp_path: Path) -> None:
    """Real headless Chromium: log in, upload a photo, see five proposals, press 1 then Enter, find the photo on
    the individual's page. Screenshots go to test-artifacts/browser/."""
    from playwright.sync_api import expect, sync_playwright

    assert CHROMIUM.is_file(), f"{CHROMIUM} is missing: apt-get install chromium (the Makefile's `browser` target)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    photo, _ = a_catalogue_photo(service)
    upload = tmp_path / "browser-upload.jpg"
    shutil.copy(photo, upload)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(live + "/")
        page.fill("#token", service.tokens["curator"])
        page.click("button[type=submit]")
        page.set_input_files("#files", str(upload))
        page.click("#upload button[type=submit]")
        page.wait_for_url("**/review/*")
        candidates = page.locator(".candidate")
        expect(candidates).to_have_count(5)
        page.screenshot(path=ARTIFACTS / "1-review.png", full_page=True)
        chosen = candidates.first.get_attribute("data-individual")
        page.keyboard.press("1")
        expect(candidates.first).to_have_class("candidate selected")
        page.keyboard.press("Enter")
        expect(page.locator("#message")).to_contain_text(f"Saved: {chosen}")
        page.screenshot(path=ARTIFACTS / "2-confirmed.png", full_page=True)
        page.click(f"#message a[href='/individuals/{chosen}']")
        page.wait_for_url(f"**/individuals/{chosen}")
        expect(page.locator("figcaption", has_text="browser-upload.jpg")).to_have_count(1)
        page.screenshot(path=ARTIFACTS / "3-individual.png", full_page=True)
        browser.close()
    assert all((ARTIFACTS / f).stat().st_size > 0 for f in ("1-review.png", "2-confirmed.png", "3-individual.png"))


def test_a_model_with_a_detector_crops_uploads_as_its_gallery_was_cropped(made: Path, tmp_path: Path) -> None:
    model, gallery = tmp_path / "model", tmp_path / "gallery"
    shutil.copytree(made / "model", model)
    tiny = DetectorConfig(backbone="timm/test_efficientnet", pretrained=False, image_size=(48, 96), hidden=8)
    torch.manual_seed(0)  # an untrained detector: its seed decides which photos it is sure of
    save_detector(tmp_path / "detector", build_detector(tiny).eval(), tiny, metrics={})
    attach_detector(model, tmp_path / "detector")
    assert main(["gallery", "build", str(model), str(made / "cat"), "--out", str(gallery)]) == 0
    init_catalog(tmp_path / "catalog", model, gallery)
    with sessions(CatalogSettings.load(tmp_path / "catalog").database).begin() as session:
        token = add_user(session, "cu", "curator")
    client = TestClient(create_app(tmp_path / "catalog"))
    photo = made / "cat" / "train" / Gallery.open(gallery).photos()[0].image  # the gallery keeps the crop's path
    files = [("files", ("q.jpg", photo.read_bytes(), "image/jpeg"))]
    answer = client.post("/api/identify", files=files, headers={"Authorization": f"Bearer {token}"}).json()
    assert answer["candidates"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    sidecars = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "crops").rglob("*.json")]
    assert any(not s["fallback"] for s in sidecars)  # some photos were really cropped


def test_uploads_are_found_whatever_the_working_directory(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catalogue served by a relative path keeps its uploads when served again from elsewhere."""
    photo, _ = a_catalogue_photo(service)
    monkeypatch.chdir(service.folder.parent)
    client = TestClient(create_app(Path(service.folder.name)))  # `flukeid serve catalog`
    files = [("files", ("here.jpg", photo.read_bytes(), "image/jpeg"))]
    encounter = client.post("/api/encounters", files=files, headers=service.auth("curator")).json()
    [uploaded] = encounter["photos"]
    decided = client.post(
        f"/api/encounters/{encounter['id']}/decision",
        json={"action": "new", "individual": "w_here"},
        headers=service.auth("curator"),
    )
    assert decided.status_code == 200, decided.text
    with sessions(CatalogSettings.load(service.folder).database).begin() as session:
        stored = session.scalars(select(Photo.path).where(Photo.id == uploaded["id"])).one()
    assert stored == f"uploads/{uploaded['image']}"  # relative to the catalogue folder, not the working directory

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    again = TestClient(create_app(Path("..") / service.folder.name))  # restarted from another directory
    image = again.get(uploaded["url"], headers=service.auth("viewer"))
    assert image.status_code == 200 and image.content == photo.read_bytes()
    archive = zipfile.ZipFile(io.BytesIO(again.get("/api/export.zip", headers=service.auth("viewer")).content))
    assert f"train/{uploaded['image']}" in archive.namelist()
    assert f"{uploaded['image']},w_here" in archive.read("train.csv").decode()

    with sessions(CatalogSettings.load(service.folder).database).begin() as session:  # as stored before the fix
        session.execute(
            update(Photo).where(Photo.id == uploaded["id"]).values(path=f"catalog/uploads/{uploaded['image']}")
        )
    assert again.get(uploaded["url"], headers=service.auth("viewer")).status_code == 200


def test_export_zip_refuses_to_leave_out_a_photo_whose_file_is_missing(service: Service) -> None:
    photo, _ = a_catalogue_photo(service)
    encounter = service.upload(photo).json()
    assert service.decide(encounter["id"], action="new", individual="w_gone").status_code == 200
    [uploaded] = encounter["photos"]
    (service.folder / "uploads" / uploaded["image"]).unlink()
    answer = service.client.get("/api/export.zip", headers=service.auth("viewer"))
    assert answer.status_code == 409
    assert f"photo {uploaded['id']} '{uploaded['image']}'" in answer.json()["detail"]
    assert service.client.get("/api/export.csv", headers=service.auth("viewer")).status_code == 200


def test_export_zip_entries_stay_in_train_whatever_the_image_names(service: Service) -> None:
    gallery = Gallery.open(service.folder.parent / "gallery")
    source = gallery.photos()[0]
    names = ["../../../elsewhere/x.jpg", "sub/x.jpg", "X.JPG", "/abs/y.jpg", "..\\win\\z.jpg", ".."]
    vectors = np.repeat(gallery.all_vectors()[:1], len(names), axis=0)
    gallery.add(names, [source.individual] * len(names), vectors, paths=[source.path] * len(names))
    client = TestClient(create_app(service.folder))  # imports them at start
    archive = zipfile.ZipFile(io.BytesIO(client.get("/api/export.zip", headers=service.auth("viewer")).content))
    entries = [n for n in archive.namelist() if n != "train.csv"]
    rows = list(csv.reader(io.StringIO(archive.read("train.csv").decode())))[1:]
    assert sorted(f"train/{image}" for image, _ in rows) == sorted(entries)  # train.csv lists what the zip holds
    assert len(entries) == len(set(e.casefold() for e in entries)) == len(gallery)
    for entry in entries:
        name = entry.removeprefix("train/")
        assert entry.startswith("train/") and name and "/" not in name and "\\" not in name, entry
        assert not name.startswith(".") and ".." not in Path(name).parts, entry
    assert {"train/x.jpg", "train/y.jpg", "train/z.jpg"} <= set(entries)


@pytest.mark.parametrize("value", [2**63, 2**31, -1, 0])
def test_integer_parameters_out_of_range_are_422_never_500(service: Service, value: int) -> None:
    viewer, curator = service.auth("viewer"), service.auth("curator")
    requests = [
        ("GET", f"/api/encounters?limit={value}", viewer),
        ("GET", f"/api/decisions?limit={value}", viewer),
        ("GET", f"/api/decisions?encounter={value}", viewer),
        ("GET", f"/api/individuals?limit={value}", viewer),
        ("GET", f"/api/encounters/{value}", viewer),
        ("GET", f"/api/encounters/{value}/proposals", viewer),
        ("POST", f"/api/encounters/{value}/decision", curator),
        ("POST", f"/api/decisions/{value}/undo", curator),
        ("GET", f"/api/photos/{value}/image", viewer),
        ("GET", f"/review/{value}", viewer),
    ]
    for method, url, headers in requests:
        answer = service.client.request(method, url, headers=headers, json={"action": "reject"})
        assert answer.status_code == 422, f"{method} {url}: {answer.status_code} {answer.text}"


def test_the_largest_ids_are_simply_not_found(service: Service) -> None:
    largest = 2**31 - 1  # the largest id a PostgreSQL INTEGER holds
    for url in (f"/api/encounters/{largest}", f"/api/photos/{largest}/image", f"/review/{largest}"):
        assert service.client.get(url, headers=service.auth("viewer")).status_code == 404, url
    assert service.decide(largest, action="reject").status_code == 404
    undo = service.client.post(f"/api/decisions/{largest}/undo", headers=service.auth("curator"))
    assert undo.status_code == 404
    assert service.client.get("/api/decisions?limit=1000", headers=service.auth("viewer")).status_code == 200
    assert service.client.get("/api/encounters?limit=1001", headers=service.auth("viewer")).status_code == 422


@pytest.mark.parametrize("length", ["abc", "-5", "1e3"])
def test_a_content_length_that_is_not_a_number_is_400_never_500(service: Service, length: str) -> None:
    photo, _ = a_catalogue_photo(service)
    files = [("files", ("x.jpg", photo.read_bytes(), "image/jpeg"))]
    client = TestClient(service.app, raise_server_exceptions=False)
    answer = client.post("/api/encounters", files=files, headers={**service.auth("curator"), "Content-Length": length})
    assert answer.status_code == 400 and "Content-Length" in answer.json()["detail"]


@pytest.mark.parametrize("bad", [NEW_WHALE, "two words", "tab\there", "x" * 129, "bell\x07", ""])
def test_new_individuals_follow_the_one_id_rule(service: Service, bad: str) -> None:
    photo, _ = a_catalogue_photo(service)
    encounter = service.upload(photo).json()
    answer = service.decide(encounter["id"], action="new", individual=bad)
    assert answer.status_code == 422, answer.text
    assert service.decide(encounter["id"], action="new", individual="pod:7/ä-β").status_code == 200  # the rule allows


def test_a_gallery_individual_breaking_the_id_rule_stops_the_import_naming_it(service: Service) -> None:
    gallery = Gallery.open(service.folder.parent / "gallery")
    vector = gallery.all_vectors()[:1]
    gallery.add(["odd.jpg"], ["two_words"], vector)  # Gallery.add refuses bad IDs: an older flukeid wrote one
    with sqlite3.connect(gallery.path / "gallery.sqlite") as conn:
        conn.execute("UPDATE photos SET individual = 'two words' WHERE image = 'odd.jpg'")
    with pytest.raises(FlukeidError, match=r"photo 'odd.jpg' has individual 'two words'.*whitespace"):
        create_app(service.folder)
    gallery.remove(images=["odd.jpg"])
    gallery.add(["unknown.jpg"], [NEW_WHALE], vector)  # new_whale stays allowed, out of the individuals
    client = TestClient(create_app(service.folder))
    names = [i["id"] for i in client.get("/api/individuals?limit=1000", headers=service.auth("viewer")).json()]
    assert NEW_WHALE not in names


def test_individual_search_takes_q_as_plain_text(service: Service) -> None:
    for name in ("pod7", "a%b", "c\\d"):
        encounter = service.upload(a_catalogue_photo(service)[0]).json()
        assert service.decide(encounter["id"], action="new", individual=name).status_code == 200

    def found(q: str) -> list[str]:
        answer = service.client.get("/api/individuals", params={"q": q, "limit": 1000}, headers=service.auth("viewer"))
        return [i["id"] for i in answer.json()]

    assert "pod7" not in found("_") and all("_" in name for name in found("_"))
    assert found("%") == ["a%b"] and found("\\") == ["c\\d"] and found("A%") == ["a%b"]
    assert found("POD") == ["pod7"]


def test_individuals_with_slashes_and_other_url_characters_have_pages(service: Service) -> None:
    name = "pod/7?x#y%z&ü"
    encounter = service.upload(a_catalogue_photo(service)[0]).json()
    assert service.decide(encounter["id"], action="new", individual=name).status_code == 200
    viewer = service.auth("viewer")
    api = service.client.get(f"/api/individuals/{quote(name, safe='')}", headers=viewer)
    assert api.status_code == 200 and api.json()["id"] == name and len(api.json()["photos"]) == 1
    assert service.client.get(f"/api/individuals/{quote(name)}", headers=viewer).json()["id"] == name
    page = service.client.get(f"/individuals/{quote(name, safe='')}", headers=viewer)
    assert page.status_code == 200 and html.escape(name) in page.text
    link = f'href="/individuals/{quote(name, safe="/")}"'  # as the templates write it (|urlencode)
    for url in ("/individuals", "/", f"/review/{encounter['id']}"):
        assert link in service.client.get(url, headers=viewer).text, url
    followed = service.client.get(f"/individuals/{quote(name, safe='/')}", headers=viewer)
    assert followed.status_code == 200 and html.escape(name) in followed.text
