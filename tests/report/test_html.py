"""The HTML report: a summary with numbers, the plots embedded, calibrated probabilities shown (raw fused scores
only in tooltips), each query beside its candidates, names escaped, the truth marked, unreadable photos said."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import write_image
from report_fixtures import LONG, THRESHOLD, TRUTHS, catalogue, predictions

from flukeid import NEW_WHALE
from flukeid.identify.identifier import Prediction
from flukeid.identify.ranking import Ranking
from flukeid.report.html import thumbnail, write_report
from flukeid.report.summary import ReportCatalogue, answered, map5_by_photos, worst_mistakes

PNG = "data:image/png;base64,"


def visible(page: str) -> str:
    """The page without its tooltips (title attributes) and embedded images."""
    return re.sub(r'(title|src)="[^"]*"', "", page)


def test_report_summary_plots_and_probabilities(tmp_path: Path) -> None:
    page = write_report(
        predictions(tmp_path), catalogue(tmp_path), tmp_path / "report.html", TRUTHS, threshold=THRESHOLD
    ).read_text()
    summary = re.search(r'<section class="summary">(.*?)</section>', page)
    assert summary is not None
    numbers = dict(re.findall(r"<b>([^<]*)</b><span>([^<]*)</span>", summary.group(1)))
    assert numbers == {
        "0.833": "MAP@5 over 3 queries with known answers",  # AP 1, 1/2, 1
        "4": "queries (1 unreadable)",
        "8": "catalogue photos",
        "3": "individuals",
        "0.500": "new_whale threshold",
    }
    assert page.count(PNG) == 3  # same vs different, new-individual PR, MAP@5 by photos per individual
    assert all(
        alt in page for alt in ("own individual vs other individuals", "precision vs recall", "MAP@5 by the catalogue")
    )
    shown = visible(page)
    assert "P 0.91" in shown and "P 0.77" in shown and "P 0.80" in shown  # an individual's, new_whale's
    assert "1.219" not in shown and "2.050" not in shown  # the raw fused scores: tooltips only
    assert 'title="score 1.219"' in page and 'title="threshold 0.500"' in page
    probabilities = [float(p) for p in re.findall(r">P (\d+\.\d+)<", page)]
    assert probabilities and all(0.0 <= p <= 1.0 for p in probabilities)
    mistakes = page[page.index("Surest mistakes") : page.index("<h2>Queries")]
    assert "q2.jpg" in mistakes and LONG in mistakes and ">B<" in mistakes and "q1.jpg" not in mistakes
    assert "not an image" in page and 'class="c hit"' in page and "truth: A" in page


def test_report_without_answers_shows_the_best_scores_and_no_map(tmp_path: Path) -> None:
    page = write_report(predictions(tmp_path), catalogue(tmp_path), tmp_path / "r.html", threshold=None).read_text()
    assert "MAP@5 over" not in page and "Surest mistakes" not in page
    assert page.count(PNG) == 1 and "best match score of each query" in page
    assert ">none</b><span>new_whale threshold" in page


def test_an_uncalibrated_model_shows_its_raw_scores_as_scores(tmp_path: Path) -> None:
    query = write_image(tmp_path / "q.jpg", 0)
    raw = [Prediction("q.jpg", query, Ranking(["A", NEW_WHALE], [0.734, 0.5]))]
    page = write_report(raw, catalogue(tmp_path), tmp_path / "r.html", threshold=0.5).read_text()
    assert "score 0.734" in visible(page) and ">P " not in page


def test_names_are_escaped_and_the_list_is_cut_at_the_limit(tmp_path: Path) -> None:
    query, best = write_image(tmp_path / "q.jpg", 0), write_image(tmp_path / "b.jpg", 1)
    shown = [
        Prediction("q.jpg", query, Ranking(["<b>", NEW_WHALE], [0.9, 0.5]), 0.75, None, [0.9, 0.25]),
        Prediction("q2.jpg", query, Ranking(["<b>"], [0.1])),
        Prediction("q3.jpg", query, Ranking(["<b>"], [0.1])),
    ]
    cat = ReportCatalogue({"<b>": best}, {"<b>": 1}, 1)
    page = write_report(shown, cat, tmp_path / "r" / "report.html", truths={"q.jpg": "<b>"}, limit=2).read_text()
    assert "&lt;b&gt;" in page and "<b><b></b>" not in page and "truth: &lt;b&gt;" in page
    assert "P(best is right) 0.75" in page and "1 more queries not shown" in page
    assert page.count("data:image/jpeg;base64,") == 4  # two queries shown, each with its candidate


def test_map5_by_photos_per_individual_and_the_surest_mistakes(tmp_path: Path) -> None:
    made, cat = predictions(tmp_path), catalogue(tmp_path)
    known = answered(made, TRUTHS)
    buckets = {b.label: (b.map5, b.queries) for b in map5_by_photos(known, cat.photos_per_individual)}
    assert buckets == {"new": (1.0, 1), "1": (1.0, 1), "2": (0.5, 1)}
    wrong = Prediction("q4.jpg", made[0].path, Ranking(["B"], [0.3]), None, None, [0.95])
    assert [m.prediction.image for m in worst_mistakes([*known, (wrong, "A")])] == ["q4.jpg", "q2.jpg"]


def test_report_catalogue_of_labels_leaves_new_whale_photos_out_of_the_individuals() -> None:
    labels = pd.DataFrame({"Id": ["A", "A", NEW_WHALE, "B"], "path": ["a1", "a2", "n", "b"]})
    cat = ReportCatalogue.of_labels(labels)
    assert cat.photos == 4 and cat.individuals == 2 and cat.photos_per_individual == {"A": 2, "B": 1}
    assert cat.best_photos == {"A": Path("a1"), "B": Path("b")}


@pytest.mark.parametrize("content", [b"not a jpeg", b""])
def test_thumbnail_is_empty_for_an_unreadable_photo(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "x.jpg").write_bytes(content)
    assert thumbnail(tmp_path / "x.jpg") == "" and thumbnail(None) == ""
    assert thumbnail(write_image(tmp_path / "ok.png", 2)).startswith("data:image/jpeg;base64,")
