"""Identification with the Identifier, mean of seeds: frozen features + KNN, each local matcher on the same
shortlist, and flukeid's default; open (`whale`) and closed protocols; plus embedding throughput and latency.

Every method is a frozen ImageNet model (no training) whose identification (each matcher's calibration, the fusion,
the new_whale threshold) is fitted on an open split of the catalogue part only, never on the queries:
- frozen: the embedding alone (cosine KNN, calibrated threshold)
- +NAME: the embedding and the local matcher NAME fused (mean of calibrated P(same)) over the same shortlist
- NAME alone: the local matcher's calibrated score decides; the embedding only makes the shortlist
- default: flukeid's default identify settings (`IdentifySettings()`)
Photos are cropped by a fluke detector trained on the catalogue part's boxes when the catalogue has boxes
(synthetic flukes; nyala-dev has none).

    python bench/identify.py --data ../shared/data/nyala-dev --methods frozen +sift +aliked default --seeds 0 1 2
    python bench/identify.py --data ../shared/data/nyala-dev --protocol closed --methods frozen default
    python bench/identify.py --speed   # throughput and latency only
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import torch
from common import boxes_of, catalogue, cropped_split, mean_std

from flukeid import NEW_WHALE
from flukeid.data.check import check_catalogue
from flukeid.data.splits import make_split
from flukeid.gallery import Gallery
from flukeid.identify.evaluate import Evaluation, evaluate_split
from flukeid.identify.identifier import save_settings
from flukeid.identify.ranking import rank
from flukeid.identify.settings import IdentifySettings
from flukeid.identify.tune import tune_model
from flukeid.matchers import MATCHERS, MatcherSettings
from flukeid.models.artifact import frozen_model, load_model
from flukeid.progress import setup_logging

log = logging.getLogger("bench")
KEYPOINTS = {"sift": 2000, "aliked": 512, "disk": 512, "xfeat": 1024}


def settings_for(method: str, args: argparse.Namespace) -> IdentifySettings:
    """The identify settings a method name stands for (all with the same shortlist)."""
    base = dataclasses.replace(IdentifySettings(), shortlist=args.shortlist)
    if method == "default":
        return base
    if method == "frozen":
        return dataclasses.replace(base, matchers=())
    name = method.removeprefix("+").removesuffix("-alone")
    if name not in MATCHERS:
        raise SystemExit(f"unknown method {method!r}: frozen, default, +NAME or NAME-alone; NAME in {list(MATCHERS)}")
    matcher = MatcherSettings(name, max_side=args.max_side, keypoints=KEYPOINTS[name])  # type: ignore[arg-type]
    return dataclasses.replace(base, matchers=(matcher,), fuse_global=not method.endswith("-alone"))


def closed_scores(evaluation: Evaluation) -> tuple[float, float]:
    """Top-1 and top-5 accuracy of the ranking without new_whale (every query is known)."""
    known = [i for i, t in enumerate(evaluation.truths) if t != NEW_WHALE]
    ranked = [r.ids for r in rank(evaluation.table, k=5)]
    return (
        float(np.mean([ranked[i][0] == evaluation.truths[i] for i in known])),
        float(np.mean([evaluation.truths[i] in ranked[i] for i in known])),
    )


def accuracy(args: argparse.Namespace) -> None:
    work = Path(args.work or tempfile.mkdtemp(prefix="flukeid-bench-"))
    if args.protocol == "whale":
        print("| data | method | MAP@5 | top-1 known | new-ind. AUC | s/query | s/seed |")
        print("|---|---|---|---|---|---|---|")
    else:
        print("| data | method | top-1 | top-5 | s/query | s/seed |")
        print("|---|---|---|---|---|---|")
    for data in args.data:
        root = catalogue(data, work)
        labels, boxes = check_catalogue(root).usable_labels(), boxes_of(root)
        for method in args.methods:
            rows, seconds = [], []
            for seed in args.seeds:
                start = time.time()
                split = make_split(labels, args.protocol, seed=seed)
                out = work / "runs" / f"{Path(data).name}-{args.protocol}-{method}-{seed}"
                if boxes is not None:
                    split = cropped_split(split, boxes, work / "runs" / f"{Path(data).name}-detector-{seed}").split
                artifact = frozen_model(args.backbone, out, (args.size, args.size))
                save_settings(out, settings_for(method, args))
                tune_model(artifact, split.train, seed=seed)
                evaluation = evaluate_split(load_model(out), split)
                s = evaluation.scores
                if args.protocol == "whale":
                    rows.append((s.map5, s.top1, s.auc, evaluation.seconds_per_query))
                else:
                    rows.append((*closed_scores(evaluation), evaluation.seconds_per_query))
                seconds.append(time.time() - start)
                log.info("%s %s seed %d: %s", data, method, seed, " ".join(f"{v:.3f}" for v in rows[-1]))
            columns = np.array(rows).T
            cells = [mean_std(list(c)) for c in columns[:-1]] + [f"{columns[-1].mean():.2f}"]
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
    parser.add_argument("--methods", nargs="+", default=["frozen", "default"])
    parser.add_argument("--protocol", choices=["whale", "closed"], default="whale")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--shortlist", type=int, default=IdentifySettings().shortlist)
    parser.add_argument("--max-side", type=int, default=512, help="photos matched at most this large (+NAME)")
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
        return
    throughput(args)
    latency(args)


if __name__ == "__main__":
    main()
