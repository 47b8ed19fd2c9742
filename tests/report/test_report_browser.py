"""The report in a real headless browser (Debian's chromium through Playwright, no browser download): no photo
overlaps another or leaves its cell. A screenshot goes to the test's folder and, when FLUKEID_ARTIFACTS is set,
to report/ under it."""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import pytest
from report_fixtures import THRESHOLD, TRUTHS, catalogue, predictions

from flukeid.report.html import write_report

CHROMIUM = Path("/usr/bin/chromium")
Box = dict[str, float]


def overlap(a: Box, b: Box) -> bool:
    """Whether two boxes share more than a hair (1 px) of area."""
    width = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
    height = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
    return width > 1 and height > 1


def inside(inner: Box, outer: Box) -> bool:
    return (
        inner["x"] >= outer["x"] - 0.5
        and inner["y"] >= outer["y"] - 0.5
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5
    )


def test_no_thumbnail_overlaps_another_or_leaves_its_cell(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (the Makefile's `browser` target)")
    report = write_report(
        predictions(tmp_path), catalogue(tmp_path), tmp_path / "report.html", TRUTHS, threshold=THRESHOLD
    )
    shot = tmp_path / "report.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(report.as_uri())
        page.screenshot(path=shot, full_page=True)
        images = page.locator("img")
        boxes = [images.nth(i).bounding_box() for i in range(images.count())]
        cells = page.locator("td:has(.thumb)")
        within = [
            (cell.locator(".thumb").first.bounding_box(), cell.bounding_box())
            for cell in (cells.nth(i) for i in range(cells.count()))
        ]
        browser.close()
    artifacts = os.environ.get("FLUKEID_ARTIFACTS")
    if artifacts:
        Path(artifacts, "report").mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts, "report", "report.png"))
    assert shot.stat().st_size > 0
    assert len(boxes) == 3 + 3 + 3 + 3 + 2  # plots; the mistake: query, wrong, right; q1, q2: query + 2; q3: query + 1
    assert all(b is not None and b["width"] > 0 and b["height"] > 0 for b in boxes)
    touching = [(i, j) for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2) if overlap(a, b)]  # type: ignore[arg-type]
    assert not touching, f"photos overlapping (indices into page.locator('img')): {touching}"
    assert within and all(t is not None and c is not None and inside(t, c) for t, c in within)
