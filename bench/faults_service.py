"""The service cases of bench/faults.py: malformed requests against the real app (`create_app`) in-process.

A case is one HTTP request; 4xx with a ``detail`` naming the field or value is a clear error, 2xx where the
request is acceptable is handled, a 500 is a traceback. The catalogue folder (database, uploads) and the gallery
are snapshotted around every request that should change nothing.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faults_inputs as bad
from faults_cases import Setup
from PIL import Image

LIMITS = {"max_bytes": 100_000, "max_pixels": 1_000_000, "max_files": 3}


@dataclass(frozen=True)
class Request:
    """One request: ``ok`` True (2xx expected), False (4xx naming ``names``) or None (either)."""

    name: str
    method: str
    url: str
    ok: bool | None
    names: tuple[str, ...] = ()
    role: str | None = "curator"
    kwargs: dict[str, Any] = field(default_factory=dict)
    writes: bool = False  # the request may change the catalogue (an accepted upload or decision)


@dataclass
class Service:
    folder: Path
    client: Any
    tokens: dict[str, str]
    photo: bytes  # a valid catalogue photo
    encounter: int  # a pending encounter


def start(setup: Setup) -> Service:
    from fastapi.testclient import TestClient

    from flukeid.serve.app import create_app
    from flukeid.serve.auth import add_user
    from flukeid.serve.catalog import SETTINGS_FILE, init_catalog
    from flukeid.serve.db import sessions

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    svc = setup.root / "svc"
    shutil.copytree(setup.fixed / "gallery", svc / "gallery")
    settings = init_catalog(svc / "catalog", setup.fixed / "model", svc / "gallery")
    raw = json.loads((svc / "catalog" / SETTINGS_FILE).read_text())
    (svc / "catalog" / SETTINGS_FILE).write_text(json.dumps({**raw, "limits": LIMITS}))
    with sessions(settings.database).begin() as session:
        tokens = {role: add_user(session, role, role) for role in ("viewer", "curator", "admin")}
    client = TestClient(create_app(svc / "catalog"), raise_server_exceptions=False)
    photo = bad.first_photo(setup.fixed / "cat").read_bytes()
    files = [("files", ("e.jpg", photo, "image/jpeg"))]
    answer = client.post("/api/encounters", files=files, headers={"Authorization": f"Bearer {tokens['curator']}"})
    assert answer.status_code == 201, answer.text
    return Service(svc, client, tokens, photo, answer.json()["id"])


def _png(img: Image.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


def _photos(service: Service) -> dict[str, bytes]:
    """Upload bodies: damaged, odd and oversize photos."""
    grey16 = Image.open(io.BytesIO(service.photo)).convert("I;16")
    cmyk = Image.open(io.BytesIO(service.photo)).convert("CMYK")
    return {
        "empty": b"",
        "truncated-jpeg": service.photo[: len(service.photo) // 3],
        "gif": _png(Image.new("P", (20, 20)), "GIF"),
        "text": b"just some text, not a photo\n",
        "16-bit-png": _png(grey16),
        "cmyk-jpeg": _png(cmyk, "JPEG"),
        "bomb-header-png": _bomb_bytes(),
        "oversize": service.photo + bytes(150_000),
    }


def _bomb_bytes() -> bytes:
    """A PNG whose header claims 60000x60000 pixels."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = bad.bomb(Path(tmp) / "b.png", side=60_000)
        return path.read_bytes()


