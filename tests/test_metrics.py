"""Metrics against hand-worked cases and Kaggle's reference apk/mapk."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from flukeid import NEW_WHALE
from flukeid.metrics import (
    Detection,
    average_precision,
    average_precision_at_k,
    baks,
    baus,
    box_iou,
    box_scores,
    iou,
    map_at_k,
    mean_average_precision,
    new_individual_auc,
    open_set_scores,
    precision_recall_curve,
    top_k_accuracy,
)


def reference_apk(actual: list[str], predicted: list[str], k: int = 5) -> float:
    """Kaggle's reference apk (ml_metrics), transcribed as published."""
    if len(predicted) > k:
        predicted = predicted[:k]
    score = 0.0
    num_hits = 0.0
    for i, p in enumerate(predicted):
        if p in actual and p not in predicted[:i]:
            num_hits += 1.0
            score += num_hits / (i + 1.0)
    if not actual:
        return 0.0
    return score / min(len(actual), k)


def reference_mapk(actual: list[list[str]], predicted: list[list[str]], k: int = 5) -> float:
    """Kaggle's reference mapk."""
    return float(np.mean([reference_apk(a, p, k) for a, p in zip(actual, predicted, strict=True)]))


# --------------------------------------------------------------------------- MAP@5


@pytest.mark.parametrize(
    ("predicted", "actual", "expected"),
    [
        (["a", "b", "c", "d", "e"], "a", 1 / 1),  # right at rank 1
        (["b", "a", "c", "d", "e"], "a", 1 / 2),  # right at rank 2
        (["b", "c", "a", "d", "e"], "a", 1 / 3),  # right at rank 3
        (["b", "c", "d", "a", "e"], "a", 1 / 4),  # right at rank 4
        (["b", "c", "d", "e", "a"], "a", 1 / 5),  # right at rank 5
        (["b", "c", "d", "e", "f"], "a", 0 / 1),  # absent from the five
        (["b", "a"], "a", 1 / 2),  # only two predictions, right at rank 2
        ([], "a", 0 / 1),  # no predictions at all
        (["a", "a", "b"], "b", 1 / 3),  # the repeated wrong "a" still takes rank 2: "b" at rank 3
        (["a", "a", "a"], "a", 1 / 1),  # right at rank 1; its repeats at ranks 2-3 add nothing
        (["b", "a", "a", "a", "a"], "a", 1 / 2),  # first hit at rank 2, repeats add nothing
        ([NEW_WHALE, "a", "b"], NEW_WHALE, 1 / 1),  # new_whale is the truth, predicted first
        (["a", NEW_WHALE, "b"], NEW_WHALE, 1 / 2),  # new_whale predicted at rank 2
        (["b", "c", "d", "e", "f", "a"], "a", 0 / 1),  # right label at rank 6 is past k=5
    ],
)
def test_average_precision_at_5_hand_worked(predicted: list[str], actual: str, expected: float) -> None:
    assert average_precision_at_k(predicted, actual, 5) == pytest.approx(expected)
    assert average_precision_at_k(predicted, actual, 5) == pytest.approx(reference_apk([actual], predicted, 5))


def test_map_at_5_mixed_batch_is_the_mean() -> None:
    predictions = [["a", "b"], ["x", "b"], ["x", "y", "c"], ["x"]]
    actuals = ["a", "b", "c", "d"]
    # (1 + 1/2 + 1/3 + 0) / 4 = (6/6 + 3/6 + 2/6) / 4 = 11/24
    assert map_at_k(predictions, actuals) == pytest.approx(11 / 24)


def test_map_at_k_smaller_k_cuts_predictions() -> None:
    # with k=1 only rank 1 counts: 1 for the first query, 0 for the second -> 1/2
    assert map_at_k([["a", "b"], ["x", "b"]], ["a", "b"], k=1) == pytest.approx(1 / 2)


def test_map_at_5_matches_kaggle_reference_on_random_cases() -> None:
    rng = random.Random(0)
    labels = ["a", "b", "c", "d", "e", "f", NEW_WHALE]
    predictions = [rng.choices(labels, k=rng.randint(0, 8)) for _ in range(500)]
    actuals = [rng.choice(labels) for _ in range(500)]
    for predicted, actual in zip(predictions, actuals, strict=True):
        assert average_precision_at_k(predicted, actual) == pytest.approx(reference_apk([actual], predicted))
    expected = reference_mapk([[a] for a in actuals], predictions)
    assert map_at_k(predictions, actuals) == pytest.approx(expected)


def test_map_at_k_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="same length"):
        map_at_k([["a"]], ["a", "b"])
    with pytest.raises(ValueError, match="at least one query"):
        map_at_k([], [])
    with pytest.raises(ValueError, match="k must be at least 1"):
        average_precision_at_k(["a"], "a", k=0)


