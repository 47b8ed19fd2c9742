"""Scale with Ray: embedding throughput on Ray Data (an actor pool, the model loaded once per actor) vs the
single-process loop (`embed_paths`) on the same synthetic photos; and one photo identified end to end on CPU (crop,
embed, gallery search, ranking; no local matching) against a 50k-photo gallery of random unit vectors.

A frozen EfficientNet-Lite0 at 224 px (`flukeid.models.artifact.frozen_model`, offline ImageNet weights). Each section
prints markdown rows; `SECTIONS` names them, so they can join bench/scale.py.

    python bench/scale_ray.py                                   # both sections
    python bench/scale_ray.py --sections latency --gallery-size 50000 --runs 20
    python bench/scale_ray.py --sections ray-embedding --photos 300 --cpus 2
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from flukeid.embed import embed_paths
from flukeid.gallery import Gallery
from flukeid.identify.identifier import Identifier
from flukeid.identify.settings import IdentifySettings
from flukeid.models.artifact import Artifact, frozen_model, load_model
from flukeid.progress import setup_logging
from flukeid.synth import SynthConfig, generate

log = logging.getLogger("bench")
LATENCY_GOAL_MS = 150.0


def _model(work: Path, backbone: str, size: int) -> Artifact:
    folder = work / f"{backbone}-{size}"
    return (
        load_model(folder) if (folder / "model.safetensors").is_file() else frozen_model(backbone, folder, (size, size))
    )


def _photos(work: Path, count: int) -> list[Path]:
    """About ``count`` synthetic fluke photos (192-320 px wide), generated once into ``work``."""
    root = work / f"synthetic-{count}"
    if not (root / "train.csv").is_file():
        generate(root, SynthConfig(individuals=max(1, count // 3), photos=(2, 4), size=(192, 320), seed=11))
    photos = sorted((root / "train").iterdir()) + sorted((root / "test").iterdir())
    return photos[:count]


def ray_embedding(args: argparse.Namespace) -> list[str]:
    """img/s of the single-process loop and of Ray Data (local Ray, ``args.cpus`` actors of one CPU each)."""
    work = Path(args.work)
    artifact, photos = _model(work, args.backbone, args.size), _photos(work, args.photos)
    rows = [
        "| path | photos | batch | workers | img/s (end to end) | img/s (actor start-up taken out, est.) |",
        "|---|---|---|---|---|---|",
    ]
    embed_paths(artifact, photos[: args.batch], batch_size=args.batch, num_workers=0)  # warm-up
    start = time.perf_counter()
    here = embed_paths(artifact, photos, batch_size=args.batch, num_workers=args.cpus)
    seconds = time.perf_counter() - start
    rate = len(photos) / seconds
    threads = torch.get_num_threads()
    rows.append(
        f"| single process (embed_paths, {threads} threads, {args.cpus} loader workers) | {len(photos)} | {args.batch}"
        f" | 1 | {rate:.1f} | {rate:.1f} |"
    )
    try:
        import ray
    except ImportError:
        return [*rows, "| Ray Data | - | - | - | Ray not installed: pip install -e '.[scale]' | - |"]
    from flukeid.embed_ray import _quiet_ray_data, gather, ray_batches

    started = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    init_s = time.perf_counter() - started
    _quiet_ray_data(ray)
    try:
        times = []
        # first the actor pool's start-up (each actor loads the model, then embeds one photo), then the real run
        for subset, batch in ((photos[: args.cpus], 1), (photos, args.batch)):
            start = time.perf_counter()
            found = gather(ray_batches(artifact.path, batch_size=batch)(subset), subset, artifact.model.dim)
            times.append(time.perf_counter() - start)
    finally:
        ray.shutdown()
    same = np.abs(found.vectors - here.vectors).max() if len(found.vectors) == len(here.vectors) else float("nan")
    warm = len(photos) / max(times[1] - times[0], 1e-9)
    rows.append(
        f"| Ray Data map_batches (actor pool, 1 CPU each; ray.init {init_s:.1f} s not counted) | {len(photos)} | "
        f"{args.batch} | {args.cpus} | {len(photos) / times[1]:.1f} | {warm:.1f} |"
    )
    rows.append(
        f"\nactor pool start-up (a run of {args.cpus} photo(s)): {times[0]:.1f} s; largest difference between the two "
        f"paths' vectors: {same:.2e}"
    )
    return rows


def latency(args: argparse.Namespace) -> list[str]:
    """p50/p90 ms of `Identifier.identify([photo])` (embedding included, no local matching) on a gallery of
    ``args.gallery_size`` random unit vectors of the model's dimension; and of its search and ranking alone (the
    photo embedded beforehand)."""
    torch.set_num_threads(args.cpus)
    work = Path(args.work)
    artifact, photo = _model(work, args.backbone, args.size), _photos(work, args.photos)[0]
    dim, n = artifact.model.dim, args.gallery_size
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = [
        f"| index | gallery photos | dim | p50 ms | p90 ms | of which search + ranking p50 ms | p50 < "
        f"{LATENCY_GOAL_MS:.0f} ms | gallery build s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in args.index:
        folder = Path(tempfile.mkdtemp(prefix=f"gallery-{kind}-", dir=work))
        start = time.perf_counter()
        gallery = Gallery.create(folder, artifact.model_id, dim, index=kind)
        gallery.add([f"{i:06d}.jpg" for i in range(n)], [f"w_{i // 10:05d}" for i in range(n)], vectors)
        build_s = time.perf_counter() - start
        identifier = Identifier(artifact, Gallery.open(folder), IdentifySettings(matchers=()), fusion=None)
        identifier.identify([photo])  # warm-up: index loaded, model on its device
        embedded = identifier.embed([photo])
        timings: dict[str, list[float]] = {"all": [], "search": []}
        for _ in range(args.runs):
            start = time.perf_counter()
            identifier.identify([photo])
            middle = time.perf_counter()
            identifier.identify_embedded([photo], embedded)
            timings["all"].append(1000 * (middle - start))
            timings["search"].append(1000 * (time.perf_counter() - middle))
        p50, p90 = np.percentile(timings["all"], [50, 90])
        search = np.percentile(timings["search"], 50)
        rows.append(
            f"| {kind} | {n:,} | {dim} | {p50:.1f} | {p90:.1f} | {search:.1f} | "
            f"{'yes' if p50 < LATENCY_GOAL_MS else 'no'} | {build_s:.1f} |"
        )
    return rows


SECTIONS: dict[str, tuple[str, Callable[[argparse.Namespace], list[str]]]] = {
    "ray-embedding": ("Embedding throughput: Ray Data vs one process", ray_embedding),
    "latency": ("One photo identified end to end on CPU (no local matching)", latency),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    p.add_argument("--work", default=None, help="folder for the model, photos and galleries (default: a temporary one)")
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--photos", type=int, default=300)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--cpus", type=int, default=min(2, os.cpu_count() or 1), help="CPUs for either path")
    p.add_argument("--gallery-size", type=int, default=50_000)
    p.add_argument("--index", nargs="+", default=["flat"], help="gallery index kinds to time")
    p.add_argument("--runs", type=int, default=20)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    setup_logging()
    args.work = args.work or tempfile.mkdtemp(prefix="flukeid-scale-ray-")
    Path(args.work).mkdir(parents=True, exist_ok=True)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"CPU: {os.cpu_count()} cores (load {load}); torch {torch.__version__}; {args.backbone} {args.size} px\n")
    for name in args.sections:
        title, section = SECTIONS[name]
        print(f"### {title}\n")
        print("\n".join(section(args)), flush=True)
        print()


if __name__ == "__main__":
    main()