def requests(service: Service) -> list[Request]:
    e = service.encounter
    photos = _photos(service)
    decide = f"/api/encounters/{e}/decision"
    json_header = {"Content-Type": "application/json"}

    def upload(name: str, data: bytes, content_type: str = "image/jpeg") -> dict[str, Any]:
        return {"files": [("files", (name, data, content_type))]}

    cases = [
        Request(
            "decision: malformed JSON",
            "POST",
            decide,
            False,
            ("json",),
            kwargs={"content": b'{"action": ', "headers": json_header},
        ),
        Request("decision: JSON array", "POST", decide, False, ("body",), kwargs={"json": []}),
        Request("decision: form body", "POST", decide, False, ("body",), kwargs={"data": {"action": "reject"}}),
        Request(
            "decision: text/plain body",
            "POST",
            decide,
            False,
            ("body",),
            kwargs={"content": b"reject", "headers": {"Content-Type": "text/plain"}},
        ),
        Request("decision: action 42", "POST", decide, False, ("action",), kwargs={"json": {"action": 42}}),
        Request("decision: unknown action", "POST", decide, False, ("delete",), kwargs={"json": {"action": "delete"}}),
        Request(
            "decision: match without individual",
            "POST",
            decide,
            False,
            ("individual",),
            kwargs={"json": {"action": "match"}},
        ),
        Request(
            "decision: match unknown individual",
            "POST",
            decide,
            False,
            ("nobody",),
            kwargs={"json": {"action": "match", "individual": "nobody"}},
        ),
        Request(
            "decision: version 'abc'",
            "POST",
            decide,
            False,
            ("version",),
            kwargs={"json": {"action": "reject", "version": "abc"}},
        ),
        Request(
            "decision: version 1.5",
            "POST",
            decide,
            False,
            ("version",),
            kwargs={"json": {"action": "reject", "version": 1.5}},
        ),
        Request(
            "decision: version 2**70",
            "POST",
            decide,
            False,
            ("version",),
            kwargs={"json": {"action": "reject", "version": 2**70}},
        ),
        Request(
            "decision: version -1",
            "POST",
            decide,
            False,
            ("version",),
            kwargs={"json": {"action": "reject", "version": -1}},
        ),
        Request(
            "decision: new ID 10k chars",
            "POST",
            decide,
            False,
            ("characters",),
            kwargs={"json": {"action": "new", "individual": "w" * 10_000}},
        ),
        Request(
            "decision: new ID with NUL",
            "POST",
            decide,
            False,
            ("unprintable",),
            kwargs={"json": {"action": "new", "individual": "w\x00x"}},
        ),
        Request(
            "decision: encounter 'abc'",
            "POST",
            "/api/encounters/abc/decision",
            False,
            ("encounter_id",),
            kwargs={"json": {"action": "reject"}},
        ),
        Request(
            "decision: encounter 1.5",
            "POST",
            "/api/encounters/1.5/decision",
            False,
            ("encounter_id",),
            kwargs={"json": {"action": "reject"}},
        ),
        Request(
            "decision: viewer role",
            "POST",
            decide,
            False,
            ("curator",),
            role="viewer",
            kwargs={"json": {"action": "reject"}},
        ),
        Request("upload: no files field", "POST", "/api/encounters", False, ("files",)),
        Request(
            "upload: JSON instead of form",
            "POST",
            "/api/encounters",
            False,
            ("files",),
            kwargs={"json": {"files": ["a.jpg"]}},
        ),
        Request(
            "upload: empty file",
            "POST",
            "/api/encounters",
            False,
            ("empty.jpg",),
            kwargs=upload("empty.jpg", photos["empty"]),
        ),
        Request(
            "upload: truncated JPEG",
            "POST",
            "/api/encounters",
            False,
            ("t.jpg",),
            kwargs=upload("t.jpg", photos["truncated-jpeg"]),
        ),
        Request(
            "upload: GIF",
            "POST",
            "/api/encounters",
            False,
            ("a.gif",),
            kwargs=upload("a.gif", photos["gif"], "image/gif"),
        ),
        Request(
            "upload: text as image/png",
            "POST",
            "/api/encounters",
            False,
            ("n.png",),
            kwargs=upload("n.png", photos["text"], "image/png"),
        ),
        Request(
            "upload: bomb header 60000x60000",
            "POST",
            "/api/encounters",
            False,
            ("b.png",),
            kwargs=upload("b.png", photos["bomb-header-png"], "image/png"),
        ),
        Request(
            "upload: oversize 150 kB",
            "POST",
            "/api/encounters",
            False,
            ("big.jpg",),
            kwargs=upload("big.jpg", photos["oversize"]),
        ),
        Request(
            "upload: 4 files over max_files 3",
            "POST",
            "/api/encounters",
            False,
            ("3",),
            kwargs={"files": [("files", (f"{i}.jpg", service.photo, "image/jpeg")) for i in range(4)]},
        ),
        Request(
            "upload: 16-bit PNG",
            "POST",
            "/api/encounters",
            True,
            kwargs=upload("g16.png", photos["16-bit-png"], "image/png"),
            writes=True,
        ),
        Request(
            "upload: CMYK JPEG",
            "POST",
            "/api/encounters",
            True,
            kwargs=upload("cmyk.jpg", photos["cmyk-jpeg"]),
            writes=True,
        ),
        Request(
            "upload: name ../../../etc/x.jpg",
            "POST",
            "/api/encounters",
            True,
            kwargs=upload("../../../etc/x.jpg", service.photo),
            writes=True,
        ),
        Request("upload: name ..", "POST", "/api/encounters", True, kwargs=upload("..", service.photo), writes=True),
        Request(
            "upload: name C:\\..\\x.jpg",
            "POST",
            "/api/encounters",
            True,
            kwargs=upload("C:\\..\\..\\x.jpg", service.photo),
            writes=True,
        ),
        Request(
            "upload: content-length abc",
            "POST",
            "/api/encounters",
            False,
            ("length",),
            kwargs={**upload("x.jpg", service.photo), "headers": {"Content-Length": "abc"}},
        ),
        Request(
            "identify: empty file",
            "POST",
            "/api/identify",
            False,
            ("e.jpg",),
            role="viewer",
            kwargs=upload("e.jpg", photos["empty"]),
        ),
        Request(
            "identify: text as jpg",
            "POST",
            "/api/identify",
            False,
            ("n.jpg",),
            role="viewer",
            kwargs=upload("n.jpg", photos["text"]),
        ),
        Request("encounter id 'abc'", "GET", "/api/encounters/abc", False, ("encounter_id",), role="viewer"),
        Request("encounter id 1e3", "GET", "/api/encounters/1e3", False, ("encounter_id",), role="viewer"),
        Request("encounter id 99999 (unknown)", "GET", "/api/encounters/99999", False, ("99999",), role="viewer"),
        Request("encounters status=bogus", "GET", "/api/encounters?status=bogus", None, ("bogus",), role="viewer"),
        Request("encounters limit=1.5", "GET", "/api/encounters?limit=1.5", False, ("limit",), role="viewer"),
        Request("proposals k=0", "GET", f"/api/encounters/{e}/proposals?k=0", False, ("k",), role="viewer"),
        Request("proposals k=abc", "GET", f"/api/encounters/{e}/proposals?k=abc", False, ("k",), role="viewer"),
        Request("proposals k=2**63", "GET", f"/api/encounters/{e}/proposals?k={2**63}", False, ("k",), role="viewer"),
        Request("decisions encounter=abc", "GET", "/api/decisions?encounter=abc", False, ("encounter",), role="viewer"),
        Request(
            "individual ../../etc/passwd",
            "GET",
            "/api/individuals/%2e%2e/%2e%2e/etc/passwd",
            False,
            ("passwd",),
            role="viewer",
        ),
        Request("individual unknown", "GET", "/api/individuals/nobody", False, ("nobody",), role="viewer"),
        Request("individuals q=%00", "GET", "/api/individuals?q=%00", None, role="viewer"),
        Request("individuals q=%_\\", "GET", "/api/individuals?q=%25_%5C", True, role="viewer"),
        Request("photo 'abc' image", "GET", "/api/photos/abc/image", False, ("photo_id",), role="viewer"),
        Request("photo 99999 image", "GET", "/api/photos/99999/image", False, ("99999",), role="viewer"),
        Request(
            "export.zip strip_exif=maybe",
            "GET",
            "/api/export.zip?strip_exif=maybe",
            False,
            ("strip_exif",),
            role="viewer",
        ),
        Request(
            "users: role god",
            "POST",
            "/api/users",
            False,
            ("god",),
            role="admin",
            kwargs={"json": {"name": "zed", "role": "god"}},
        ),
        Request(
            "users: empty name",
            "POST",
            "/api/users",
            False,
            ("name",),
            role="admin",
            kwargs={"json": {"name": "", "role": "viewer"}},
        ),
        Request(
            "users: name 5k chars",
            "POST",
            "/api/users",
            None,
            ("name",),
            role="admin",
            kwargs={"json": {"name": "u" * 5000, "role": "viewer"}},
            writes=True,
        ),
        Request(
            "users: malformed JSON",
            "POST",
            "/api/users",
            False,
            ("json",),
            role="admin",
            kwargs={"content": b"{", "headers": json_header},
        ),
        Request(
            "users: curator role",
            "POST",
            "/api/users",
            False,
            ("admin",),
            kwargs={"json": {"name": "x", "role": "viewer"}},
        ),
        Request(
            "auth: Basic header",
            "GET",
            "/api/me",
            False,
            ("token",),
            role=None,
            kwargs={"headers": {"Authorization": "Basic dXNlcjpwdw=="}},
        ),
        Request(
            "auth: empty Bearer",
            "GET",
            "/api/me",
            False,
            ("token",),
            role=None,
            kwargs={"headers": {"Authorization": "Bearer "}},
        ),
        Request("undo 99999 (unknown)", "POST", "/api/decisions/99999/undo", False, ("99999",)),
        Request("login: no token field", "POST", "/login", False, ("token",), role=None, kwargs={"data": {}}),
        Request(
            "login: next=//evil.example",
            "POST",
            "/login",
            True,
            role=None,
            kwargs={"data": {"token": service.tokens["viewer"], "next": "//evil.example"}, "follow_redirects": False},
        ),
        Request("review page 'abc'", "GET", "/review/abc", False, ("encounter_id",), role="viewer"),
    ]
    return cases


