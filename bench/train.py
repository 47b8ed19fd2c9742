"""Compare training losses with the same backbone and budget under the `whale` split.

For each dataset and seed: whale split -> `flukeid.train` on the catalogue part (its own internal validation
tunes the new_whale threshold) -> embed catalogue + queries -> MAP@5 with that threshold.

    python bench/train.py --data synthetic --data ../shared/data/nyala-dev \
        --configs configs/arcface.yaml configs/triplet.yaml configs/softmax.yaml
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from common import catalogue

from flukeid.config import load_config
from flukeid.data.check import check_catalogue
from flukeid.data.splits import make_split
from flukeid.identify.evaluate import evaluate_split, mean_std
from flukeid.models.artifact import load_model
from flukeid.progress import setup_logging
from flukeid.train.config import TrainConfig
from flukeid.train.engine import train

log = logging.getLogger("bench")


def run(args: argparse.Namespace) -> None:
    work = Path(args.work or tempfile.mkdtemp(prefix="flukeid-bench-"))
    rows = []
    for data in args.data:
        labels = check_catalogue(catalogue(data, work)).usable_labels()
        for config in args.configs:
            loss = Path(config).stem
            maps, top1s, oracles, seconds = [], [], [], []
            for seed in args.seeds:
                split = make_split(labels, "whale", seed=seed)
                overrides = {
                    "model.backbone": args.backbone,
                    "model.embedding_dim": args.dim,
                    "model.image_size": [args.size, args.size],
                    "epochs": args.epochs,
                    "num_workers": args.workers,
                    "seed": seed,
                }
                cfg = load_config(TrainConfig, Path(config), overrides)
                start = time.time()
                out = work / "runs" / f"{Path(data).name}-{loss}-{seed}"
                result = train(split.train, cfg, out, resume=False, progress=False)
                evaluation = evaluate_split(load_model(result.model_dir), split, local=False)
                seconds.append(time.time() - start)
                maps.append(evaluation.scores.map5)
                top1s.append(evaluation.scores.top1)
                oracles.append(evaluation.oracle_map5)
                log.info("%s %s seed %d: MAP@5 %.3f", data, loss, seed, evaluation.scores.map5)
            rows.append(
                f"| {Path(data).name} | {loss} | {mean_std(maps)} | {mean_std(oracles)} | {mean_std(top1s)} "
                f"| {sum(seconds) / len(seconds):.0f} |"
            )
    print("| data | config | MAP@5 (tuned threshold) | MAP@5 (oracle threshold) | top-1 known | s/run |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", default=None, help="'synthetic' or a catalogue folder")
    parser.add_argument(
        "--configs", nargs="+", default=["configs/arcface.yaml", "configs/triplet.yaml", "configs/softmax.yaml"]
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    args.data = args.data or ["synthetic"]
    setup_logging()
    run(args)


if __name__ == "__main__":
    main()
