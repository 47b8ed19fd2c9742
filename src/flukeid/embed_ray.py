"""Per-photo work on Ray, for `flukeid embed --ray` and `flukeid identify --ray`: photos decoded, cropped and
embedded as Ray Data ``map_batches`` over an actor pool. Each actor loads the model (and its detector) once and runs
the single-process code (`Identifier.embed`) on its batches, so the vectors are the ones of the single-process path
(to float rounding); one GPU per actor when the cluster has GPUs, else one CPU.

Ray is optional (``pip install -e '.[scale]'``) and imported only here, when used. On a cluster, the photos and the
model folder must be readable at the same paths from every node (a shared file system); a crop the driver cannot
read where the actor wrote it comes back as bytes.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from flukeid.errors import FlukeidError

if TYPE_CHECKING:
    from flukeid.embed import Batches, Embedded
    from flukeid.identify.identifier import Identifier
    from flukeid.progress import Progress

LOCAL = "local"
"""``--ray local``: a Ray started on this machine for the run."""
INSTALL = "pip install -e '.[scale]'"
RAY_HELP = (
    "Run the per-photo work on Ray: 'local' (a Ray on this machine), 'auto' (the cluster this machine is a node of) "
    "or a cluster's address, e.g. ray://HEAD:10001."
)


def import_ray() -> ModuleType:
    """The ray module, or a FlukeidError saying how to install it."""
    try:
        import ray
        import ray.data  # the part used
    except ImportError as exc:
        raise FlukeidError(f"--ray needs Ray (Ray Data), which is not installed ({exc}): {INSTALL}") from exc
    return ray


def check_address(address: str) -> str:
    """Refuse an address that is a file or folder: `--ray PHOTOS` took the photos for the address."""
    if address != LOCAL and Path(address).exists():
        raise FlukeidError(
            f"--ray {address}: that is a file or folder, not a Ray address; write --ray local (or auto, or "
            "ray://HEAD:10001) before the photos"
        )
    return address


@contextmanager
def ray_session(address: str) -> Iterator[None]:
    """Ray connected for the block (shut down after it), or the session this process has already started."""
    check_address(address)
    ray = import_ray()
    if ray.is_initialized():
        yield
        return
    local = {"include_dashboard": False, "log_to_driver": False} if address == LOCAL else {}
    try:
        ray.init(address=None if address == LOCAL else address, logging_level=logging.ERROR, **local)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise FlukeidError(
            f"cannot start or reach Ray at {address!r} ({exc}); give a cluster's address (ray://HEAD:10001, or auto "
            "on one of its nodes), or --ray local"
        ) from exc
    try:
        _quiet_ray_data(ray)
        yield
    finally:
        ray.shutdown()


def _quiet_ray_data(ray: ModuleType) -> None:
    """Ray Data's progress bars and console logs off (flukeid shows its own progress and failures; Ray Data still
    logs to its session's log folder)."""
    ray.data.DataContext.get_current().enable_progress_bars = False
    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setLevel(logging.ERROR)


class PhotoEmbedder:
    """A Ray Data actor: loads the model (and detector) once; crops and embeds each batch of photos (``path``:
    absolute paths) into ``vector`` (zeros where unreadable), ``error`` ('' when read), ``crop`` (the path embedded)
    and ``crop_bytes`` (that crop's bytes, empty when it is the photo itself)."""

    def __init__(self, model: str, detector: str | None) -> None:
        from flukeid.detect.model import load_detector
        from flukeid.embed import PhotoEmbedder
        from flukeid.models.artifact import load_model

        artifact = load_model(Path(model))
        self.dim = artifact.dim
        self.embedder = PhotoEmbedder(artifact, load_detector(Path(detector)) if detector else None)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        paths = [Path(p) for p in batch["path"].tolist()]
        embedded = self.embedder.embed(paths)
        rows: dict[Path, list[int]] = {}
        for i, path in enumerate(paths):
            rows.setdefault(path, []).append(i)
        vector = np.zeros((len(paths), self.dim), np.float32)
        crop, data, error = [""] * len(paths), [b""] * len(paths), ["not embedded"] * len(paths)
        for photo, cropped, found in zip(embedded.photos, embedded.crops, embedded.vectors):
            content = b"" if cropped == photo else cropped.read_bytes()
            for i in rows[photo]:
                vector[i], crop[i], data[i], error[i] = found, str(cropped), content, ""
        for photo, why in embedded.failed.items():
            for i in rows[photo]:
                error[i] = why
        return {
            "index": batch["index"],
            "vector": vector,
            "error": np.array(error, dtype=object),
            "crop": np.array(crop, dtype=object),
            "crop_bytes": np.array(data, dtype=object),
        }


