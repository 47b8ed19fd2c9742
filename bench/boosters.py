"""Boosters on the same open-set (`whale`) splits: each technique with and without, and what it costs.

- baseline: EfficientNet-Lite0 fine-tuned with configs/arcface.yaml on the split's catalogue part
- + local matching: the model tuned on the catalogue, its local matchers fused with its embedding (calibrated)
- + pseudo-labels: one noisy-student round; the split's query photos (labels hidden) are the unlabelled pool
  (transductive, as the Kaggle teams did with the test set); kept when calibrated P(match) >= --pseudo-threshold
- distillation: a MobileNetV2 student trained alone vs distilled from the baseline (teacher), with CPU img/s

    python bench/boosters.py --data synthetic --data ../shared/data/nyala-dev --seeds 0 --epochs 4 --size 128
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import catalogue, mean_std

from flukeid.config import load_config
from flukeid.data.check import check_catalogue
from flukeid.data.splits import Split, make_split
from flukeid.identify.evaluate import evaluate_split
from flukeid.identify.tune import tune_model
from flukeid.models.artifact import load_model
from flukeid.progress import setup_logging
from flukeid.train.config import TrainConfig
from flukeid.train.distill import distill_model
from flukeid.train.engine import train
from flukeid.train.pseudo import train_with_pseudo_labels

log = logging.getLogger("bench")
CONFIG = Path(__file__).parents[1] / "configs" / "arcface.yaml"


def _timed(fn: Callable[[], Path]) -> tuple[Path, float]:
    start = time.time()
    return fn(), time.time() - start


def run_seed(split: Split, cfg: TrainConfig, args: argparse.Namespace, work: Path) -> dict[str, tuple[float, float]]:
    """Method -> (MAP@5, seconds) on one split."""

    def score(model: Path, local: bool = False) -> float:
        return evaluate_split(load_model(model), split, local=local).scores.map5

    found: dict[str, tuple[float, float]] = {}
    base, seconds = _timed(lambda: train(split.train, cfg, work / "base", resume=False, progress=False).model_dir)
    found["baseline (lite0 arcface)"] = (score(base), seconds)
    start = time.time()
    tune_model(load_model(base), split.train, seed=split.seed)
    found["+ local matching (the model's fused matchers)"] = (score(base, local=True), time.time() - start)
    queries = [Path(p) for p in split.test["path"]]
    start = time.time()
    pseudo = train_with_pseudo_labels(
        split.train, queries, cfg, work / "pseudo", 1, args.pseudo_threshold, progress=False
    )
    log.info("pseudo-labels kept: %d of %d", len(pseudo.labels), len(queries))
    found[f"+ pseudo-labels ({len(pseudo.labels)} kept)"] = (score(pseudo.model_dir), time.time() - start)
    student_cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, backbone="mobilenetv2"))
    alone, seconds = _timed(
        lambda: train(split.train, student_cfg, work / "alone", resume=False, progress=False).model_dir
    )
    found["mobilenetv2 alone"] = (score(alone), seconds)
    start = time.time()
    taught = distill_model([base], split.train, student_cfg, work / "taught", progress=False)
    found["mobilenetv2 distilled from baseline"] = (score(taught.model_dir), time.time() - start)
    log.info("CPU img/s: student %.1f, teacher %.1f", taught.student_images_per_s, taught.teacher_images_per_s)
    found["(CPU img/s student / teacher)"] = (taught.student_images_per_s, taught.teacher_images_per_s)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", default=None, help="'synthetic' or a catalogue folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pseudo-threshold", type=float, default=0.5)
    parser.add_argument("--work", default=None)
    args = parser.parse_args()
    setup_logging()
    work = Path(args.work or tempfile.mkdtemp(prefix="flukeid-boosters-"))
    overrides = {"model.image_size": [args.size, args.size], "epochs": args.epochs, "num_workers": args.workers}
    print("| data | method | MAP@5 | s |")
    print("|---|---|---|---|")
    for data in args.data or ["synthetic"]:
        labels = check_catalogue(catalogue(data, work)).usable_labels()
        runs: dict[str, list[tuple[float, float]]] = {}
        for seed in args.seeds:
            cfg = load_config(TrainConfig, CONFIG, overrides | {"seed": seed})
            split = make_split(labels, "whale", seed=seed)
            for method, value in run_seed(split, cfg, args, work / f"{Path(data).name}-{seed}").items():
                runs.setdefault(method, []).append(value)
        for method, values in runs.items():
            maps, seconds = [v[0] for v in values], [v[1] for v in values]
            if method.startswith("(CPU"):
                print(f"| {Path(data).name} | {method} | {maps[0]:.1f} / {seconds[0]:.1f} | |")
            else:
                print(f"| {Path(data).name} | {method} | {mean_std(maps)} | {sum(seconds) / len(seconds):.0f} |")


if __name__ == "__main__":
    main()
