"""Fluke detection on synthetic flukes, and what its crops do for identification, under the `whale` split.

Per seed: the detector (the demo's recipe: MobileNetV2, offline ImageNet weights, 128x256) trains on the boxes of
the split's catalogue photos only and is scored on its query photos (mean IoU, AP@0.5, mAP@[.5:.95]); then the
same frozen-feature identifier (EfficientNet-Lite0, threshold tuned on the catalogue part) runs on full frames
and on crops, with and without RootSIFT re-ranking.

    python bench/detect.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from common import boxes_of, catalogue, cropped_split, mean_std

from flukeid.data.check import check_catalogue
from flukeid.data.splits import Split, make_split
from flukeid.identify.evaluate import evaluate_split
from flukeid.identify.tune import tune_model
from flukeid.models.artifact import frozen_model, load_model
from flukeid.progress import setup_logging

log = logging.getLogger("bench")


def identification(split: Split, args: argparse.Namespace, out: Path, local: bool) -> float:
    artifact = frozen_model(args.backbone, out, (args.size, args.size))
    tune_model(artifact, split.train, seed=split.seed)
    return evaluate_split(load_model(out), split, local=local).scores.map5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="synthetic", help="'synthetic' or a catalogue folder with a boxes file")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--no-local", action="store_true", help="skip the columns with local matching (seconds per query)"
    )
    parser.add_argument("--work", default=None)
    args = parser.parse_args()
    setup_logging()
    work = Path(args.work or tempfile.mkdtemp(prefix="flukeid-detect-"))
    root = catalogue(args.data, work)
    boxes = boxes_of(root)
    if boxes is None:
        raise SystemExit(f"{root}: no boxes file; the detector benchmark needs one")
    labels = check_catalogue(root).usable_labels()
    variants = [("full frame", False, False), ("crops", True, False)]
    if not args.no_local:
        variants += [("full frame + local matching", False, True), ("crops + local matching", True, True)]
    rows: dict[str, list[float]] = {k: [] for k in ("mean IoU", "AP@0.5", "mAP@[.5:.95]", "detector s")}
    rows |= {f"MAP@5 {name}": [] for name, _, _ in variants}
    for seed in args.seeds:
        split = make_split(labels, "whale", seed=seed)
        start = time.time()
        cropped = cropped_split(split, boxes, work / f"detector-{seed}")
        rows["detector s"].append(time.time() - start)
        for key, value in zip(("mean IoU", "AP@0.5", "mAP@[.5:.95]"), dataclasses.astuple(cropped.scores)):
            rows[key].append(value)
        for name, crop, local in variants:
            out = work / f"model-{seed}-{name.replace(' ', '')}"
            rows[f"MAP@5 {name}"].append(identification(cropped.split if crop else split, args, out, local))
            log.info("seed %d %s: MAP@5 %.3f", seed, name, rows[f"MAP@5 {name}"][-1])
    print(f"| {Path(args.data).name}, whale split, seeds {' '.join(map(str, args.seeds))} | mean ± std |")
    print("|---|---|")
    for key, values in rows.items():
        print(f"| {key} | {mean_std(values) if key != 'detector s' else f'{np.mean(values):.0f}'} |")


if __name__ == "__main__":
    main()
