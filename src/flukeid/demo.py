"""The README's main job on built-in data: synthetic flukes through the whole pipeline."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from flukeid import NEW_WHALE
from flukeid.data.check import check_catalogue
from flukeid.data.problems import Severity
from flukeid.data.stats import catalogue_stats
from flukeid.data.submission import score_submission, write_submission
from flukeid.data.synth import SynthConfig, generate
from flukeid.errors import FlukeidError
from flukeid.progress import progress_bar, stdout
from flukeid.report.plots import plot_photos_per_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoResult:
    data: Path
    baseline_submission: Path
    baseline_map5: float


def baseline_predictions(train: pd.DataFrame, test_images: list[str]) -> dict[str, list[str]]:
    """The Kaggle floor: ``new_whale`` first, then the four most photographed individuals."""
    frequent = train.loc[train["Id"] != NEW_WHALE, "Id"].value_counts().index[:4].tolist()
    return {image: [NEW_WHALE, *frequent] for image in test_images}


def run_demo(work: Path, seed: int = 0, individuals: int = 120) -> DemoResult:
    """synth -> check -> stats -> baseline submission -> score; prints where everything is."""
    data = work / "flukes"
    if not (data / "train.csv").is_file():
        log.info("1/4 synthesising %d individuals into %s", individuals, data)
        with progress_bar("rendering flukes") as update:
            generate(data, SynthConfig(individuals=individuals, photos=(1, 6), seed=seed), progress=update)
    log.info("2/4 checking the catalogue")
    with progress_bar("checking images") as update:
        report = check_catalogue(data, progress=update)
    if report.fatal:
        raise FlukeidError(f"demo catalogue {data} failed its check: {report.problems}")
    log.info("   %d problems (%d errors)", len(report.problems), report.count(Severity.ERROR))
    labels = report.usable_labels()
    stats = catalogue_stats(labels, test_images=len(report.catalogue.test) if report.catalogue else 0)
    plot = plot_photos_per_id(stats, work / "stats.png")
    log.info(
        "3/4 %d photos of %d individuals, %.0f%% singletons -> %s",
        stats.images,
        stats.individuals,
        100 * stats.singleton_share,
        plot,
    )
    log.info("4/4 baseline submission (new_whale first)")
    test_images = pd.read_csv(data / "answers.csv")["Image"].tolist()
    baseline = work / "baseline_submission.csv"
    write_submission(baseline, baseline_predictions(labels, test_images))
    score = score_submission(baseline, data / "answers.csv")
    stdout.print(
        f"catalogue: {data}\nstats plot: {plot}\nbaseline submission: {baseline}\n"
        f"baseline MAP@5 (new_whale first): {score:.3f}"
    )
    return DemoResult(data, baseline, score)
