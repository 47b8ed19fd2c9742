"""Albumentations pipelines: letterbox to the model's input size (nothing cropped), then augment.

Presets ``none``, ``light`` and ``strong`` set every knob; a YAML ``augment:`` block picks a preset and
overrides single knobs, e.g. ``{preset: strong, rotate: 20}``.

Pipelines end in a torch tensor (`to_tensor`), or with ``tensor=False`` in a numpy array of the same numbers
(`to_array`), for inference without torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import albumentations as A
import cv2
import numpy as np

from flukeid.config import check_choice

if TYPE_CHECKING:
    import torch

Preset = Literal["none", "light", "strong"]
"""Named augmentation strengths (`PRESETS`); a config's other knobs override single values of its preset."""


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation knobs; ``None`` takes the preset's value. Probabilities are in [0, 1]."""

    preset: Preset = "light"
    hflip: float | None = None  # forced to 0 when flipped photos are new individuals
    rotate: float | None = None  # degrees, +-
    scale: float | None = None  # +- relative zoom
    shift: float | None = None  # +- share of the frame
    color: float | None = None  # probability of colour jitter
    clahe: float | None = None
    motion_blur: float | None = None
    downscale: float | None = None
    grey: float | None = None


PRESETS: dict[Preset, AugmentConfig] = {
    "none": AugmentConfig("none", 0, 0, 0, 0, 0, 0, 0, 0, 0),
    "light": AugmentConfig("light", 0.5, 8, 0.08, 0.04, 0.5, 0.1, 0.1, 0.1, 0.1),
    "strong": AugmentConfig("strong", 0.5, 15, 0.15, 0.08, 0.8, 0.3, 0.3, 0.3, 0.25),
}


def resolve(cfg: AugmentConfig) -> AugmentConfig:
    """Fill the knobs left ``None`` from the named preset."""
    check_choice("augment.preset", cfg.preset, PRESETS)
    base = PRESETS[cfg.preset]
    return dataclasses.replace(
        base,
        **{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if getattr(cfg, f.name) is not None},
    )


def _letterbox(size: tuple[int, int]) -> list[A.BasicTransform]:
    height, width = size
    return [
        A.LongestMaxSize(max_size_hw=(height, width)),
        A.PadIfNeeded(min_height=height, min_width=width, border_mode=cv2.BORDER_CONSTANT, fill=0),
    ]


def _augmentations(cfg: AugmentConfig) -> list[A.BasicTransform]:
    return [
        A.HorizontalFlip(p=cfg.hflip),
        A.Affine(
            rotate=(-cfg.rotate, cfg.rotate),
            scale=(1 - cfg.scale, 1 + cfg.scale),
            translate_percent=(-cfg.shift, cfg.shift),
            border_mode=cv2.BORDER_CONSTANT,
            p=1.0 if cfg.rotate or cfg.scale or cfg.shift else 0.0,
        ),
        A.CLAHE(p=cfg.clahe),
        A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03, p=cfg.color),
        A.MotionBlur(blur_limit=(3, 7), p=cfg.motion_blur),
        A.Downscale(scale_range=(0.4, 0.8), p=cfg.downscale),
        A.ToGray(p=cfg.grey),
    ]


def build_transform(
    size: tuple[int, int],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    augment: AugmentConfig | None = None,
    flip_is_new_id: bool = False,
    bboxes: bool = False,
    seed: int | None = None,
    tensor: bool = True,
) -> A.Compose:
    """Letterbox to ``size`` (height, width), augment when ``augment`` is given, normalise, to tensor (``tensor``;
    else the normalised (height, width, 3) float32 array, for `to_array`).

    With ``bboxes`` the pipeline also moves ``bboxes`` (pascal_voc x0,y0,x1,y1) with the image. ``seed`` makes
    the random draws repeatable (albumentations derives a distinct stream per DataLoader worker).
    """
    steps = _letterbox(size)
    if augment is not None:
        cfg = resolve(augment)
        if flip_is_new_id:
            cfg = dataclasses.replace(cfg, hflip=0.0)
        steps += _augmentations(cfg)
    steps.append(A.Normalize(mean=mean, std=std))
    if tensor:
        from albumentations.pytorch import ToTensorV2

        steps.append(ToTensorV2())
    box_params = A.BboxParams(format="pascal_voc", label_fields=["labels"], clip=True) if bboxes else None
    return A.Compose(steps, bbox_params=box_params, seed=seed)


def to_tensor(transform: A.Compose, image: np.ndarray) -> torch.Tensor:
    """Apply a pipeline built without boxes to an RGB uint8 array (H, W, 3) -> (3, height, width)."""
    return transform(image=image)["image"]


def to_array(transform: A.Compose, image: np.ndarray) -> np.ndarray:
    """`to_tensor` for a pipeline built with ``tensor=False``: (3, height, width) float32, the same numbers."""
    return np.ascontiguousarray(transform(image=image)["image"].transpose(2, 0, 1), dtype=np.float32)
