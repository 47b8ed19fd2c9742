"""The server-rendered pages: login, review, individuals; a real headless browser run."""

from __future__ import annotations

import html
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import serve_fixtures
import uvicorn
from serve_fixtures import Service, a_catalogue_photo

made, service = serve_fixtures.made, serve_fixtures.service  # the catalogue fixtures (see serve_fixtures)


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


ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "browser"
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