# --------------------------------------------------------------------------- top-k, BAKS, BAUS


def test_top_k_accuracy_hand_worked() -> None:
    predictions = [["a", "b"], ["x", "b"], ["x", "y", "z", "w", "v", "c"], ["x", NEW_WHALE]]
    actuals = ["a", "b", "c", NEW_WHALE]
    # top-1: only query 0 -> 1/4; top-5: queries 0, 1, 3 ("c" is at rank 6) -> 3/4
    assert top_k_accuracy(predictions, actuals, 1) == pytest.approx(1 / 4)
    assert top_k_accuracy(predictions, actuals, 5) == pytest.approx(3 / 4)
    # known only drops query 3: top-5 hits queries 0, 1 of 3 -> 2/3
    assert top_k_accuracy(predictions, actuals, 5, known_only=True) == pytest.approx(2 / 3)
    assert math.isnan(top_k_accuracy([["a"]], [NEW_WHALE], 5, known_only=True))
    with pytest.raises(ValueError, match="same length"):
        top_k_accuracy([["a"]], [], 5)


def test_baks_balances_over_individuals() -> None:
    top1 = ["a", "a", "x", "a", "b", NEW_WHALE]
    actuals = ["a", "a", "a", "a", "b", NEW_WHALE]
    # "a": 3 of 4 right -> 3/4; "b": 1 of 1 -> 1; new_whale ignored; mean (3/4 + 1) / 2 = 7/8
    assert baks(top1, actuals) == pytest.approx(7 / 8)
    assert math.isnan(baks([NEW_WHALE], [NEW_WHALE]))


def test_baus_balances_over_hidden_identities() -> None:
    top1 = [NEW_WHALE, "a", "b", NEW_WHALE]
    identities = ["u", "u", "u", "v"]
    # "u": 1 of 3 said new_whale -> 1/3; "v": 1 of 1 -> 1; mean (1/3 + 1) / 2 = 2/3
    assert baus(top1, identities) == pytest.approx(2 / 3)
    assert math.isnan(baus([], []))
    with pytest.raises(ValueError, match="same length"):
        baus(["a"], [])


# --------------------------------------------------------------------------- AUC


def test_auc_perfect_and_reversed() -> None:
    assert new_individual_auc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert new_individual_auc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0


def test_auc_hand_worked_with_ties() -> None:
    # new: 0.8, 0.5; known: 0.5, 0.2. Pairs (new, known): (0.8, 0.5)=1, (0.8, 0.2)=1,
    # (0.5, 0.5)=1/2 (tie), (0.5, 0.2)=1 -> 3.5 / 4 = 7/8
    assert new_individual_auc([0.8, 0.5, 0.5, 0.2], [True, True, False, False]) == pytest.approx(7 / 8)
    # all scores equal: every pair is a tie -> 1/2
    assert new_individual_auc([0.3, 0.3, 0.3], [True, False, False]) == pytest.approx(1 / 2)


def test_auc_matches_pairwise_loop() -> None:
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, size=60).astype(float)
    is_new = rng.random(60) < 0.4
    pos, neg = scores[is_new], scores[~is_new]
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg]
    assert new_individual_auc(scores, is_new) == pytest.approx(float(np.mean(pairs)))


def test_auc_nan_when_a_class_is_empty() -> None:
    assert math.isnan(new_individual_auc([0.1, 0.2], [False, False]))
    assert math.isnan(new_individual_auc([], []))


# --------------------------------------------------------------------------- boxes


def test_iou_hand_worked() -> None:
    assert iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0  # disjoint
    assert iou([0, 0, 2, 2], [0, 0, 2, 2]) == 1.0  # identical
    # [0,0,2,2] and [1,1,3,3]: intersection 1x1 = 1, union 4 + 4 - 1 = 7 -> 1/7
    assert iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)
    # [0,0,4,2] and [2,0,6,2]: intersection 2x2 = 4, union 8 + 8 - 4 = 12 -> 1/3
    assert iou([0, 0, 4, 2], [2, 0, 6, 2]) == pytest.approx(1 / 3)


def test_box_iou_shape_and_values() -> None:
    a = np.array([[0, 0, 2, 2], [2, 2, 3, 3]], dtype=float)
    b = np.array([[0, 0, 2, 2], [1, 1, 3, 3], [5, 5, 6, 6]], dtype=float)
    expected = np.array([[1, 1 / 7, 0], [0, 1 / 4, 0]])  # [2,2,3,3] inside [1,1,3,3]: 1/4
    np.testing.assert_allclose(box_iou(a, b), expected)
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        box_iou(np.zeros((2, 3)), b)


# --------------------------------------------------------------------------- detection AP


