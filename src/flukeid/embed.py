"""Batched embedding of photos, on GPU or CPU, with an on-disk cache keyed by image content + model; and embeddings
files (``flukeid embed``): photos -> one ``.npz`` of image name, path, content sha1, individual and vector, written
resumably (progress kept in chunk files next to it, the file itself replaced whole).

Photos that fail to decode are reported (path and reason) and skipped; the batch goes on. A model loaded with its
ONNX export embeds with numpy and onnxruntime alone (torch is imported only by the torch runtime).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import albumentations as A
import numpy as np

from flukeid.data.catalogue import is_image, load_catalogue
from flukeid.data.images import read_image
from flukeid.data.transforms import build_transform, to_array
from flukeid.errors import CatalogueError, FlukeidError, ImageError
from flukeid.models.artifact import Artifact
from flukeid.models.onnx import OnnxNetwork
from flukeid.progress import Progress

if TYPE_CHECKING:
    import torch

    from flukeid.detect.model import Detector

log = logging.getLogger(__name__)


@dataclass
class Embeddings:
    """``vectors[i]`` (L2-normalised) belongs to ``paths[i]``; ``failed`` maps skipped paths to the reason."""

    paths: list[Path]
    vectors: np.ndarray  # (N, D) float32
    failed: dict[Path, str] = field(default_factory=dict)


def describe_failures(failed: dict[Path, str], shown: int = 5) -> str:
    """Unreadable photos and why, on one line: the first ``shown``, then how many more."""
    reasons = [why if str(path) in why else f"{path}: {why}" for path, why in failed.items()]
    more = f"; and {len(failed) - shown} more" if len(failed) > shown else ""
    return "; ".join(reasons[:shown]) + more


def content_key(path: Path, model_id: str, flip_tta: bool) -> str:
    digest = hashlib.sha1(path.read_bytes()).hexdigest()
    return f"{model_id}-{'f' if flip_tta else 'n'}-{digest}"


class _Photos:
    """A map-style dataset of (image (3, H, W) float32, index, error); a photo that fails to decode yields zeros and
    its error. Arrays, so the ONNX runtime needs no torch; torch's DataLoader collates them into the same tensors."""

    def __init__(self, paths: Sequence[Path], transform: A.Compose, size: tuple[int, int]):
        self.paths, self.transform, self.size = list(paths), transform, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int, str]:
        try:
            image = np.asarray(read_image(self.paths[i]))
        except ImageError as exc:
            return np.zeros((3, *self.size), np.float32), i, str(exc)
        return to_array(self.transform, image), i, ""


Batch = tuple[np.ndarray, np.ndarray, list[str]]
"""Images (B, 3, H, W) float32 (or the same as a torch tensor), their indices (B,) and errors ('' when read)."""


def _numpy_batches(photos: _Photos, batch_size: int) -> Iterator[Batch]:
    """`_Photos` in batches, read in this process (what torch's DataLoader does, without torch)."""
    for start in range(0, len(photos), batch_size):
        images, indices, errors = zip(*(photos[i] for i in range(start, min(start + batch_size, len(photos)))))
        yield np.stack(images), np.array(indices), list(errors)


def _torch_batches(photos: _Photos, batch_size: int, num_workers: int) -> Iterable[Batch]:
    import torch
    from torch.utils.data import DataLoader

    return DataLoader(photos, batch_size=batch_size, num_workers=num_workers, pin_memory=torch.cuda.is_available())


def _device(device: str | None) -> torch.device:
    import torch

    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _forward_onnx(network: OnnxNetwork, images: np.ndarray, flip_tta: bool) -> np.ndarray:
    """The same as `_forward`, with the model's ONNX export under onnxruntime (CPU)."""
    vectors = network(images)
    if flip_tta:
        vectors = vectors + network(images[..., ::-1])
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _forward(model: torch.nn.Module, images: torch.Tensor, flip_tta: bool, device: torch.device) -> np.ndarray:
    """Preprocessed images (B, 3, H, W) -> unit vectors (B, D) float32 (the sum with the mirrored photo's with
    ``flip_tta``)."""
    import torch

    images = images.to(device, non_blocking=True)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
        vectors = model(images).float()
        if flip_tta:
            vectors = vectors + model(images.flip(-1)).float()
    return torch.nn.functional.normalize(vectors, dim=1).cpu().numpy()


