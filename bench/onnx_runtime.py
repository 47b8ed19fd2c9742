"""(Not bench/onnx.py: run as a script, that name would shadow the onnx package the exporter imports.)

PyTorch vs onnxruntime on CPU for the default CPU model (frozen EfficientNet-Lite0, 224 px, offline weights):
img/s of the network on preprocessed photos at batch sizes 1 and 16 (median of --repeats), both on --threads
threads, and the largest difference between the two runtimes' embeddings of the same photos (`embed_paths`).

    python bench/onnx_runtime.py --photos 32 --repeats 3 --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from flukeid.data.images import read_image
from flukeid.data.transforms import build_transform, to_tensor
from flukeid.detect.export import export_onnx
from flukeid.embed import embed_paths
from flukeid.models.artifact import frozen_model, load_model
from flukeid.models.onnx import OnnxNetwork
from flukeid.synth import SynthConfig, generate


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), platform.processor())
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{os.cpu_count()} CPU cores ({cpu}), load average {load}; torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}, Python {platform.python_version()}"
    )


def images_per_s(
    runs: dict[str, Callable[[np.ndarray], object]], images: np.ndarray, batch: int, repeats: int
) -> dict[str, list[float]]:
    """Photos per second of each run over ``repeats``, embedding ``images`` ``batch`` at a time (one warm-up batch
    each); the runs take turns within each repeat, so the machine's other load hits them alike."""
    speeds: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run(images[:batch])
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            for i in range(0, len(images), batch):
                run(images[i : i + batch])
            speeds[name].append(len(images) / (time.perf_counter() - start))
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description="PyTorch vs onnxruntime img/s on CPU, frozen Lite0.")
    parser.add_argument("--photos", type=int, default=32, help="Photos per repeat (a multiple of 16).")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        count = max(2, -(-args.photos // 4))
        generate(work / "cat", SynthConfig(individuals=count, photos=(4, 4), size=(192, 320), seed=1, new_share=0.0))
        photos = sorted((work / "cat").rglob("*.jpg"))[: args.photos]
        frozen_model("efficientnet_lite0", work / "model", (args.size, args.size))
        start = time.perf_counter()
        done = export_onnx(work / "model")
        export_s = time.perf_counter() - start
        artifact = load_model(work / "model")
        spec = artifact.model.backbone.spec
        transform = build_transform(artifact.image_size, spec.mean, spec.std)
        images = np.stack([to_tensor(transform, np.asarray(read_image(p))).numpy() for p in photos])
        network = OnnxNetwork(done.embedding.path, threads=args.threads)

        @torch.no_grad()
        def by_torch(batch: np.ndarray) -> np.ndarray:
            return artifact.model(torch.from_numpy(batch)).numpy()

        runs = {"torch": by_torch, "onnx": network}
        rows = {batch: images_per_s(runs, images, batch, args.repeats) for batch in (1, 16)}
        on_torch = embed_paths(artifact, photos, batch_size=16, num_workers=0).vectors
        onnx_artifact = load_model(work / "model", runtime="onnx")
        onnx_artifact.onnx = network  # the 2-thread session
        on_onnx = embed_paths(onnx_artifact, photos, batch_size=16, num_workers=0).vectors
    print(f"machine: {machine()}")
    print(
        f"model: frozen efficientnet_lite0 {args.size}x{args.size}, {artifact.model.dim}-d; export {export_s:.1f} s, "
        f"check vs PyTorch on random batches {done.embedding.max_abs_diff:.2e}"
    )
    print(f"{len(photos)} photos per repeat, {args.repeats} repeats: median [min-max]")
    print("| batch | torch img/s | onnxruntime img/s | speed-up |")
    print("|---|---|---|---|")
    for batch, speeds in rows.items():
        t, o = statistics.median(speeds["torch"]), statistics.median(speeds["onnx"])
        spread = {k: f"[{min(v):.1f}-{max(v):.1f}]" for k, v in speeds.items()}
        print(f"| {batch} | {t:.1f} {spread['torch']} | {o:.1f} {spread['onnx']} | {o / t:.2f}x |")
    print(f"machine load after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    diff = np.abs(on_onnx - on_torch).max()
    print(f"max |onnx - torch| over {len(photos)} photos' embeddings (embed_paths): {diff:.2e}")


if __name__ == "__main__":
    main()
