"""What the benchmark scripts share: where a named catalogue lies, how a split gets cropped, how seeds print."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flukeid.data.splits import Split
from flukeid.demo import DEMO_DETECTOR
from flukeid.detect.crop import cropped_labels
from flukeid.detect.data import BoxRows, box_rows
from flukeid.detect.model import load_detector
from flukeid.detect.predict import evaluate_detector
from flukeid.detect.train import DetectTrainConfig, train_detector
from flukeid.errors import CatalogueError
from flukeid.metrics import BoxScores
from flukeid.synth import SynthConfig, generate

SYNTHETIC = SynthConfig(individuals=160, photos=(2, 6), size=(192, 320), seed=123, new_share=0.0)
"""The synthetic benchmark catalogue: every individual in train.csv, split later like any catalogue."""

DETECTOR = DEMO_DETECTOR


@dataclass(frozen=True)
class CroppedSplit:
    split: Split  # both sides' paths point at crops
    scores: BoxScores  # the detector on the split's query photos (never trained on)
    detector: Path


def catalogue(name: str, work: Path) -> Path:
    """'synthetic' (generated once into ``work``) or a catalogue folder."""
    if name != "synthetic":
        return Path(name)
    root = work / "synthetic"
    if not (root / "train.csv").is_file():
        generate(root, SYNTHETIC)
    return root


def boxes_of(root: Path) -> BoxRows | None:
    """The catalogue's fluke boxes, or None when it has no boxes file (e.g. nyala-dev)."""
    try:
        return box_rows(root)
    except CatalogueError:
        return None


def cropped_split(split: Split, boxes: BoxRows, out: Path, cfg: DetectTrainConfig = DETECTOR) -> CroppedSplit:
    """Train a detector on the boxes of the split's catalogue photos only, then crop both sides of the split."""
    known = set(split.train["Image"])
    rows = boxes.subset([i for i, p in enumerate(boxes.paths) if p.name in known])
    train_detector(rows, dataclasses.replace(cfg, val_share=0.0, seed=split.seed), out, progress=False)
    detector = load_detector(out)
    queries = set(split.test["Image"])
    held_out = boxes.subset([i for i, p in enumerate(boxes.paths) if p.name in queries])
    scores = evaluate_detector(detector, held_out).scores
    crops = dataclasses.replace(
        split, train=cropped_labels(detector, split.train), test=cropped_labels(detector, split.test)
    )
    return CroppedSplit(crops, scores, out)


def mean_std(values: list[float]) -> str:
    """Mean ± standard deviation over seeds, three decimals."""
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"