def embed_paths(
    artifact: Artifact,
    paths: Sequence[Path],
    batch_size: int = 64,
    num_workers: int = 2,
    device: str | None = None,
    flip_tta: bool = False,
    cache: Path | None = None,
    progress: Progress | None = None,
) -> Embeddings:
    """Embed ``paths`` with ``artifact``'s model (its ONNX export on CPU when loaded with ``runtime="onnx"`` or
    without torch; then ``device`` is unused and photos are read in this process). ``flip_tta`` averages with the
    mirrored photo (use it only when flipped flukes are not new individuals). With ``cache``, vectors are stored per
    content hash."""
    paths = [Path(p) for p in paths]
    keys = {p: content_key(p, artifact.model_id, flip_tta) for p in paths if p.is_file()} if cache else {}
    cached = {p: np.load(cache / f"{k}.npy") for p, k in keys.items() if cache and (cache / f"{k}.npy").is_file()}
    todo = [p for p in paths if p not in cached]
    inputs = artifact.inputs
    photos = _Photos(todo, build_transform(inputs.image_size, inputs.mean, inputs.std, tensor=False), inputs.image_size)
    if artifact.onnx is not None:
        loader: Iterable[Batch] = _numpy_batches(photos, batch_size)
        forward = partial(_forward_onnx, artifact.onnx, flip_tta=flip_tta)
    else:
        assert artifact.model is not None, "an Artifact without a torch model embeds with its ONNX export"
        dev = _device(device)
        loader = _torch_batches(photos, batch_size, num_workers)
        forward = partial(_forward, artifact.model.to(dev).eval(), flip_tta=flip_tta, device=dev)
    found: dict[Path, np.ndarray] = dict(cached)
    failed: dict[Path, str] = {}
    done = len(cached)
    for images, indices, errors in loader:
        vectors = forward(images)
        for vector, index, error in zip(vectors, indices.tolist(), errors):
            if error:
                failed[todo[index]] = error
                log.warning("skipped %s", error)
            else:
                found[todo[index]] = vector
                if cache:
                    cache.mkdir(parents=True, exist_ok=True)
                    np.save(cache / f"{keys[todo[index]]}.npy", vector)
        done += len(indices)
        if progress:
            progress(done, len(paths))
    kept = [p for p in paths if p in found]
    dim = artifact.dim
    vectors = np.stack([found[p] for p in kept]).astype(np.float32) if kept else np.zeros((0, dim), np.float32)
    return Embeddings(kept, vectors, failed)


@dataclass(frozen=True)
class Embedded:
    """Photos cropped and embedded: ``photos`` as given, ``crops`` what was embedded and is matched locally (the
    photo itself without a detector), ``vectors`` (N, D) unit embeddings; ``failed``: unreadable photos, why."""

    photos: list[Path]
    crops: list[Path]
    vectors: np.ndarray
    failed: dict[Path, str]


class PhotoEmbedder:
    """Crops photos with ``detector`` (none: the photo itself) and embeds the crops with the model: what identify,
    gallery build, enroll and `flukeid embed` (here or in a Ray actor) all embed."""

    def __init__(self, artifact: Artifact, detector: Detector | None = None) -> None:
        self.artifact, self.detector = artifact, detector

    def _sources(self, paths: Sequence[Path]) -> dict[Path, Path]:
        """Each photo's crop by the detector (the photo itself without one): crop -> photo."""
        if self.detector is None:
            return {Path(p): Path(p) for p in paths}
        from flukeid.detect.crop import crop_photos

        return {c.path: c.source for c in crop_photos(self.detector, list(paths), num_workers=0)}

    def crops(self, paths: Sequence[Path]) -> list[Path]:
        """What is embedded (and matched) of each photo: its crop, or the photo itself."""
        back = {source: crop for crop, source in self._sources(paths).items()}
        return [back.get(Path(p), Path(p)) for p in paths]

    def embed(self, paths: Sequence[Path]) -> Embedded:
        """Crop and embed photos (the readable ones; the others are in ``failed``)."""
        sources = self._sources(paths)
        embedded = embed_paths(self.artifact, list(sources), num_workers=0)
        failed = {sources[p]: why for p, why in embedded.failed.items()}
        return Embedded([sources[p] for p in embedded.paths], embedded.paths, embedded.vectors, failed)


# -- embeddings files ----------------------------------------------------------------------------------------------

EMBEDDINGS_SUFFIX = ".npz"
CHUNK = 256
"""Photos per chunk file: an interrupted run loses at most this many embeddings."""
Batches = Callable[[list[Path]], Iterator["Embedded"]]
"""Embeds photos batch by batch (locally or on Ray), each batch as `PhotoEmbedder.embed` gives it."""


@dataclass(frozen=True)
class PhotoInput:
    """A photo to embed: ``name`` (the catalogue's Image, else the file name), ``path``, and ``individual`` when a
    catalogue labels it ('' otherwise)."""

    name: str
    path: Path
    individual: str = ""


