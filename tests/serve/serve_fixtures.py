"""A served catalogue for the curator service tests: a tiny untrained model and its gallery (built once per
module), a fresh catalogue folder with one user per role, and a client for it.

Not a conftest.py: tests/ is not a package, so a second conftest module would replace the one that
tests/test_catalogue.py imports. Test modules take the fixtures by assignment (``made, service = ...``)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from flukeid import NEW_WHALE
from flukeid.cli import main
from flukeid.gallery import Gallery
from flukeid.models.artifact import ModelConfig, build_model, save_model
from flukeid.serve.app import create_app
from flukeid.serve.auth import add_user
from flukeid.serve.catalog import SETTINGS_FILE, init_catalog
from flukeid.serve.db import Base, sessions
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
