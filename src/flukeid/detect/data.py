"""Photos with their fluke box, the letterbox geometry, and a dataset that moves boxes with augmentations."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import albumentations as A
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from flukeid.data.boxes import Box, read_boxes
from flukeid.data.catalogue import load_catalogue, outside_catalogue
from flukeid.data.images import read_image
from flukeid.errors import CatalogueError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoxRows:
    """``boxes[i]`` (x0, y0, x1, y1 in pixels) is the fluke in ``paths[i]``."""

    paths: list[Path]
    boxes: np.ndarray  # (N, 4) float32

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index: Sequence[int] | np.ndarray) -> BoxRows:
        return BoxRows([self.paths[i] for i in index], self.boxes[np.asarray(index, dtype=int)])

    def truths(self) -> dict[str, np.ndarray]:
        """Image name -> (1, 4) truth box, the form `flukeid.metrics.box_scores` takes."""
        return {p.name: box[None] for p, box in zip(self.paths, self.boxes)}


def _given_boxes(labels: pd.DataFrame) -> dict[str, Box]:
    """A wildlife table's usable bboxes, by image name."""
    if "box" not in labels.columns:
        return {}
    return {str(name): box for name, box in zip(labels["Image"], labels["box"]) if isinstance(box, tuple)}


def box_rows(data: Path, boxes_file: Path | None = None) -> BoxRows:
    """The catalogue's photos (labelled and test) that have a box in ``boxes_file`` (default: the catalogue's boxes
    file, else a wildlife table's bboxes)."""
    cat = load_catalogue(data)
    boxes_file = boxes_file or cat.boxes_file
    if boxes_file is not None:
        table = read_boxes(boxes_file)
        for problem in table.problems:
            log.warning("%s", problem)
        boxes = table.boxes
    elif not (boxes := _given_boxes(cat.labels)):
        raise CatalogueError(f"{data}: no boxes file found; pass one with --boxes (`fn x0 y0 x1 y1` or CSV)")
    source = boxes_file or cat.labels_file
    listed = pd.concat([cat.labels[["Image", "path"]], cat.test[["Image", "path"]]])
    photos: dict[str, Path] = {}
    for name, path in zip(listed["Image"], listed["path"]):
        if (why := outside_catalogue(cat.root, str(name), Path(path))) is not None:
            log.warning("%s; skipped", why)
        elif Path(path).is_file():
            photos[str(name)] = Path(path)
    unknown = sorted(set(boxes) - photos.keys())
    if unknown:
        log.warning("%s: %d boxes name photos not in %s (e.g. %s)", source, len(unknown), data, unknown[0])
    names = sorted(set(boxes) & photos.keys())
    if not names:
        raise CatalogueError(f"{source}: no box names a photo of {data}")
    return BoxRows([photos[n] for n in names], np.array([boxes[n] for n in names], dtype=np.float32))


@dataclass(frozen=True)
class Letterbox:
    """How a (height, width) photo sits in the letterboxed input: scaled by ``scale``, offset by (left, top)."""

    scale: float
    left: float
    top: float

    @classmethod
    def fit(cls, height: int, width: int, size: tuple[int, int]) -> Letterbox:
        scale = min(size[0] / height, size[1] / width)
        return cls(scale, (size[1] - round(width * scale)) // 2, (size[0] - round(height * scale)) // 2)

    def to_photo(self, box: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """A box normalised to the input (x0, y0, x1, y1 in [0, 1]) -> pixels of the photo."""
        pixels = np.asarray(box, dtype=np.float64) * [size[1], size[0], size[1], size[0]]
        return (pixels - [self.left, self.top, self.left, self.top]) / self.scale


class BoxDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Row i -> (image (3, H, W), box (4,) normalised to the input), the box moved with every augmentation.

    ``transform`` must be built with ``bboxes=True``; ``plain`` (no augmentation) is used for a draw whose
    augmentation pushed the box out of the frame.
    """

    def __init__(self, rows: BoxRows, transform: A.Compose, plain: A.Compose):
        self.rows, self.transform, self.plain = rows, transform, plain

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = np.asarray(read_image(self.rows.paths[i]))
        box = _clip(self.rows.boxes[i], image.shape[1], image.shape[0])
        out = self.transform(image=image, bboxes=[box], labels=[0])
        if len(out["bboxes"]) == 0:
            out = self.plain(image=image, bboxes=[box], labels=[0])
        height, width = out["image"].shape[1:]
        target = torch.as_tensor(out["bboxes"][0], dtype=torch.float32) / torch.tensor([width, height, width, height])
        return out["image"], target


def _clip(box: np.ndarray | Box, width: int, height: int) -> list[float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    return [min(x0, width - 1), min(y0, height - 1), min(max(x1, x0 + 1), width), min(max(y1, y0 + 1), height)]