@dataclass(frozen=True)
class EmbeddingTable:
    """The rows of an embeddings file, all of one model: image name, absolute path, content sha1, individual ('' when
    unknown) and unit vector (N, D) float32."""

    model_id: str
    image: np.ndarray
    path: np.ndarray
    sha1: np.ndarray
    individual: np.ndarray
    vector: np.ndarray

    def __len__(self) -> int:
        return len(self.path)

    @classmethod
    def empty(cls, model_id: str, dim: int) -> EmbeddingTable:
        text = np.array([], dtype=str)
        return cls(model_id, text, text, text, text, np.zeros((0, dim), np.float32))

    @classmethod
    def of(
        cls, model_id: str, photos: Sequence[PhotoInput], sha1s: Sequence[str], vectors: np.ndarray
    ) -> EmbeddingTable:
        return cls(
            model_id,
            np.array([p.name for p in photos], dtype=str),
            np.array([str(p.path.resolve()) for p in photos], dtype=str),
            np.array(sha1s, dtype=str),
            np.array([p.individual for p in photos], dtype=str),
            np.asarray(vectors, np.float32),
        )

    def keys(self) -> set[tuple[str, str]]:
        """(absolute path, content sha1) of every row."""
        return set(zip(self.path.tolist(), self.sha1.tolist()))

    def save(self, path: Path) -> None:
        """Write whole or not at all (a temporary sibling renamed into place)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as file:
                np.savez(
                    file,
                    model_id=np.array(self.model_id),
                    image=self.image,
                    path=self.path,
                    sha1=self.sha1,
                    individual=self.individual,
                    vector=self.vector,
                )
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def load_embeddings(path: Path) -> EmbeddingTable:
    """An embeddings file written by `embed_to_file` (FlukeidError naming the file when it is not one)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            fields = {k: data[k] for k in ("image", "path", "sha1", "individual", "vector")}
            model_id = str(data["model_id"])
    except (OSError, ValueError, KeyError) as exc:
        raise FlukeidError(
            f"{path}: not a flukeid embeddings file ({exc}); delete it or write to another --out"
        ) from exc
    return EmbeddingTable(model_id, **fields)


def merge_tables(model_id: str, dim: int, tables: Sequence[EmbeddingTable]) -> EmbeddingTable:
    """Rows of all ``tables`` in order, one per path: a later row replaces an earlier one (a photo re-embedded
    after its content changed)."""
    if not tables:
        return EmbeddingTable.empty(model_id, dim)
    path = np.concatenate([t.path for t in tables])
    last = {p: i for i, p in enumerate(path.tolist())}
    keep = np.array(sorted(last.values()), dtype=np.int64)

    def column(name: str) -> np.ndarray:
        return np.concatenate([getattr(t, name) for t in tables])[keep]

    vector = np.concatenate([t.vector for t in tables])[keep].astype(np.float32)
    return EmbeddingTable(model_id, column("image"), path[keep], column("sha1"), column("individual"), vector)


def parts_folder(out: Path) -> Path:
    """Where an unfinished run into ``out`` keeps its chunk files."""
    return out.with_name(out.name + ".parts")


def _stored(out: Path, model_id: str, dim: int) -> EmbeddingTable:
    """What ``out`` and the chunk files of an interrupted run hold, refused when of another model."""
    files = ([out] if out.is_file() else []) + sorted(parts_folder(out).glob("chunk-*" + EMBEDDINGS_SUFFIX))
    tables = [load_embeddings(f) for f in files]
    for file, table in zip(files, tables):
        if table.model_id != model_id:
            raise FlukeidError(
                f"{file} holds embeddings of model {table.model_id}, not of this model ({model_id}): "
                "write to another --out, or delete it to start again"
            )
    return merge_tables(model_id, dim, tables)


def _write_chunk(out: Path, table: EmbeddingTable) -> None:
    if not len(table):
        return
    folder = parts_folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    number = len(list(folder.glob("chunk-*" + EMBEDDINGS_SUFFIX)))
    while (folder / f"chunk-{number:06d}{EMBEDDINGS_SUFFIX}").exists():
        number += 1
    table.save(folder / f"chunk-{number:06d}{EMBEDDINGS_SUFFIX}")


