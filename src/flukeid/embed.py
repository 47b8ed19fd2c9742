"""Batched embedding of photos, on GPU or CPU, with an on-disk cache keyed by image content + model.

Photos that fail to decode are reported (path and reason) and skipped; the batch goes on.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from flukeid.data.images import read_image
from flukeid.data.transforms import build_transform, to_tensor
from flukeid.errors import ImageError
from flukeid.models.artifact import Artifact

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]


@dataclass
class Embeddings:
    """``vectors[i]`` (L2-normalised) belongs to ``paths[i]``; ``failed`` maps skipped paths to the reason."""

    paths: list[Path]
    vectors: np.ndarray  # (N, D) float32
    failed: dict[Path, str] = field(default_factory=dict)


def content_key(path: Path, model_id: str, flip_tta: bool) -> str:
    digest = hashlib.sha1(path.read_bytes()).hexdigest()
    return f"{model_id}-{'f' if flip_tta else 'n'}-{digest}"


class _Photos(Dataset[tuple[torch.Tensor, int, str]]):
    """(image tensor, index, error) ; a photo that fails to decode yields a zero tensor and its error."""

    def __init__(self, paths: Sequence[Path], transform, size: tuple[int, int]):
        self.paths, self.transform, self.size = list(paths), transform, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, str]:
        try:
            image = np.asarray(read_image(self.paths[i]))
        except ImageError as exc:
            return torch.zeros(3, *self.size), i, str(exc)
        return to_tensor(self.transform, image), i, ""


def _device(device: str | None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def _forward(model: torch.nn.Module, images: torch.Tensor, flip_tta: bool, device: torch.device) -> np.ndarray:
    images = images.to(device, non_blocking=True)
    with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
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
    """Embed ``paths`` with ``artifact``'s model. ``flip_tta`` averages with the mirrored photo (use it only
    when flipped flukes are not new individuals). With ``cache``, vectors are stored per content hash."""
    paths = [Path(p) for p in paths]
    keys = {p: content_key(p, artifact.model_id, flip_tta) for p in paths if p.is_file()} if cache else {}
    cached = {p: np.load(cache / f"{k}.npy") for p, k in keys.items() if cache and (cache / f"{k}.npy").is_file()}
    todo = [p for p in paths if p not in cached]
    spec, size = artifact.model.backbone.spec, artifact.image_size
    loader = DataLoader(
        _Photos(todo, build_transform(size, spec.mean, spec.std), size),
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
    )
    dev = _device(device)
    model = artifact.model.to(dev).eval()
    found: dict[Path, np.ndarray] = dict(cached)
    failed: dict[Path, str] = {}
    done = len(cached)
    for images, indices, errors in loader:
        vectors = _forward(model, images, flip_tta, dev)
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
    dim = artifact.model.dim
    vectors = np.stack([found[p] for p in kept]).astype(np.float32) if kept else np.zeros((0, dim), np.float32)
    return Embeddings(kept, vectors, failed)
