"""Photos as tensors, and the label encoding used for training."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import albumentations as A
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from flukeid import NEW_WHALE
from flukeid.data.images import read_image
from flukeid.data.transforms import to_tensor

FLIPPED_SUFFIX = "~flipped"


@dataclass(frozen=True)
class LabelledRows:
    """Training rows: ``labels[i] >= 0`` indexes ``classes``; ``< 0`` marks a negatives-only photo."""

    paths: list[Path]
    labels: list[int]
    flipped: list[bool]
    classes: list[str]


def encode_labels(frame: pd.DataFrame, flip_as_new_id: bool = False) -> LabelledRows:
    """Encode (Image, Id, path) rows. ``new_whale`` rows get unique negative labels (never a class).

    With ``flip_as_new_id`` every photo also appears mirrored as another individual (a fluke is not
    symmetric: the 2019 winners' trick to double the number of classes).
    """
    classes = sorted(set(frame["Id"]) - {NEW_WHALE})
    index = {ident: i for i, ident in enumerate(classes)}
    paths, labels, flipped = list(frame["path"]), [], [False] * len(frame)
    negative = -1
    for ident in frame["Id"]:
        if ident == NEW_WHALE:
            labels.append(negative)
            negative -= 1
        else:
            labels.append(index[ident])
    if flip_as_new_id:
        mirrored = [label + len(classes) if label >= 0 else label - len(frame) for label in labels]
        paths, labels, flipped = paths + paths, labels + mirrored, flipped + [True] * len(frame)
        classes = classes + [c + FLIPPED_SUFFIX for c in classes]
    return LabelledRows(paths, labels, flipped, classes)


class PhotoDataset(Dataset[tuple[torch.Tensor, int] | tuple[torch.Tensor, int, int]]):
    """Row i -> (image (3, H, W) after ``transform``, label[, i with ``with_index``]). Mirrored first where
    ``flipped[i]``."""

    def __init__(
        self,
        paths: Sequence[Path],
        labels: Sequence[int],
        transform: A.Compose,
        flipped: Sequence[bool] | None = None,
        with_index: bool = False,
    ):
        self.paths, self.labels, self.transform, self.with_index = list(paths), list(labels), transform, with_index
        self.flipped = list(flipped) if flipped is not None else [False] * len(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int] | tuple[torch.Tensor, int, int]:
        image = np.asarray(read_image(Path(self.paths[i])))
        if self.flipped[i]:
            image = np.ascontiguousarray(image[:, ::-1])
        tensor = to_tensor(self.transform, image)
        return (tensor, self.labels[i], i) if self.with_index else (tensor, self.labels[i])
