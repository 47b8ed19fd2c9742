"""The HTML report: each query beside its candidates, names escaped, the truth marked, unreadable photos said."""

from __future__ import annotations

from pathlib import Path

from conftest import write_image

from flukeid import NEW_WHALE
from flukeid.identify.identifier import Prediction
from flukeid.identify.ranking import Ranking
from flukeid.report.html import thumbnail, write_report


def test_report_shows_queries_candidates_truth_and_errors(tmp_path: Path) -> None:
    query, best = write_image(tmp_path / "q.jpg", 0), write_image(tmp_path / "b.jpg", 1)
    predictions = [
        Prediction("q.jpg", query, Ranking(["<b>", NEW_WHALE], [0.9, 0.5]), probability=0.75),
        Prediction("bad.jpg", tmp_path / "bad.jpg", Ranking([NEW_WHALE], [float("nan")]), error="not an image"),
        Prediction("q2.jpg", query, Ranking(["<b>"], [0.1])),
    ]
    out = write_report(predictions, {"<b>": best}, tmp_path / "r" / "report.html", truths={"q.jpg": "<b>"}, limit=2)
    page = out.read_text()
    assert "&lt;b&gt;" in page and "<b></b>" not in page  # the name is escaped
    assert 'class="c hit"' in page and "P(best is right) 0.75" in page and "truth: &lt;b&gt;" in page
    assert "new individual" in page and "not an image" in page
    assert "1 more queries not shown" in page
    assert page.count("data:image/jpeg;base64,") == 2  # the query and its candidate's photo


def test_thumbnail_is_empty_for_an_unreadable_photo(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"not a jpeg")
    assert thumbnail(tmp_path / "x.jpg") == "" and thumbnail(None) == ""
    assert thumbnail(write_image(tmp_path / "ok.png", 2)).startswith("data:image/jpeg;base64,")
