"""Load check of the curator service: N concurrent identify requests against a synthetic catalogue.

Builds (once, under --work) a synthetic catalogue of about --photos photos, a frozen ImageNet model, its gallery
and a curated catalogue with a viewer; starts `flukeid serve` in its own process on 127.0.0.1; then sends
--requests POST /api/identify requests (one test photo each) from --concurrency threads at once and prints the
error count, p50/p95/max latency and the throughput.

    python bench/serve_load.py --photos 10000 --requests 50 --concurrency 50
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from flukeid.gallery import Gallery
from flukeid.gallery.build import build_gallery
from flukeid.models.artifact import frozen_model, load_model
from flukeid.progress import progress_bar, setup_logging
from flukeid.serve.auth import add_user
from flukeid.serve.catalog import CatalogSettings, init_catalog
from flukeid.serve.db import sessions
from flukeid.synth import SynthConfig, generate

log = logging.getLogger("bench")


def build(work: Path, photos: int, backbone: str, size: tuple[int, int]) -> tuple[Path, list[Path], int]:
    """The catalogue folder, its query photos and its gallery size; reused when already built."""
    cat, folder = work / "synthetic", work / "catalog"
    if not (cat / "train.csv").is_file():
        # about 1.93 catalogue photos per individual with these settings
        generate(
            cat,
            SynthConfig(
                individuals=photos * 13 // 25, photos=(2, 5), size=(96, 128), seed=7, new_share=0.1, train_new_whale=0.0
            ),
        )
    if not (folder / "catalog.json").is_file():
        import pandas as pd

        labels = pd.read_csv(cat / "train.csv")
        labels["path"] = [str(cat / "train" / i) for i in labels["Image"]]
        artifact = frozen_model(backbone, work / "model", size)
        with progress_bar("embedding the catalogue") as update:
            build_gallery(load_model(work / "model"), labels, work / "gallery", index="flat", progress=update)
        init_catalog(folder, work / "model", work / "gallery")
        log.info("catalogue built with %s", artifact.model_id)
    queries = sorted((cat / "test").iterdir())
    return folder, queries, len(Gallery.open(work / "gallery"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=10_000, help="catalogue photos (about)")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--size", type=int, nargs=2, default=[96, 128], help="model input height width")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--work", type=Path, default=Path("runs/serve-load"))
    args = parser.parse_args()
    setup_logging()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    folder, queries, gallery_size = build(args.work, args.photos, args.backbone, tuple(args.size))
    with sessions(CatalogSettings.load(folder).database).begin() as session:
        token = add_user(session, f"load{time.time_ns()}", "viewer")
    server = subprocess.Popen(
        [sys.executable, "-m", "flukeid", "serve", str(folder), "--port", str(args.port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base, headers = f"http://127.0.0.1:{args.port}", {"Authorization": f"Bearer {token}"}
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/api/me", headers=headers).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the service did not start")
            time.sleep(0.5)

        def one(i: int) -> tuple[int, float]:
            photo = queries[i % len(queries)]
            start = time.perf_counter()
            answer = httpx.post(
                f"{base}/api/identify",
                headers=headers,
                timeout=300,
                files=[("files", (photo.name, photo.read_bytes(), "image/jpeg"))],
            )
            ok = answer.status_code == 200 and len(answer.json()["candidates"]) == 5
            return (0 if ok else 1), time.perf_counter() - start

        start = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(one, range(args.requests)))
        wall = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(30)
    errors = sum(e for e, _ in results)
    latency = np.array([t for _, t in results]) * 1000
    print("| catalogue photos | requests | concurrency | errors | p50 ms | p95 ms | max ms | requests/s |")
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {gallery_size:,} | {args.requests} | {args.concurrency} | {errors} | {np.percentile(latency, 50):.0f} "
        f"| {np.percentile(latency, 95):.0f} | {latency.max():.0f} | {args.requests / wall:.1f} |"
    )


if __name__ == "__main__":
    main()