def classify(request: Request, status: int, body: str) -> tuple[str, str]:
    detail = body
    with contextlib.suppress(ValueError, AttributeError):
        detail = json.dumps(json.loads(body).get("detail", body))
    message = f"{status} {detail}"[:300]
    if status >= 500:
        return "traceback", message
    if status < 400:
        if request.ok is False:
            return "wrong", f"accepted: {message}"
        return "handled", message
    if request.ok is True:
        return "wrong", f"refused a valid request: {message}"
    named = all(n.lower() in body.lower() for n in request.names)
    return ("clear" if named else "unclear"), message


def send(service: Service, request: Request) -> tuple[int, str]:
    kwargs = dict(request.kwargs)
    headers = dict(kwargs.pop("headers", {}))
    if request.role is not None:
        headers["Authorization"] = f"Bearer {service.tokens[request.role]}"
    answer = service.client.request(request.method, request.url, headers=headers, **kwargs)
    return answer.status_code, answer.text


def service_outcomes(
    setup: Setup,
    only: str,
    report: Callable[[Any], None],
    outcome: Callable[..., Any],
    snapshot: Callable[..., dict[str, str]],
    lost: Callable[[dict[str, str], dict[str, str]], str],
) -> list[Any]:
    """Run every service request whose name contains ``only``; one Outcome each (same shape as the CLI's)."""
    service = start(setup)
    outcomes = []
    for request in requests(service):
        name = f"service {request.name}"
        if only not in name:
            continue
        roots = [setup.fixed] if request.writes else [setup.fixed, service.folder]
        before = snapshot(roots)
        try:
            status, body = send(service, request)
            kind, message = classify(request, status, body)
        except Exception as exc:  # the client itself failed: a bug in the case or the app
            kind, message = "traceback", f"{type(exc).__name__}: {exc}"
        escaped = [p for p in (setup.root / "etc", setup.root.parent / "etc" / "x.jpg") if p.exists()]
        result = outcome(name, f"{request.method} {request.url[:70]}", kind, message, lost(before, snapshot(roots)))
        if escaped:
            result = outcome(name, result.request, "wrong", f"wrote outside uploads: {escaped}", result.data_lost)
        report(result)
        outcomes.append(result)
    return outcomes
