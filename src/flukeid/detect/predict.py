"""Find the fluke in photos, score a detector on held-out boxes, and draw predicted vs true boxes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw
from torch.utils.data import DataLoader, Dataset
from torchvision.ops import box_iou

from flukeid.data.images import read_image
from flukeid.data.transforms import build_transform, to_tensor
from flukeid.detect.data import BoxRows, Letterbox
from flukeid.detect.model import Detector
from flukeid.errors import ImageError
from flukeid.metrics import BoxScores, Detection, box_scores, iou
from flukeid.models.onnx import OnnxNetwork
from flukeid.progress import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoxPrediction:
    """The fluke box in ``path`` (pixels), or ``box`` None and ``error`` when the photo could not be read.

    ``confidence`` is the IoU between the box found in the photo and the one found in its mirror image: a
    detector that is sure of itself finds the same box both ways.
    """

    path: Path
    box: tuple[float, float, float, float] | None
    confidence: float
    error: str | None = None


class _Photos(Dataset[tuple[torch.Tensor, int, int, int, str]]):
    """(letterboxed image, index, photo height, photo width, error)."""

    def __init__(self, paths: Sequence[Path], detector: Detector):
        spec, self.size = detector.model.backbone.spec, detector.config.image_size
        self.paths, self.transform = list(paths), build_transform(self.size, spec.mean, spec.std)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int, int, str]:
        try:
            image = np.asarray(read_image(self.paths[i]))
        except ImageError as exc:
            return torch.zeros(3, *self.size), i, 0, 0, str(exc)
        return to_tensor(self.transform, image), i, image.shape[0], image.shape[1], ""


def _onnx_boxes(network: OnnxNetwork) -> Callable[[torch.Tensor], torch.Tensor]:
    """A detector's ONNX export as a function of image tensors (B, 3, H, W) -> boxes (B, 4)."""
    return lambda images: torch.from_numpy(network(images.numpy()))


@torch.no_grad()
def _boxes_both_ways(
    model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean of the box and the mirrored photo's box mirrored back, their IoU), normalised to the input."""
    boxes = model(images)
    mirrored = model(images.flip(-1))
    back = torch.stack([1 - mirrored[:, 2], mirrored[:, 1], 1 - mirrored[:, 0], mirrored[:, 3]], dim=1)
    agreement = box_iou(boxes, back).diagonal()
    return (boxes + back) / 2, agreement


def predict_boxes(
    detector: Detector,
    paths: Sequence[Path],
    batch_size: int = 32,
    num_workers: int = 2,
    device: str | None = None,
    progress: Progress | None = None,
) -> list[BoxPrediction]:
    """One fluke box per photo, in the photo's pixels; unreadable photos come back with their error. A detector
    loaded with ``runtime="onnx"`` runs its ONNX export on CPU (``device`` unused)."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if detector.onnx is not None:
        dev, model = torch.device("cpu"), _onnx_boxes(detector.onnx)
    else:
        model = detector.model.to(dev).eval()
    size = detector.config.image_size
    loader = DataLoader(_Photos(paths, detector), batch_size=batch_size, num_workers=num_workers)
    found: list[BoxPrediction] = []
    for images, indices, heights, widths, errors in loader:
        with torch.autocast(dev.type, dtype=torch.float16, enabled=dev.type == "cuda"):
            boxes, agreement = _boxes_both_ways(model, images.to(dev))
        for box, conf, i, height, width, error in zip(
            boxes.float().cpu().numpy(), agreement.float().cpu().tolist(), indices.tolist(), heights, widths, errors
        ):
            path = Path(paths[i])
            if error:
                log.warning("skipped %s", error)
                found.append(BoxPrediction(path, None, 0.0, error))
                continue
            pixels = Letterbox.fit(int(height), int(width), size).to_photo(box, size)
            x0, y0, x1, y1 = np.clip(pixels, 0, [width, height, width, height]).tolist()
            found.append(BoxPrediction(path, (x0, y0, x1, y1), float(conf)))
        if progress:
            progress(len(found), len(paths))
    return found


@dataclass(frozen=True)
class DetectorEvaluation:
    scores: BoxScores
    predictions: list[BoxPrediction]


def evaluate_detector(
    detector: Detector, rows: BoxRows, num_workers: int = 2, progress: Progress | None = None
) -> DetectorEvaluation:
    """Mean IoU, AP@0.5 and mAP@[.5:.95] of the detector's boxes against ``rows``' true boxes."""
    predictions = predict_boxes(detector, rows.paths, num_workers=num_workers, progress=progress)
    detections = [Detection(p.path.name, p.box, p.confidence) for p in predictions if p.box is not None]
    return DetectorEvaluation(box_scores(detections, rows.truths()), predictions)


def draw_boxes(
    predictions: Sequence[BoxPrediction],
    truths: Mapping[str, np.ndarray],
    out: Path,
    columns: int = 4,
    thumb: tuple[int, int] = (320, 160),
) -> Path:
    """A grid of photos with the true box in green and the predicted box in red (confidence written)."""
    shown = [p for p in predictions if p.box is not None][: columns * 6]
    rows = max(1, -(-len(shown) // columns))
    grid = Image.new("RGB", (columns * thumb[0], rows * thumb[1]), "white")
    for k, prediction in enumerate(shown):
        photo = Image.fromarray(np.asarray(read_image(prediction.path)))
        scale = min(thumb[0] / photo.width, thumb[1] / photo.height)
        photo = photo.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))))
        draw = ImageDraw.Draw(photo)
        for box, colour in ((truths.get(prediction.path.name), "lime"), (prediction.box, "red")):
            if box is not None:
                draw.rectangle([v * scale for v in np.reshape(box, -1)[:4]], outline=colour, width=2)
        draw.text((3, 3), f"{prediction.confidence:.2f}", fill="red")
        grid.paste(photo, ((k % columns) * thumb[0], (k // columns) * thumb[1]))
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out)
    return out


@dataclass(frozen=True)
class EvaluationFiles:
    table: Path  # per photo: Image, iou (0 where no box was found), confidence
    grid: Path  # picture grid of predicted (red) vs true (green) boxes


def write_evaluation(evaluation: DetectorEvaluation, truths: Mapping[str, np.ndarray], out: Path) -> EvaluationFiles:
    """Write ``boxes_iou.csv`` and the ``boxes.png`` grid of an evaluation against ``truths`` into folder ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    predictions = evaluation.predictions
    per_photo = pd.DataFrame(
        {
            "Image": [p.path.name for p in predictions],
            "iou": [iou(p.box, truths[p.path.name][0]) if p.box else 0.0 for p in predictions],
            "confidence": [p.confidence for p in predictions],
        }
    )
    per_photo.to_csv(out / "boxes_iou.csv", index=False)
    return EvaluationFiles(out / "boxes_iou.csv", draw_boxes(predictions, truths, out / "boxes.png"))
