"""The catalogue export in Kaggle layout: train.csv and the zip of train/ (EXIF, missing files, safe names)."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import serve_fixtures
from fastapi.testclient import TestClient
from PIL import Image
from serve_fixtures import Service, a_catalogue_photo

from flukeid.gallery import Gallery
from flukeid.serve.app import create_app

made, service = serve_fixtures.made, serve_fixtures.service  # the catalogue fixtures (see serve_fixtures)


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
