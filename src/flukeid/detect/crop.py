"""Crop photos to the fluke, cached by content hash, falling back to the full frame when the detector is unsure.

A crop keeps its photo's file name (``<cache>/<content hash>/<name>``), so submissions and reports still name
the original photo. The cache lives in ``$FLUKEID_CACHE`` (default ``~/.cache/flukeid``) under a folder per
detector and settings; a sidecar JSON per photo records the box, the confidence and any fallback.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from flukeid.data.catalogue import BOXES_NAMES, is_image
from flukeid.data.images import read_image
from flukeid.detect.model import Detector, model_detector
from flukeid.detect.predict import BoxPrediction, predict_boxes
from flukeid.errors import FlukeidError, ImageError
from flukeid.models.artifact import CROP_MARGIN, CROP_MIN_CONFIDENCE
from flukeid.progress import Progress

log = logging.getLogger(__name__)
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class CropSettings:
    margin: float = CROP_MARGIN  # share of the box's width/height added on each side
    min_confidence: float = CROP_MIN_CONFIDENCE  # below: the detector is unsure and the full frame is kept


@dataclass(frozen=True)
class Crop:
    """``path`` is the cropped photo, or ``source`` itself when ``fallback`` says why no crop was made."""

    source: Path
    path: Path
    box: Box | None  # the crop in the source's (upright) pixels, margin included
    confidence: float
    fallback: str | None = None


def cache_root() -> Path:
    return Path(os.environ.get("FLUKEID_CACHE") or Path.home() / ".cache" / "flukeid")


def with_margin(box: Box, margin: float, width: int, height: int) -> Box:
    x0, y0, x1, y1 = box
    dx, dy = margin * (x1 - x0), margin * (y1 - y0)
    return (max(0.0, x0 - dx), max(0.0, y0 - dy), min(float(width), x1 + dx), min(float(height), y1 + dy))


def _make_crop(found: BoxPrediction, target: Path, settings: CropSettings) -> Crop:
    source = found.path
    if found.box is None:
        return Crop(source, source, None, 0.0, found.error or "unreadable")
    if found.confidence < settings.min_confidence:
        reason = f"detector unsure (confidence {found.confidence:.2f} < {settings.min_confidence:g})"
        return Crop(source, source, found.box, found.confidence, reason)
    try:
        image = read_image(source)
    except ImageError as exc:
        return Crop(source, source, None, 0.0, str(exc))
    box = with_margin(found.box, settings.margin, image.width, image.height)
    target.parent.mkdir(parents=True, exist_ok=True)
    image.crop(tuple(round(v) for v in box)).save(target, quality=95)
    return Crop(source, target, box, found.confidence)


def crop_photos(
    detector: Detector,
    paths: Sequence[Path],
    settings: CropSettings | None = None,
    num_workers: int = 2,
    progress: Progress | None = None,
) -> list[Crop]:
    """Crop each photo to its fluke (cached); unsure or unreadable photos keep the full frame, with the reason."""
    settings = settings or CropSettings()
    folder = cache_root() / "crops" / f"{detector.detector_id}-m{settings.margin:g}-c{settings.min_confidence:g}"
    paths = [Path(p) for p in paths]
    keys = {p: hashlib.sha1(p.read_bytes()).hexdigest() for p in paths if p.is_file()}
    done: dict[Path, Crop] = {}
    for source, key in keys.items():
        sidecar = folder / key / f"{source.name}.json"
        if sidecar.is_file():
            info = json.loads(sidecar.read_text())
            path = source if info["fallback"] else folder / key / source.name
            if not path.is_file():
                continue
            box = tuple(info["box"]) if info["box"] else None
            done[source] = Crop(source, path, box, info["confidence"], info["fallback"])
    todo = [p for p in paths if p not in done]
    for found in predict_boxes(detector, todo, num_workers=num_workers, progress=progress):
        key = keys.get(found.path)
        if key is None:
            done[found.path] = Crop(found.path, found.path, None, 0.0, found.error or "file not found")
            continue
        crop = done[found.path] = _make_crop(found, folder / key / found.path.name, settings)
        sidecar = folder / key / f"{found.path.name}.json"
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        sidecar.write_text(json.dumps({"box": crop.box, "confidence": crop.confidence, "fallback": crop.fallback}))
    crops = [done[p] for p in paths]
    unsure = [c for c in crops if c.fallback]
    if unsure:
        log.warning(
            "%d of %d photos keep their full frame (e.g. %s: %s)",
            len(unsure),
            len(crops),
            unsure[0].source.name,
            unsure[0].fallback,
        )
    return crops


def crop_table(crops: Sequence[Crop], root: Path | None = None) -> pd.DataFrame:
    """Image, x0, y0, x1, y1, confidence, fallback: one row per photo (Image relative to ``root`` if given)."""
    rows = []
    for c in crops:
        name = c.source.relative_to(root).as_posix() if root else c.source.name
        x0, y0, x1, y1 = c.box if c.box else (None,) * 4
        rows.append(
            {"Image": name, "x0": x0, "y0": y0, "x1": x1, "y1": y1}
            | {"confidence": round(c.confidence, 4), "fallback": c.fallback or ""}
        )
    return pd.DataFrame(rows)


def cropped_labels(
    detector: Detector, labels: pd.DataFrame, settings: CropSettings | None = None, progress: Progress | None = None
) -> pd.DataFrame:
    """A copy of a catalogue table whose ``path`` column points at the crops (names and labels unchanged)."""
    crops = crop_photos(detector, list(labels["path"]), settings, progress=progress)
    out = labels.copy()
    out["path"] = [c.path for c in crops]
    return out


def crop_to_boxes(
    paths: Sequence[Path], boxes: Sequence[Box], settings: CropSettings | None = None, progress: Progress | None = None
) -> list[Crop]:
    """Crop each photo to its given box (x0, y0, x1, y1 in pixels, e.g. a wildlife table's bbox) plus the margin,
    cached like detector crops; an unreadable photo keeps its full frame, with the reason."""
    settings = settings or CropSettings()
    folder = cache_root() / "crops" / f"given-m{settings.margin:g}"
    crops = []
    for done, (source, box) in enumerate(zip(paths, boxes), start=1):
        source = Path(source)
        try:
            key = hashlib.sha1(source.read_bytes() + repr(tuple(box)).encode()).hexdigest()
            target = folder / key / source.name
            if not target.is_file():
                image = read_image(source)
                margin_box = with_margin(box, settings.margin, image.width, image.height)
                target.parent.mkdir(parents=True, exist_ok=True)
                image.crop(tuple(round(v) for v in margin_box)).save(target, quality=95)
            crops.append(Crop(source, target, tuple(box), 1.0))
        except (OSError, ImageError) as exc:
            crops.append(Crop(source, source, None, 0.0, str(exc)))
        if progress:
            progress(done, len(paths))
    return crops


def crop_rows(
    labels: pd.DataFrame, model: Path | None, crop: Path | None = None, progress: Progress | None = None
) -> pd.DataFrame:
    """Catalogue rows with ``path`` pointing at crops: to the row's own ``box`` where it has one (a wildlife table's
    bbox), else by the detector folder ``crop``, else by the detector the model folder ``model`` carries; rows left
    as they are when neither gives a detector (``progress`` is not called when nothing is cropped)."""
    given = labels["box"].map(lambda b: isinstance(b, tuple)) if "box" in labels.columns else None
    out = labels
    if given is not None and given.any():
        out = labels.copy()
        crops = crop_to_boxes(list(labels.loc[given, "path"]), list(labels.loc[given, "box"]), progress=progress)
        out.loc[given, "path"] = pd.Series([c.path for c in crops], index=out.index[given], dtype=object)
    detector = model_detector(model, crop)
    if detector is None:
        return out
    rest = ~given if given is not None else pd.Series(True, index=labels.index)
    if not rest.any():
        return out
    cropped = cropped_labels(detector, out[rest], progress=progress)
    out = out.copy()
    out.loc[rest, "path"] = cropped["path"]
    return out


def crop_queries(
    paths: list[Path], model: Path | None, crop: Path | None = None, progress: Progress | None = None
) -> list[Path]:
    """Query photos cropped to the fluke (file names kept) by ``crop`` or the model's own detector, as
    `crop_rows` chooses it; the paths themselves when there is no detector."""
    detector = model_detector(model, crop)
    if detector is None:
        return paths
    return [c.path for c in crop_photos(detector, paths, progress=progress)]


def check_crop_target(data: Path, out: Path) -> None:
    """FlukeidError if a cropped copy of ``data`` would be written at ``out``: inside it, or over it."""
    if out.resolve() == data.resolve() or data.resolve() in out.resolve().parents:
        raise FlukeidError(f"{out}: write the crops outside {data}")


def crop_catalogue(
    detector: Detector,
    data: Path,
    out: Path,
    settings: CropSettings | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Write a cropped copy of a catalogue folder: every photo at the same relative path, the label files
    copied, and ``crops.csv`` with each photo's box, confidence and fallback. Returns that table. ``out`` must lie
    outside ``data`` (`check_crop_target`)."""
    data, out = Path(data), Path(out)
    check_crop_target(data, out)
    photos = sorted(p for p in data.rglob("*") if is_image(p))
    crops = crop_photos(detector, photos, settings, progress=progress)
    for crop in crops:
        target = out / crop.source.relative_to(data)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(crop.path, target)
    for table in data.glob("*.csv"):
        if table.name not in BOXES_NAMES:
            shutil.copyfile(table, out / table.name)
    frame = crop_table(crops, data)
    frame.to_csv(out / "crops.csv", index=False)
    return frame
