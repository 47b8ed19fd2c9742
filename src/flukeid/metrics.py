"""Plain metric functions: ranking (MAP@k, top-k, BAKS/BAUS, AUC) and box detection (IoU, AP)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence, Sized
from dataclasses import dataclass

import numpy as np

from flukeid import NEW_WHALE

COCO_IOU_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
"""IoU thresholds 0.50, 0.55, ..., 0.95 of COCO-style mAP@[.5:.95]."""


# --------------------------------------------------------------------------- ranking


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def _check_lengths(first: Sized, second: Sized, names: str) -> None:
    if len(first) != len(second):
        raise ValueError(f"{names} must have the same length, got {len(first)} and {len(second)}")


def average_precision_at_k(predicted: Sequence[str], actual: str, k: int = 5) -> float:
    """Kaggle AP@k for one query with one true label: 1/rank of its first occurrence in the top k.

    Every prediction takes a rank, repeats included; a repeat of the right label earns nothing.
    Fewer than k predictions are allowed; none scores 0. `new_whale` is a label like any other.
    """
    _check_k(k)
    for rank, label in enumerate(predicted[:k], start=1):
        if label == actual:
            return 1.0 / rank
    return 0.0


def map_at_k(predictions: Sequence[Sequence[str]], actuals: Sequence[str], k: int = 5) -> float:
    """Mean of `average_precision_at_k` over queries (the Kaggle MAP@5 score when k=5)."""
    _check_lengths(predictions, actuals, "predictions and actuals")
    if not actuals:
        raise ValueError("map_at_k needs at least one query, got none")
    return float(np.mean([average_precision_at_k(p, a, k) for p, a in zip(predictions, actuals, strict=True)]))


def top_k_accuracy(
    predictions: Sequence[Sequence[str]],
    actuals: Sequence[str],
    k: int,
    known_only: bool = False,
) -> float:
    """Share of queries whose actual label is among their first k predictions.

    Repeats take a rank as in MAP@k, so the score is the share of queries with AP@k > 0.
    With `known_only`, queries whose actual label is `new_whale` are left out (NaN if none remain).
    """
    _check_k(k)
    _check_lengths(predictions, actuals, "predictions and actuals")
    if not actuals:
        raise ValueError("top_k_accuracy needs at least one query, got none")
    hits = [a in p[:k] for p, a in zip(predictions, actuals, strict=True) if not (known_only and a == NEW_WHALE)]
    return float(np.mean(hits)) if hits else float("nan")


def _mean_accuracy_per_group(correct: Sequence[bool], groups: Sequence[str]) -> float:
    """Accuracy within each group, then the mean over groups; NaN if there are no queries."""
    by_group: dict[str, list[bool]] = defaultdict(list)
    for ok, group in zip(correct, groups, strict=True):
        by_group[group].append(ok)
    if not by_group:
        return float("nan")
    return float(np.mean([np.mean(oks) for oks in by_group.values()]))


def baks(top1: Sequence[str], actuals: Sequence[str]) -> float:
    """Balanced accuracy on known samples: top-1 accuracy per known individual, then mean.

    Queries whose actual label is `new_whale` are left out; NaN if none remain.
    """
    _check_lengths(top1, actuals, "top1 and actuals")
    pairs = [(t, a) for t, a in zip(top1, actuals, strict=True) if a != NEW_WHALE]
    return _mean_accuracy_per_group([t == a for t, a in pairs], [a for _, a in pairs])


def baus(top1: Sequence[str], identities: Sequence[str]) -> float:
    """Balanced accuracy on unknown samples: share answered `new_whale` per hidden identity, then mean.

    All queries must be of individuals missing from the gallery; NaN if there are none.
    """
    _check_lengths(top1, identities, "top1 and identities")
    return _mean_accuracy_per_group([t == NEW_WHALE for t in top1], identities)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of `values` (shape (n,)), tied values sharing their mean rank."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1
    return (first_rank + (counts - 1) / 2.0)[inverse]


def new_individual_auc(novelty: Sequence[float], is_new: Sequence[bool]) -> float:
    """ROC AUC of `novelty` (high = unknown individual) for separating new from known queries.

    Mann-Whitney statistic, a tie between a new and a known query counting 1/2.
    NaN when either class is empty.
    """
    _check_lengths(novelty, is_new, "novelty and is_new")
    scores = np.asarray(novelty, dtype=float)
    positive = np.asarray(is_new, dtype=bool)
    if not np.all(np.isfinite(scores)):
        raise ValueError("novelty scores must be finite numbers (found NaN or infinity)")
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = _average_ranks(scores)[positive].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


# --------------------------------------------------------------------------- boxes


def _as_boxes(boxes: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(boxes, dtype=float)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) as x0, y0, x1, y1; got {array.shape}")
    return array


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in `a` (N, 4) with every box in `b` (M, 4): (N, M).

    Boxes are x0, y0, x1, y1 with x0 < x1 and y0 < y1.
    """
    a, b = _as_boxes(a, "a"), _as_boxes(b, "b")
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0.0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def iou(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Intersection over union of two single boxes x0, y0, x1, y1."""
    return float(box_iou(np.reshape(a, (1, 4)), np.reshape(b, (1, 4)))[0, 0])


@dataclass(frozen=True)
class Detection:
    """One predicted box `box` (x0, y0, x1, y1) with confidence `score` in image `image`."""

    image: str
    box: tuple[float, float, float, float]
    score: float


@dataclass(frozen=True)
class PRCurve:
    """Precision and recall after each detection, by decreasing score; all of shape (D,)."""

    precision: np.ndarray
    recall: np.ndarray
    thresholds: np.ndarray


@dataclass(frozen=True)
class BoxScores:
    """Summary of a detector: mean IoU of its best box per image, AP at IoU 0.5, mAP@[.5:.95]."""

    mean_iou: float
    ap50: float
    map50_95: float


def _match(
    detections: Sequence[Detection], truths: Mapping[str, np.ndarray], iou_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching by decreasing score: (scores (D,), is_true_positive (D,))."""
    order = sorted(range(len(detections)), key=lambda i: -detections[i].score)
    matched = {image: np.zeros(len(_as_boxes(b, image)), dtype=bool) for image, b in truths.items()}
    hits = np.zeros(len(order), dtype=bool)
    for position, index in enumerate(order):
        det = detections[index]
        if det.image not in truths or len(truths[det.image]) == 0:
            continue
        overlaps = box_iou(np.reshape(det.box, (1, 4)), truths[det.image])[0]
        overlaps[matched[det.image]] = -1.0
        best = int(np.argmax(overlaps))
        if overlaps[best] >= iou_threshold:
            matched[det.image][best] = True
            hits[position] = True
    scores = np.array([detections[i].score for i in order], dtype=float)
    return scores, hits


def precision_recall_curve(
    detections: Sequence[Detection], truths: Mapping[str, np.ndarray], iou_threshold: float = 0.5
) -> PRCurve:
    """Precision/recall of `detections` against truth boxes (G, 4) per image.

    Each detection, by decreasing score, matches the unmatched truth box of its image with the
    highest IoU if that IoU >= `iou_threshold` (true positive), else it is a false positive.
    """
    total = sum(len(_as_boxes(b, image)) for image, b in truths.items())
    if total == 0:
        raise ValueError("precision_recall_curve needs at least one truth box, got none")
    scores, hits = _match(detections, truths, iou_threshold)
    true_pos = np.cumsum(hits)
    precision = true_pos / np.arange(1, len(hits) + 1)
    return PRCurve(precision=precision, recall=true_pos / total, thresholds=scores)


def average_precision(curve: PRCurve) -> float:
    """Area under the all-point interpolated precision/recall curve (VOC 2010 and later)."""
    recall = np.concatenate(([0.0], curve.recall, [1.0]))
    precision = np.concatenate(([0.0], curve.precision, [0.0]))
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def mean_average_precision(
    detections: Sequence[Detection],
    truths: Mapping[str, np.ndarray],
    thresholds: Sequence[float] = COCO_IOU_THRESHOLDS,
) -> float:
    """Mean of `average_precision` over IoU thresholds (COCO-style mAP@[.5:.95] by default)."""
    aps = [average_precision(precision_recall_curve(detections, truths, t)) for t in thresholds]
    return float(np.mean(aps))


def box_scores(detections: Sequence[Detection], truths: Mapping[str, np.ndarray]) -> BoxScores:
    """Mean IoU, AP50 and mAP@[.5:.95] of `detections` against truth boxes (G, 4) per image.

    Mean IoU: over images with at least one truth box, the IoU of the image's best-scoring
    detection with its closest truth box (0 when the image has no detection).
    """
    best: dict[str, Detection] = {}
    for det in detections:
        if det.image not in best or det.score > best[det.image].score:
            best[det.image] = det
    ious = [
        float(box_iou(np.reshape(best[image].box, (1, 4)), boxes).max()) if image in best else 0.0
        for image, boxes in truths.items()
        if len(boxes) > 0
    ]
    return BoxScores(
        mean_iou=float(np.mean(ious)) if ious else float("nan"),
        ap50=average_precision(precision_recall_curve(detections, truths, 0.5)),
        map50_95=mean_average_precision(detections, truths),
    )


# --------------------------------------------------------------------------- open set


@dataclass(frozen=True)
class OpenSetScores:
    """Identification scores: MAP@5 over all queries, top-1/top-5 over known queries only,
    BAKS, BAUS and the AUC of the novelty score (NaN where undefined)."""

    map5: float
    top1: float
    top5: float
    baks: float
    baus: float
    auc: float


def open_set_scores(
    predictions: Sequence[Sequence[str]],
    actuals: Sequence[str],
    identities: Sequence[str],
    novelty: Sequence[float] | None,
) -> OpenSetScores:
    """All identification scores in one call.

    `actuals` are the expected labels (`new_whale` for unknown individuals), `identities` the real
    identity of each query (equal to the actual label for known ones), `novelty` one score per
    query, high for unknown individuals, or None (then auc is NaN).
    """
    _check_lengths(predictions, actuals, "predictions and actuals")
    _check_lengths(identities, actuals, "identities and actuals")
    top1 = [p[0] if len(p) > 0 else "" for p in predictions]
    unknown = [i for i, a in enumerate(actuals) if a == NEW_WHALE]
    is_new = [a == NEW_WHALE for a in actuals]
    auc = float("nan") if novelty is None else new_individual_auc(novelty, is_new)
    return OpenSetScores(
        map5=map_at_k(predictions, actuals, 5),
        top1=top_k_accuracy(predictions, actuals, 1, known_only=True),
        top5=top_k_accuracy(predictions, actuals, 5, known_only=True),
        baks=baks(top1, actuals),
        baus=baus([top1[i] for i in unknown], [identities[i] for i in unknown]),
        auc=auc,
    )
