"""Rendering one synthetic photo: deterministic per generator, tight boxes, no trivial identity cues."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from flukeid.synth import Individual, Patch, RenderedPhoto, render_photo, sample_individual


def _photo(seed: int, size: tuple[int, int]) -> RenderedPhoto:
    """Individual `seed` from a fresh generator, in a scene from another; greyscale and text likely, to cover them."""
    ind = sample_individual(np.random.default_rng([21, seed]))
    return render_photo(ind, np.random.default_rng([22, seed]), size, greyscale=0.5, text=0.5)


def test_same_seed_same_pixels_other_seed_differs() -> None:
    """Same generators: identical pixels, mode, box and mask; another seed: another photo."""
    modes = set()
    for seed in range(6):
        size = (64 + 16 * seed, 48 + 10 * seed)
        a, b, other = _photo(seed, size), _photo(seed, size), _photo(seed + 100, size)
        assert a.image.size == size and a.image.mode == b.image.mode
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
        assert a.box == b.box and np.array_equal(a.mask, b.mask)
        assert not np.array_equal(np.asarray(a.image.convert("RGB")), np.asarray(other.image.convert("RGB")))
        modes.add(a.image.mode)
    assert modes == {"L", "RGB"}


def test_refuses_a_photo_under_16_pixels() -> None:
    ind = sample_individual(np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least 16x16"):
        render_photo(ind, np.random.default_rng(0), (15, 64))


def _pigment_variants(ind: Individual) -> tuple[Individual, Individual]:
    """The same fluke all white and all black (no scars, no rim)."""
    white = replace(ind, patches=(Patch(0.0, 0.5, 3.0, 3.0, 0.0, 1.0),), scars=(), margin=0.0)
    return white, replace(ind, patches=(), scars=(), margin=0.0)


def test_box_tightly_covers_the_fluke() -> None:
    """Pigment does not change the scene, so white-minus-black marks exactly the whale's pixels."""
    for i in range(12):
        white, black = _pigment_variants(sample_individual(np.random.default_rng(i)))
        size = (80 + 8 * i, 56 + 5 * i)
        a = render_photo(white, np.random.default_rng(100 + i), size, greyscale=0.0)
        b = render_photo(black, np.random.default_rng(100 + i), size, greyscale=0.0)
        assert a.box == b.box
        diff = np.abs(np.asarray(a.image, np.float32) - np.asarray(b.image, np.float32)).max(axis=2)
        ys, xs = np.nonzero(diff > 0.3 * diff.max())
        seen = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert max(abs(p - q) for p, q in zip(seen, a.box, strict=True)) <= 3, (i, seen, a.box)
        assert a.mask.shape == (size[1], size[0]) and a.mask[a.box[1] : a.box[3], a.box[0] : a.box[2]].any()
        assert a.mask.sum() == a.mask[a.box[1] : a.box[3], a.box[0] : a.box[2]].sum()


def _loo_accuracy(x: np.ndarray, labels: np.ndarray, centroid: bool) -> float:
    """Leave-one-out accuracy of nearest centroid (or 1-NN) on rows of x."""
    hits = 0
    for k in range(len(x)):
        rest = np.arange(len(x)) != k
        if centroid:
            classes = np.unique(labels)
            refs = np.stack([x[rest & (labels == c)].mean(axis=0) for c in classes])
        else:
            classes, refs = labels[rest], x[rest]
        hits += classes[((refs - x[k]) ** 2).sum(axis=1).argmin()] == labels[k]
    return hits / len(x)


def test_identity_not_given_away_by_colour_or_size() -> None:
    """Mean colour and image size predict identity near chance; the normalised box crop does far better."""
    n_ind, n_photos = 30, 4
    stats, patterns, labels = [], [], []
    for i in range(n_ind):
        ind = sample_individual(np.random.default_rng([11, i]))
        for j in range(n_photos):
            rng = np.random.default_rng([11, i, j])
            width = int(rng.integers(64, 97))
            photo = render_photo(ind, rng, (width, round(width * rng.uniform(0.55, 0.8))))
            rgb = np.asarray(photo.image.convert("RGB"), np.float32) / 255
            stats.append([*rgb.reshape(-1, 3).mean(axis=0), rgb.shape[1] / 96, rgb.shape[0] / 96])
            x0, y0, x1, y1 = photo.box
            crop = cv2.resize(rgb.mean(axis=2)[y0:y1, x0:x1], (32, 16), interpolation=cv2.INTER_AREA)
            patterns.append(((crop - crop.mean()) / (crop.std() + 1e-6)).ravel())
            labels.append(i)
    stats_z = (np.array(stats) - np.mean(stats, axis=0)) / np.std(stats, axis=0)
    y = np.array(labels)
    chance = 1 / n_ind
    colour_nn = _loo_accuracy(stats_z[:, :3], y, centroid=False)
    colour_size_centroid = _loo_accuracy(stats_z, y, centroid=True)
    pattern_nn = _loo_accuracy(np.array(patterns), y, centroid=False)
    seen = f"colour {colour_nn:.3f}, colour+size {colour_size_centroid:.3f}, pattern {pattern_nn:.3f}"
    assert colour_nn < 3 * chance and colour_size_centroid < 3 * chance, seen
    assert pattern_nn > max(5 * chance, 2 * colour_nn, 2 * colour_size_centroid), seen
