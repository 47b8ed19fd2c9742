"""The curator JSON API on a tiny untrained model: auth and roles, uploads and their limits, proposals,
decisions with conflicts and undo, the gallery growing without retraining, parameter bounds."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import serve_fixtures
from fastapi.testclient import TestClient
from PIL import Image
from serve_fixtures import Service, a_catalogue_photo
from sqlalchemy import event

from flukeid import NEW_WHALE
from flukeid.gallery import Gallery

made, service = serve_fixtures.made, serve_fixtures.service  # the catalogue fixtures (see serve_fixtures)


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


def test_identify_endpoint_keeps_nothing(service: Service) -> None:
    photo, individual = a_catalogue_photo(service)
    files = [("files", (photo.name, photo.read_bytes(), "image/jpeg"))]
    answer = service.client.post("/api/identify", files=files, headers=service.auth("viewer"))
    assert answer.status_code == 200 and answer.json()["candidates"][0]["individual"] == individual
    assert service.client.get("/api/encounters", headers=service.auth("viewer")).json() == []


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
