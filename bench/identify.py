"""Identification under the `whale` split (mean of seeds), plus embedding throughput and query latency.

Methods, each tuned only on the catalogue part of the split (never on the queries):
- frozen: ImageNet features (GeM-pooled), cosine KNN, new_whale threshold tuned on an open split of the catalogue
- softmax: the starting system's classifier recipe (configs/softmax.yaml), embeddings from its neck
- arcface: fine-tuned with configs/arcface.yaml (photos cropped first when the catalogue has boxes), KNN
- default: flukeid's default pipeline: photos cropped by a fluke detector trained on the catalogue part's boxes
  (when the catalogue has a boxes file; nyala-dev has none), frozen ImageNet features, and the top 30 individuals
  re-scored by RootSIFT + RANSAC homography inliers (fusion weight and threshold tuned on an open split of the
  catalogue). Fine-tuning is left out of it: at the budgets measured in RESULTS.md it did not beat frozen features.

    python bench/identify.py --data synthetic --data ../shared/data/nyala-dev --methods frozen softmax arcface default
    python bench/identify.py --speed   # throughput and latency only
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import torch
from common import boxes_of, catalogue, cropped_split

from flukeid.config import load_config
from flukeid.data.check import check_catalogue
from flukeid.data.splits import make_split
from flukeid.gallery import Gallery
from flukeid.identify.evaluate import evaluate_split, mean_std
from flukeid.identify.tune import frozen_model, tune_model, tune_rerank
from flukeid.models.artifact import Artifact, load_model
from flukeid.progress import setup_logging
from flukeid.train.config import TrainConfig
from flukeid.train.engine import train

log = logging.getLogger("bench")
CONFIG_DIR = Path(__file__).parents[1] / "configs"
CONFIGS = {"softmax": CONFIG_DIR / "softmax.yaml", "arcface": CONFIG_DIR / "arcface.yaml"}
FROZEN = ("frozen", "default")
RERANKED = ("default",)
CROPPED = ("arcface", "default")


def model_for(method: str, split_train, seed: int, args: argparse.Namespace, out: Path) -> Artifact:
    if method in FROZEN:
        artifact = frozen_model(args.backbone, out, (args.size, args.size))
        tune_model(artifact, split_train, seed=seed)
        if method in RERANKED:
            tune_rerank(load_model(out), split_train, seed=seed)
        return load_model(out)
    overrides = {
        "model.backbone": args.backbone,
        "model.image_size": [args.size, args.size],
        "epochs": args.epochs,
        "num_workers": args.workers,
        "seed": seed,
    }
    cfg = load_config(TrainConfig, CONFIGS[method], overrides)
    return load_model(train(split_train, cfg, out, resume=False, progress=False).model_dir)


def accuracy(args: argparse.Namespace) -> None:
    work = Path(args.work or tempfile.mkdtemp(prefix="flukeid-bench-"))
    print("| data | method | MAP@5 | top-1 known | BAKS | BAUS | new-ind. AUC | s/seed |")
    print("|---|---|---|---|---|---|---|---|")
    for data in args.data:
        root = catalogue(data, work)
        labels, boxes = check_catalogue(root).usable_labels(), boxes_of(root)
        for method in args.methods:
            runs, seconds = [], []
            for seed in args.seeds:
                start = time.time()
                split = make_split(labels, "whale", seed=seed)
                out = work / "runs" / f"{Path(data).name}-{method}-{seed}"
                if method in CROPPED and boxes is not None:
                    split = cropped_split(split, boxes, out.with_name(out.name + "-detector")).split
                artifact = model_for(method, split.train, seed, args, out)
                rerank = method in RERANKED
                runs.append(evaluate_split(artifact, split, num_workers=args.workers, rerank=rerank).scores)
                seconds.append(time.time() - start)
                log.info("%s %s seed %d: MAP@5 %.3f", data, method, seed, runs[-1].map5)
            cells = [mean_std([getattr(r, f) for r in runs]) for f in ("map5", "top1", "baks", "baus", "auc")]
            print(f"| {Path(data).name} | {method} | {' | '.join(cells)} | {np.mean(seconds):.0f} |", flush=True)


def throughput(args: argparse.Namespace) -> None:
    """Images/s of flukeid's embedding (model + neck + normalise) vs the bare backbone forward, same batch."""
    work = Path(tempfile.mkdtemp(prefix="flukeid-speed-"))
    artifact = frozen_model(args.backbone, work / "model", (args.size, args.size))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = artifact.model.to(device).eval()
    batch = torch.randn(args.batch, 3, args.size, args.size, device=device)

    def rate(fn) -> float:
        with torch.no_grad(), torch.autocast(device, dtype=torch.float16, enabled=device == "cuda"):
            fn(batch)
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(args.repeats):
                fn(batch)
            if device == "cuda":
                torch.cuda.synchronize()
        return args.batch * args.repeats / (time.perf_counter() - start)

    print(
        f"| {device} | {args.backbone} {args.size}px batch {args.batch} | bare backbone "
        f"{rate(model.backbone):.1f} img/s | flukeid embedding {rate(model):.1f} img/s |"
    )


def latency(args: argparse.Namespace) -> None:
    """Query latency on a 100k-vector gallery: flukeid's Gallery.score_table vs a bare FAISS search."""
    rng = np.random.default_rng(0)
    n, dim = args.gallery_size, 512
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.choice(n, 100)] + 0.05 * rng.normal(size=(100, dim)).astype(np.float32)
    ids = [f"w_{i // 3:06d}" for i in range(n)]
    work = Path(tempfile.mkdtemp(prefix="flukeid-latency-"))
    for kind in ("flat", "hnsw"):
        gallery = Gallery.create(work / kind, "bench", dim, index=kind)
        gallery.add([f"{i}.jpg" for i in range(n)], ids, vectors)
        bare = faiss.IndexFlatIP(dim) if kind == "flat" else faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        bare.add(vectors)
        timings = {}
        for name, fn in (
            ("bare FAISS search", lambda q, b=bare: b.search(q, 200)),
            ("flukeid score_table", lambda q, g=gallery: g.score_table(q, k=200)),
        ):
            fn(queries[:1])
            start = time.perf_counter()
            for q in queries:
                fn(q[None])
            timings[name] = 1000 * (time.perf_counter() - start) / len(queries)
        print(f"| {kind} | {n:,} vectors | " + " | ".join(f"{k} {v:.2f} ms/query" for k, v in timings.items()) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", default=None, help="'synthetic' or a catalogue folder")
    parser.add_argument("--methods", nargs="+", default=["frozen", "softmax", "arcface", "default"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", default=None)
    parser.add_argument("--speed", action="store_true", help="only throughput and latency")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gallery-size", type=int, default=100_000)
    args = parser.parse_args()
    setup_logging()
    if not args.speed:
        args.data = args.data or ["synthetic"]
        accuracy(args)
    throughput(args)
    latency(args)


if __name__ == "__main__":
    main()