def _driver_crop(crop: str, data: bytes, photo: Path) -> Path:
    """The crop an actor embedded, as the driver reads it: the photo itself, the actor's file when the driver sees
    it (one machine, a shared cache), else its bytes written to this machine's crop cache."""
    if not data:
        return photo
    if Path(crop).is_file():
        return Path(crop)
    from flukeid.detect.crop import cache_root

    target = cache_root() / "ray-crops" / hashlib.sha1(data).hexdigest() / Path(crop).name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return target


def _embedded(batch: dict[str, np.ndarray], paths: Sequence[Path]) -> Embedded:
    """One batch of actor output as `Identifier.embed` gives it, for the paths as given."""
    from flukeid.embed import Embedded

    index = batch["index"].tolist()
    errors = [str(e).replace(str(paths[i].resolve()), str(paths[i])) for i, e in zip(index, batch["error"].tolist())]
    ok = [row for row, error in enumerate(errors) if not error]
    crops = [_driver_crop(str(batch["crop"][r]), bytes(batch["crop_bytes"][r]), paths[index[r]]) for r in ok]
    vectors = np.asarray(batch["vector"], np.float32).reshape(len(index), -1)[ok]
    failed = {paths[index[r]]: error for r, error in enumerate(errors) if error}
    return Embedded([paths[index[r]] for r in ok], crops, vectors, failed)


def _resources(ray: ModuleType, concurrency: int | None, blocks: int) -> dict[str, Any]:
    """One GPU per actor (as many actors as GPUs) when the cluster has GPUs, else one CPU per actor (as many as
    CPUs); never more actors than batches."""
    cluster = ray.cluster_resources()
    gpus = int(cluster.get("GPU", 0))
    actors = min(blocks, concurrency or gpus or max(1, int(cluster.get("CPU", 1))))
    return {"num_gpus" if gpus else "num_cpus": 1, "compute": ray.data.ActorPoolStrategy(size=actors)}


def ray_batches(
    model: Path, detector: Path | None = None, batch_size: int = 32, concurrency: int | None = None
) -> Batches:
    """Embed on the connected Ray (see `ray_session`), ``batch_size`` photos per actor call, batches coming back as
    they finish (in any order). ``concurrency``: actors (default: one per GPU, else one per CPU)."""

    def run(given: list[Path]) -> Iterator[Embedded]:
        paths = list(dict.fromkeys(Path(p) for p in given))
        if not paths:
            return
        ray = import_ray()
        items = [{"index": i, "path": str(Path(p).resolve())} for i, p in enumerate(paths)]
        cache = os.environ.get("FLUKEID_CACHE")
        blocks = math.ceil(len(items) / batch_size)
        dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            PhotoEmbedder,
            fn_constructor_kwargs={
                "model": str(Path(model).resolve()),
                "detector": str(Path(detector).resolve()) if detector else None,
            },
            batch_size=batch_size,
            batch_format="numpy",
            runtime_env={"env_vars": {"FLUKEID_CACHE": str(Path(cache).resolve())}} if cache else None,
            **_resources(ray, concurrency, blocks),
        )
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            yield _embedded(batch, paths)

    return run


def gather(batches: Iterator[Embedded], paths: Sequence[Path], dim: int, progress: Progress | None = None) -> Embedded:
    """All batches as one, in the order of ``paths`` (as `Identifier.embed` orders them)."""
    from flukeid.embed import Embedded

    photos: list[Path] = []
    crops: list[Path] = []
    vectors: list[np.ndarray] = []
    failed: dict[Path, str] = {}
    for batch in batches:
        photos += batch.photos
        crops += batch.crops
        vectors.append(batch.vectors)
        failed |= batch.failed
        if progress:
            progress(len(photos) + len(failed), len(set(paths)))
    position = {Path(p): i for i, p in reversed(list(enumerate(paths)))}
    order = sorted(range(len(photos)), key=lambda i: position[photos[i]])
    stacked = np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)
    return Embedded([photos[i] for i in order], [crops[i] for i in order], stacked[order], failed)


def ray_embed(
    identifier: Identifier, paths: Sequence[Path], batch_size: int = 32, progress: Progress | None = None
) -> Embedded:
    """`identifier.embed(paths)` run on the connected Ray: its model and detector, in actors."""
    detector = identifier.detector.path if identifier.detector is not None else None
    batches = ray_batches(identifier.artifact.path, detector, batch_size)
    return gather(batches([Path(p) for p in paths]), [Path(p) for p in paths], identifier.artifact.dim, progress)
