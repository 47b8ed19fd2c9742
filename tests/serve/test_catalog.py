"""Catalogue folders behind the curator service: the schema, `flukeid catalog init` and `users add`, start-up
import of the gallery, detector crops, uploads found whatever the working directory."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pytest
import serve_fixtures
import torch
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from serve_fixtures import Service, a_catalogue_photo
from sqlalchemy import create_engine, select, update

from flukeid import NEW_WHALE
from flukeid.cli import main
from flukeid.detect.model import DetectorConfig, attach_detector, build_detector, save_detector
from flukeid.errors import FlukeidError
from flukeid.gallery import Gallery
from flukeid.serve.app import create_app
from flukeid.serve.auth import add_user
from flukeid.serve.catalog import CatalogSettings, init_catalog
from flukeid.serve.db import Base, Photo, migrate, sessions

made, service = serve_fixtures.made, serve_fixtures.service  # the catalogue fixtures (see serve_fixtures)


def test_migrations_make_exactly_the_models_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    migrate(url)
    with create_engine(url).connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


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
