"""The README's main job on built-in data: synthetic flukes through the whole pipeline.

synth -> check -> stats -> fluke detector -> crops -> train -> tune (calibrated fusion of the embedding and the
local matchers) -> gallery (with local features) -> identify (the Identifier: crops, shortlist, local matching)
-> score + open-set metrics -> HTML report.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from flukeid import NEW_WHALE
from flukeid.data.check import check_catalogue
from flukeid.data.problems import Severity
from flukeid.data.stats import catalogue_stats
from flukeid.data.submission import read_answers, score_submission, write_submission
from flukeid.detect.crop import cropped_labels
from flukeid.detect.data import box_rows
from flukeid.detect.model import Detector, DetectorConfig, attach_detector, load_detector
from flukeid.detect.train import DetectTrainConfig, train_detector
from flukeid.gallery.build import build_gallery
from flukeid.identify.identifier import Identifier, model_matchers
from flukeid.identify.predict import write_outputs
from flukeid.identify.tune import tune_model
from flukeid.metrics import OpenSetScores, open_set_scores
from flukeid.models.artifact import ModelConfig, load_model
from flukeid.progress import progress_bar, stdout
from flukeid.report.html import write_report
from flukeid.report.plots import plot_photos_per_id
from flukeid.report.summary import ReportCatalogue
from flukeid.synth import SynthConfig, generate
from flukeid.train.config import OptimConfig, TrainConfig
from flukeid.train.engine import train
from flukeid.train.losses import LossConfig

log = logging.getLogger(__name__)

DEMO_TRAINING = TrainConfig(
    model=ModelConfig(backbone="efficientnet_lite0", embedding_dim=256, image_size=(128, 256)),
    loss=LossConfig(name="arcface", scale=30.0),
    optim=OptimConfig(lr=3e-3, backbone_lr_scale=0.3, freeze_epochs=0),
    epochs=6,
    batch_size=32,
)
"""A few minutes on 2 CPU cores (the same as configs/demo.yaml)."""

QUICK_TRAINING = TrainConfig(
    model=ModelConfig(backbone="timm/test_efficientnet", pretrained=False, embedding_dim=32, image_size=(48, 96)),
    epochs=1,
    batch_size=12,
    m_per_class=3,
    negatives_per_batch=2,
    num_workers=0,
)
"""Seconds, for the tests: proves the path, not the accuracy."""

DEMO_DETECTOR = DetectTrainConfig(model=DetectorConfig(backbone="mobilenetv2", image_size=(128, 256)), epochs=8)
QUICK_DETECTOR = DetectTrainConfig(
    model=DetectorConfig(backbone="timm/test_efficientnet", pretrained=False, image_size=(48, 96), hidden=8),
    epochs=1,
    num_workers=0,
)


def environment() -> str:
    """The versions and thread count that decide the demo's numbers (CPU float sums depend on them)."""
    import cv2
    import faiss
    import numpy
    import torch

    from flukeid import __version__

    return (
        f"flukeid {__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), numpy "
        f"{numpy.__version__}, opencv {cv2.__version__}, faiss {faiss.__version__}"
    )


@dataclass(frozen=True)
class DemoResult:
    submission: Path
    report: Path
    map5: float
    baseline_map5: float
    scores: OpenSetScores


def baseline_predictions(train_labels: pd.DataFrame, test_images: list[str]) -> dict[str, list[str]]:
    """The Kaggle floor: ``new_whale`` first, then the four most photographed individuals."""
    frequent = train_labels.loc[train_labels["Id"] != NEW_WHALE, "Id"].value_counts().index[:4].tolist()
    return {image: [NEW_WHALE, *frequent] for image in test_images}


def _catalogue(data: Path, individuals: int, seed: int, size: tuple[int, int]) -> pd.DataFrame:
    if not (data / "train.csv").is_file():
        if data.exists():
            shutil.rmtree(data)
        log.info("synthesising %d individuals into %s", individuals, data)
        with progress_bar("rendering flukes") as update:
            generate(data, SynthConfig(individuals=individuals, photos=(1, 6), size=size, seed=seed), update)
    with progress_bar("checking images") as update:
        report = check_catalogue(data, progress=update)
    log.info("check: %d warnings, %d errors", report.count(Severity.WARNING), report.count(Severity.ERROR))
    return report.require_usable()