def photo_inputs(items: Sequence[Path]) -> list[PhotoInput]:
    """Photos as given (a missing one is reported when embedded); a folder: its photos (sorted), or when it holds
    none, the labelled and test photos of the catalogue it is. Each photo once."""
    found: list[PhotoInput] = []
    for item in map(Path, items):
        photos = sorted(p for p in item.iterdir() if is_image(p)) if item.is_dir() else []
        if photos:
            found += [PhotoInput(p.name, p) for p in photos]
        elif item.is_dir():
            found += _catalogue_photos(item)
        else:
            found.append(PhotoInput(item.name, item))
    if not found:
        raise FlukeidError(f"no photos found in {', '.join(map(str, items))}")
    unique = {p.path.resolve(): p for p in reversed(found)}
    return [p for p in found if unique[p.path.resolve()] is p]


def check_embeddings_path(out: Path) -> Path:
    """``out`` if it names an embeddings file (``.npz``), else a FlukeidError saying how to name it."""
    out = Path(out)
    if out.suffix != EMBEDDINGS_SUFFIX or out.is_dir():
        raise FlukeidError(f"--out {out}: embeddings files end in {EMBEDDINGS_SUFFIX}; name it like {out.stem}.npz")
    return out


def _catalogue_photos(folder: Path) -> list[PhotoInput]:
    try:
        catalogue = load_catalogue(folder)
    except CatalogueError as exc:
        raise FlukeidError(f"{folder}: no photos in it, and not a catalogue ({exc})") from exc
    labelled = [PhotoInput(r.Image, Path(r.path), r.Id) for r in catalogue.labels.itertuples()]
    return labelled + [PhotoInput(r.Image, Path(r.path)) for r in catalogue.test.itertuples()]


@dataclass(frozen=True)
class EmbedRun:
    """What `embed_to_file` did: ``embedded`` photos new this run, ``skipped`` ones already in the file, ``failed``
    unreadable ones (and why; they are tried again next run), ``total`` rows the file holds now."""

    out: Path
    embedded: int
    skipped: int
    failed: dict[Path, str]
    total: int


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _todo(photos: Sequence[PhotoInput], done: set[tuple[str, str]]) -> tuple[dict[Path, str], dict[Path, str], int]:
    """Photos still to embed (path -> sha1), unreadable ones (path -> why) and how many are embedded already."""
    todo: dict[Path, str] = {}
    failed: dict[Path, str] = {}
    for photo in photos:
        try:
            sha1 = _sha1(photo.path)
        except OSError as exc:
            failed[photo.path] = f"{photo.path}: {'file not found' if not photo.path.exists() else exc.strerror}"
            continue
        if (str(photo.path.resolve()), sha1) not in done:
            todo[photo.path] = sha1
    return todo, failed, len(photos) - len(todo) - len(failed)


def embed_to_file(
    model_id: str,
    dim: int,
    photos: Sequence[PhotoInput],
    out: Path,
    batches: Batches,
    chunk: int = CHUNK,
    progress: Progress | None = None,
) -> EmbedRun:
    """Embed ``photos`` into the embeddings file ``out`` (``.npz``), skipping those it holds already (same path,
    same content, same model). Progress is kept in chunk files (`parts_folder`) as it goes, so an interrupted run
    resumes; ``out`` is replaced whole at the end. Unreadable photos are reported in the result, not stored."""
    out = check_embeddings_path(out)
    stored = _stored(out, model_id, dim)
    todo, failed, skipped = _todo(photos, stored.keys())
    by_path = {p.path: p for p in photos}
    pending: list[EmbeddingTable] = []
    embedded = finished = 0
    try:
        for batch in batches(list(todo)):
            done = [by_path[p] for p in batch.photos]
            pending.append(EmbeddingTable.of(model_id, done, [todo[p.path] for p in done], batch.vectors))
            failed |= batch.failed
            embedded += len(done)
            finished += len(done) + len(batch.failed)
            if progress:
                progress(finished, len(todo))
            if sum(map(len, pending)) >= chunk:
                _write_chunk(out, merge_tables(model_id, dim, pending))
                pending = []
    finally:
        _write_chunk(out, merge_tables(model_id, dim, pending))
    total = len(stored)
    if embedded or parts_folder(out).exists() or not out.is_file():
        final = _stored(out, model_id, dim)
        final.save(out)
        shutil.rmtree(parts_folder(out), ignore_errors=True)
        total = len(final)
    return EmbedRun(out, embedded, skipped, failed, total)


def local_batches(artifact: Artifact, detector: Detector | None = None, batch_size: int = 64) -> Batches:
    """Embed in this process, ``batch_size`` photos at a time (crops as identify makes them)."""
    embedder = PhotoEmbedder(artifact, detector)

    def run(paths: list[Path]) -> Iterator[Embedded]:
        for start in range(0, len(paths), batch_size):
            yield embedder.embed(paths[start : start + batch_size])

    return run