def _three_truths_four_detections() -> tuple[list[Detection], dict[str, np.ndarray]]:
    truths = {
        "p.jpg": np.array([[0, 0, 10, 10], [20, 20, 30, 30]], dtype=float),
        "q.jpg": np.array([[0, 0, 10, 10]], dtype=float),
    }
    detections = [
        Detection("p.jpg", (0, 0, 10, 10), 0.9),  # TP
        Detection("p.jpg", (50, 50, 60, 60), 0.8),  # FP: overlaps nothing
        Detection("q.jpg", (0, 0, 10, 8.8), 0.7),  # TP: IoU 88/100
        Detection("p.jpg", (0, 0, 10, 10), 0.6),  # FP: its truth is already matched
    ]
    return detections, truths


def test_precision_recall_curve_hand_worked() -> None:
    detections, truths = _three_truths_four_detections()
    curve = precision_recall_curve(detections, truths, 0.5)
    # by score: TP, FP, TP, FP -> precision 1, 1/2, 2/3, 2/4; recall 1/3, 1/3, 2/3, 2/3
    np.testing.assert_allclose(curve.precision, [1, 1 / 2, 2 / 3, 1 / 2])
    np.testing.assert_allclose(curve.recall, [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(curve.thresholds, [0.9, 0.8, 0.7, 0.6])
    # interpolated precision: 1 up to recall 1/3, 2/3 up to recall 2/3, then nothing:
    # AP = 1/3 * 1 + 1/3 * 2/3 = 5/9
    assert average_precision(curve) == pytest.approx(5 / 9)


def test_precision_recall_curve_threshold_turns_tp_into_fp() -> None:
    detections, truths = _three_truths_four_detections()
    # at IoU 0.95 the q.jpg box (IoU 0.88) is a FP: only the first detection hits -> AP 1/3 * 1
    curve = precision_recall_curve(detections, truths, 0.95)
    assert average_precision(curve) == pytest.approx(1 / 3)


def test_perfect_detections_score_one() -> None:
    truths = {"p.jpg": np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), "q.jpg": np.array([[1, 2, 3, 4]])}
    detections = [
        Detection(image, tuple(float(v) for v in box), 0.5 + 0.1 * i)
        for i, (image, boxes) in enumerate(truths.items())
        for box in boxes
    ]
    assert mean_average_precision(detections, truths) == pytest.approx(1.0)
    assert box_scores(detections, truths).mean_iou == pytest.approx(1.0)


def test_box_scores_hand_worked() -> None:
    detections, truths = _three_truths_four_detections()
    scores = box_scores(detections, truths)
    # best-scoring box per image: p.jpg IoU 1, q.jpg IoU 0.88 -> mean 0.94
    assert scores.mean_iou == pytest.approx(0.94)
    assert scores.ap50 == pytest.approx(5 / 9)
    # IoU thresholds 0.50..0.85 (8 of them) keep q.jpg a TP: AP 5/9; at 0.90 and 0.95 only p.jpg
    # hits: AP 1/3 -> (8 * 5/9 + 2 * 1/3) / 10 = (40/9 + 6/9) / 10 = 23/45
    assert scores.map50_95 == pytest.approx(23 / 45)


def test_no_detections_score_zero() -> None:
    truths = {"p.jpg": np.array([[0, 0, 1, 1]])}
    scores = box_scores([], truths)
    assert (scores.mean_iou, scores.ap50, scores.map50_95) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="at least one truth box"):
        precision_recall_curve([], {})


# --------------------------------------------------------------------------- open set


def test_open_set_scores_hand_worked() -> None:
    predictions = [["a", "b"], ["x", "b"], [NEW_WHALE, "a"], ["a", NEW_WHALE]]
    actuals = ["a", "b", NEW_WHALE, NEW_WHALE]
    identities = ["a", "b", "u", "v"]
    scores = open_set_scores(predictions, actuals, identities, novelty=[0.1, 0.3, 0.9, 0.2])
    assert scores.map5 == pytest.approx((1 + 1 / 2 + 1 + 1 / 2) / 4)
    assert scores.top1 == pytest.approx(1 / 2)  # known queries only: "a" right, "b" wrong
    assert scores.top5 == pytest.approx(1.0)
    assert scores.baks == pytest.approx(1 / 2)  # "a": 1, "b": 0
    assert scores.baus == pytest.approx(1 / 2)  # "u": 1, "v": 0
    # new: 0.9, 0.2; known: 0.1, 0.3 -> pairs 1, 1, 1, 0 -> 3/4
    assert scores.auc == pytest.approx(3 / 4)
    assert math.isnan(open_set_scores(predictions, actuals, identities, None).auc)
    with pytest.raises(ValueError, match="same length"):
        open_set_scores(predictions, actuals, identities[:2], None)