def _detector(data: Path, out: Path, cfg: DetectTrainConfig, quick: bool) -> Detector:
    """Train the fluke detector on the catalogue photos' boxes (the test photos' boxes stay unseen)."""
    rows = box_rows(data)
    rows = rows.subset([i for i, p in enumerate(rows.paths) if p.parent.name == "train"])
    trained = train_detector(rows, cfg, out, progress=not quick)
    if trained.evaluation is not None:
        s = trained.evaluation.scores
        log.info("detector: held-out mean IoU %.3f, AP@0.5 %.3f", s.mean_iou, s.ap50)
    return load_detector(out)


def run_demo(work: Path, seed: int = 0, quick: bool = False) -> DemoResult:
    """Run every stage on synthetic flukes in ``work`` and print where the results are."""
    data = work / "flukes"
    individuals, size = (20, (64, 96)) if quick else (120, (192, 384))
    labels = _catalogue(data, individuals, seed, size)
    stats = catalogue_stats(labels)
    plot = plot_photos_per_id(stats, work / "stats.png")
    log.info(
        "catalogue: %d photos, %d individuals, %.0f%% singletons",
        stats.images,
        stats.individuals,
        100 * stats.singleton_share,
    )
    detector = _detector(data, work / "detector", QUICK_DETECTOR if quick else DEMO_DETECTOR, quick)
    with progress_bar("cropping catalogue") as update:
        crops = cropped_labels(detector, labels, progress=update)
    cfg = QUICK_TRAINING if quick else DEMO_TRAINING
    result = train(crops, cfg, work / "run", resume=False, progress=not quick)
    attach_detector(result.model_dir, detector.path)
    artifact = load_model(result.model_dir)
    with progress_bar("tuning the identification") as update:
        tune_model(artifact, crops, seed=seed, progress=update)  # fusion.json: what the Identifier fuses
    gallery_dir = work / "gallery"
    with progress_bar("building the gallery") as update:
        gallery = build_gallery(
            artifact, crops, gallery_dir, replace=True, progress=update, matchers=model_matchers(artifact.path)
        ).gallery
    answers = read_answers(data / "answers.csv")
    with progress_bar("identifying") as update:
        identifier = Identifier.load(artifact, gallery)  # crops the queries with the model's detector
        predictions = identifier.identify([data / "test" / i for i in answers.ids], progress=update)
    outputs = write_outputs(predictions, work / "results")
    report = write_report(
        predictions,
        ReportCatalogue.of_gallery(gallery),
        work / "results" / "report.html",
        truths=answers.ids,
        title="flukeid demo: synthetic flukes",
        threshold=identifier.threshold,
    )
    baseline = work / "results" / "baseline_submission.csv"
    write_submission(baseline, baseline_predictions(labels, list(answers.ids)))
    truths = [answers.ids[p.image] for p in predictions]
    scores = open_set_scores(
        [p.ranking.ids for p in predictions], truths, [answers.identities[p.image] for p in predictions], None
    )
    demo = DemoResult(
        outputs["submission"],
        report,
        score_submission(outputs["submission"], data / "answers.csv"),
        score_submission(baseline, data / "answers.csv"),
        scores,
    )
    stdout.print(
        f"catalogue: {data} (stats plot {plot})\ndetector: {detector.path}\nmodel: {result.model_dir}\n"
        f"gallery: {gallery_dir}\n"
        f"submission: {demo.submission}\nreport: {demo.report}\n"
        f"MAP@5 {demo.map5:.3f} (new_whale-first baseline {demo.baseline_map5:.3f}); top-1 on known "
        f"{scores.top1:.3f}, BAKS {scores.baks:.3f}, BAUS {scores.baus:.3f}\n"
        f"measured with {environment()}"
    )
    return demo
