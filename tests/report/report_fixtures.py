"""A small hand-made report: a catalogue of three individuals (1, 2 and 5 photos), four queries (right, wrong,
new, unreadable) with raw fused scores above 1 and calibrated probabilities, and photos of awkward shapes."""

from __future__ import annotations

from pathlib import Path

from conftest import write_image

from flukeid import NEW_WHALE
from flukeid.identify.identifier import Prediction
from flukeid.identify.ranking import Ranking
from flukeid.report.summary import ReportCatalogue

LONG = "an-individual-with-a-very-long-name-that-must-wrap-inside-its-cell"
TRUTHS = {"q1.jpg": "A", "q2.jpg": "B", "q3.jpg": NEW_WHALE}
THRESHOLD = 0.5


def catalogue(folder: Path) -> ReportCatalogue:
    best = {
        "A": write_image(folder / "a.jpg", 1, size=(400, 120)),  # very wide
        "B": write_image(folder / "b.png", 2, size=(60, 300)),  # very tall
        LONG: write_image(folder / "c.jpg", 3, size=(640, 480)),
    }
    return ReportCatalogue(best, {"A": 1, "B": 2, LONG: 5}, 8)


def predictions(folder: Path) -> list[Prediction]:
    query = write_image(folder / "q.jpg", 9, size=(900, 300))
    return [
        Prediction(
            "q1.jpg", query, Ranking(["A", "B", NEW_WHALE], [1.219, 0.8, THRESHOLD]), 0.85, None, [0.91, 0.4, 0.15]
        ),
        Prediction(
            "q2.jpg", query, Ranking([LONG, "B", NEW_WHALE], [2.05, 1.5, THRESHOLD]), 0.7, None, [0.77, 0.6, 0.3]
        ),
        Prediction("q3.jpg", query, Ranking([NEW_WHALE, "A"], [THRESHOLD, 0.3]), 0.2, None, [0.8, 0.1]),
        Prediction("bad.jpg", folder / "bad.jpg", Ranking([NEW_WHALE], [float("nan")]), error="not an image"),
    ]
