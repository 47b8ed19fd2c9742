"""Synthetic fluke catalogue in the Kaggle "Humpback Whale Identification" layout, no download needed.

Each individual has its own fluke outline (trailing-edge notches, serration, tips), pigment patches
and scars; everything else in a photo (size, pose, lighting, sea and sky, blur, greyscale, text) is
drawn per photo, independently of identity. Same seed, same bytes.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from flukeid import NEW_WHALE
from flukeid.data.synth_render import RenderedPhoto, chord_at, leading_edge, render_photo

__all__ = [
    "EdgeNotch",
    "Individual",
    "Patch",
    "RenderedPhoto",
    "Scar",
    "SynthConfig",
    "SynthSummary",
    "generate",
    "render_photo",
    "sample_individual",
]


@dataclass(frozen=True)
class EdgeNotch:
    """A trailing-edge notch: x along the span (-1..1), depth (x root chord), half-width (half-spans)."""

    x: float
    depth: float
    width: float


@dataclass(frozen=True)
class Patch:
    """Pigment patch in fluke-local coordinates: an ellipse (angle in degrees) whose radius is scaled
    by wobble (multipliers at evenly spaced angles; () = plain ellipse); shade 0 = black, 1 = white."""

    x: float
    y: float
    rx: float
    ry: float
    angle: float
    shade: float
    wobble: tuple[float, ...] = ()


@dataclass(frozen=True)
class Scar:
    """A thin white scar: polyline in fluke-local coordinates and its width in half-spans."""

    points: tuple[tuple[float, float], ...]
    width: float


@dataclass(frozen=True)
class Individual:
    """One whale: its id and the parameters of its fluke (local coordinates, see synth_render).

    chord: root chord in half-spans (span / width ratio about 2 / chord); lobe: how full the blades
    are before they taper; sweep, sweep_power, tip_curl: how the leading edge rises towards the
    tips; tip_bluntness: 0.55 rounded .. 1 pointed tips; notch_depth (x chord), notch_width: median
    notch; notches: the signature notches; serration: trailing-edge scallop profile in [0, 1]
    sampled evenly over the span, serration_depth its amplitude (x chord); margin: dark rim along
    the trailing edge (x chord); stock_width: half-width of the tail stock.
    """

    id: str
    chord: float
    lobe: float
    sweep: float
    sweep_power: float
    tip_curl: float
    tip_bluntness: float
    notch_depth: float
    notch_width: float
    notches: tuple[EdgeNotch, ...]
    serration: tuple[float, ...]
    serration_depth: float
    margin: float
    stock_width: float
    patches: tuple[Patch, ...]
    scars: tuple[Scar, ...]


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. photos: (min, max) photos per individual, long-tailed; size: (min, max) width px.

    new_share: share of individuals seen only in test (labelled new_whale); test_share: share of the
    photos of known individuals with >= 2 photos that go to test; train_new_whale: share of train
    rows that are one-off individuals labelled new_whale; greyscale / text: per-photo probabilities.
    """

    individuals: int = 200
    photos: tuple[int, int] = (1, 6)
    new_share: float = 0.2
    size: tuple[int, int] = (192, 384)
    test_share: float = 0.3
    train_new_whale: float = 0.05
    seed: int = 0
    greyscale: float = 0.2
    text: float = 0.15
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True)
class SynthSummary:
    """What generate wrote. individuals counts catalogue individuals (known + new), not one-offs."""

    train_images: int
    test_images: int
    individuals: int
    new_individuals: int


@dataclass(frozen=True)
class _Shot:
    """One planned photo: file name, index of the individual, split, label written, rng key."""

    name: str
    who: int
    split: str
    label: str
    key: int


def _is_int(value: object) -> bool:
    """True for Python or numpy integers, not bools."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _validate(cfg: SynthConfig) -> None:
    """Raise ValueError naming the first nonsensical field of cfg."""
    for name in ("individuals", "seed", "jpeg_quality"):
        if not _is_int(getattr(cfg, name)):
            raise ValueError(f"SynthConfig.{name} must be an integer, got {getattr(cfg, name)!r}")
    for name in ("photos", "size"):
        value = getattr(cfg, name)
        if not (isinstance(value, tuple | list) and len(value) == 2 and all(map(_is_int, value))):
            raise ValueError(f"SynthConfig.{name} must be two integers (min, max), got {value!r}")
    if cfg.individuals < 2:
        raise ValueError(f"SynthConfig.individuals must be >= 2, got {cfg.individuals}")
    lo, hi = cfg.photos
    if lo < 1 or lo > hi:
        raise ValueError(f"SynthConfig.photos must be (min, max) with 1 <= min <= max, got {cfg.photos}")
    for name in ("new_share", "test_share", "train_new_whale", "greyscale", "text"):
        value = getattr(cfg, name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"SynthConfig.{name} must be in [0, 1], got {value}")
    if cfg.train_new_whale >= 1.0:
        raise ValueError("SynthConfig.train_new_whale must be < 1: train needs known individuals")
    if round(cfg.new_share * cfg.individuals) >= cfg.individuals:
        raise ValueError(f"SynthConfig.new_share={cfg.new_share} leaves no known individual")
    if cfg.size[0] < 32 or cfg.size[0] > cfg.size[1]:
        raise ValueError(f"SynthConfig.size must be (min, max) width with 32 <= min <= max, got {cfg.size}")
    if cfg.seed < 0:
        raise ValueError(f"SynthConfig.seed must be >= 0, got {cfg.seed}")
    if not 1 <= cfg.jpeg_quality <= 100:
        raise ValueError(f"SynthConfig.jpeg_quality must be in [1, 100], got {cfg.jpeg_quality}")


# ----------------------------------------------------------------------------- individuals


def _wobble(rng: np.random.Generator, amount: float) -> tuple[float, ...]:
    """Radius multipliers at 16 angles: a smooth random outline (harmonics 2-4) for a blob."""
    t = np.linspace(0.0, 2 * np.pi, 16, endpoint=False)
    radius = np.ones_like(t)
    for k in (2, 3, 4):
        radius += amount / k * rng.normal() * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    return tuple(float(r) for r in np.clip(radius, 0.3, 2.0))


def _patch(
    rng: np.random.Generator,
    shape: Individual,
    x: float,
    across: float,
    rx: float,
    ry: float,
    angle: float,
    shade: float,
) -> Patch:
    """A patch at span position x, across (0 leading .. 1 trailing edge) of the local chord."""
    y = leading_edge(shape, x) + across * chord_at(shape, x)
    values = (float(v) for v in (x, y, rx, ry, angle, shade))
    return Patch(*values, wobble=_wobble(rng, 0.5))


def _sample_patches(rng: np.random.Generator, shape: Individual) -> tuple[Patch, ...]:
    """Light blobs (some mirrored), streaks and dark spots; whiteness from mostly black to mostly white."""
    u = rng.uniform
    white = rng.beta(0.9, 0.9)
    patches: list[Patch] = []
    if white > 0.75:
        patches.append(_patch(rng, shape, 0.0, 0.5, 1.0, 0.6 * (shape.sweep + shape.chord), 0.0, u(0.8, 1.0)))
    for _ in range(int(rng.integers(0, 3)) + round(4 * white)):
        x, rx = u(-0.85, 0.85), u(0.05, 0.12 + 0.3 * white)
        blob = _patch(rng, shape, x, u(0.15, 0.85), rx, rx * u(0.3, 1.0), u(-60, 60), u(0.7, 1.0))
        patches.append(blob)
        if rng.random() < 0.6:
            twin = _patch(
                rng,
                shape,
                float(np.clip(-x + rng.normal(0, 0.05), -0.9, 0.9)),
                u(0.15, 0.85),
                rx * u(0.7, 1.3),
                blob.ry * u(0.7, 1.3),
                -blob.angle,
                blob.shade,
            )
            patches.append(twin)
    for _ in range(int(rng.integers(0, 4))):
        side = 1.0 if rng.random() < 0.5 else -1.0
        shade = u(0.0, 0.15) if white > 0.5 else u(0.7, 1.0)
        patches.append(
            _patch(
                rng,
                shape,
                side * u(0.1, 0.6),
                u(0.2, 0.8),
                u(0.12, 0.3),
                u(0.015, 0.04),
                side * u(-30, 40),
                shade,
            )
        )
    for _ in range(int(rng.integers(0, 3 + round(10 * white))) if white > 0.3 else 0):
        r = u(0.015, 0.06)
        spot = _patch(rng, shape, u(-0.9, 0.9), u(0.05, 0.95), r, r * u(0.5, 1.0), u(0, 180), u(0, 0.15))
        patches.append(spot)
    return tuple(patches)


def _sample_scars(rng: np.random.Generator, shape: Individual) -> tuple[Scar, ...]:
    """Rake marks (1-4 parallel slightly curved lines) and small barnacle rings."""
    scars: list[Scar] = []
    for _ in range(min(int(rng.poisson(1.5)), 5)):
        x = rng.uniform(-0.8, 0.8)
        y = leading_edge(shape, x) + rng.uniform(0.15, 0.85) * chord_at(shape, x)
        width = float(rng.uniform(0.004, 0.01))
        if rng.random() < 0.3:
            t = np.linspace(0, 2 * np.pi, 10)
            r = rng.uniform(0.01, 0.025)
            ring = np.stack([x + r * np.cos(t), y + r * np.sin(t)], axis=1)
            scars.append(Scar(tuple((float(a), float(b)) for a, b in ring), width))
            continue
        ang, length = rng.uniform(0, np.pi), rng.uniform(0.05, 0.2)
        along, across = np.array([np.cos(ang), np.sin(ang)]), np.array([-np.sin(ang), np.cos(ang)])
        bend, gap = rng.uniform(-0.2, 0.2) * length, rng.uniform(0.012, 0.03)
        for k in range(int(rng.integers(1, 5))):
            start = np.array([x, y]) + k * gap * across
            pts = [start, start + 0.5 * length * along + bend * across, start + length * along]
            scars.append(Scar(tuple((float(a), float(b)) for a, b in pts), width))
    return tuple(scars)


def sample_individual(rng: np.random.Generator) -> Individual:
    """A new random individual: Kaggle-style id ("w_" + 7 hex digits) and fluke appearance."""
    u = rng.uniform  # scalar draws are plain Python floats
    shape = Individual(
        id=f"w_{int(rng.integers(0, 16**7)):07x}",
        chord=u(0.38, 0.58),
        lobe=u(0.3, 1.4),
        sweep=u(0.15, 0.45),
        sweep_power=u(1.4, 2.6),
        tip_curl=u(0.0, 0.2),
        tip_bluntness=u(0.55, 1.0),
        notch_depth=u(0.1, 0.35),
        notch_width=u(0.03, 0.08),
        notches=tuple(EdgeNotch(u(-0.92, 0.92), u(0.05, 0.3), u(0.01, 0.04)) for _ in range(int(rng.integers(2, 7)))),
        serration=tuple(float(v) for v in rng.random(61) ** 2),
        serration_depth=u(0.01, 0.06),
        margin=u(0.0, 0.06),
        stock_width=u(0.08, 0.14),
        patches=(),
        scars=(),
    )
    return replace(shape, patches=_sample_patches(rng, shape), scars=_sample_scars(rng, shape))


# ----------------------------------------------------------------------------- catalogue


def _rng(seed: int, *key: int) -> np.random.Generator:
    """Child generator for one purpose (key), independent of the order in which others are used."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _photo_counts(rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """Photos per individual in [min, max], long-tailed (truncated geometric, ratio 0.7)."""
    lo, hi = cfg.photos
    weights = 0.7 ** np.arange(hi - lo + 1)
    return lo + rng.choice(len(weights), size=cfg.individuals, p=weights / weights.sum())


def _plan(cfg: SynthConfig, rng: np.random.Generator) -> list[tuple[int, str, bool]]:
    """(individual index, split, is_new_whale) for every photo, before shuffling.

    The last round(new_share * individuals) individuals are new (test only); one-off train
    individuals come after the catalogue ones.
    """
    n_new = round(cfg.new_share * cfg.individuals)
    counts = _photo_counts(rng, cfg)
    entries: list[tuple[int, str, bool]] = []
    for who, n in enumerate(counts.tolist()):
        if who >= cfg.individuals - n_new:
            entries += [(who, "test", True)] * n
            continue
        n_test = min(int(np.floor(cfg.test_share * n + rng.random())), n - 1) if n >= 2 else 0
        entries += [(who, "train", False)] * (n - n_test) + [(who, "test", False)] * n_test
    n_train = sum(split == "train" for _, split, _ in entries)
    n_extra = round(cfg.train_new_whale * n_train / (1.0 - cfg.train_new_whale))
    entries += [(cfg.individuals + k, "train", True) for k in range(n_extra)]
    return entries


def _shots(individuals: list[Individual], plan: list[tuple[int, str, bool]], rng: np.random.Generator) -> list[_Shot]:
    """Name every planned photo (unique random 8-hex names) and shuffle the row order."""
    names: list[str] = []
    taken: set[str] = set()
    while len(names) < len(plan):
        name = f"{int(rng.integers(0, 2**32)):08x}.jpg"
        if name not in taken:
            taken.add(name)
            names.append(name)
    shots = [
        _Shot(name, who, split, NEW_WHALE if new else individuals[who].id, key)
        for key, ((who, split, new), name) in enumerate(zip(plan, names, strict=True))
    ]
    return [shots[i] for i in rng.permutation(len(shots))]


def _individuals(cfg: SynthConfig, count: int) -> list[Individual]:
    """count individuals, each from its own child generator; ids made unique."""
    out: list[Individual] = []
    seen: set[str] = set()
    for who in range(count):
        ind = sample_individual(_rng(cfg.seed, 1, who))
        retry = _rng(cfg.seed, 3, who)
        while ind.id in seen:
            ind = replace(ind, id=f"w_{int(retry.integers(0, 16**7)):07x}")
        seen.add(ind.id)
        out.append(ind)
    return out


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    """Write a small CSV with \\n line endings."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _render_shot(cfg: SynthConfig, ind: Individual, shot: _Shot) -> RenderedPhoto:
    """Render one planned photo with its own generator: size, pose and scene independent of identity."""
    rng = _rng(cfg.seed, 2, shot.key)
    width = int(rng.integers(cfg.size[0], cfg.size[1] + 1))
    height = max(16, round(width * rng.uniform(0.55, 0.8)))
    return render_photo(ind, rng, (width, height), greyscale=cfg.greyscale, text=cfg.text)


def generate(out: Path, cfg: SynthConfig, progress: Callable[[int, int], None] | None = None) -> SynthSummary:
    """Write a synthetic catalogue to out (must be missing or empty).

    Files: train/*.jpg, test/*.jpg, train.csv (Image,Id), sample_submission.csv (Image,Id with five
    dummy labels), answers.csv (Image,Id,Individual: true label of each test image and its real
    identity), boxes.csv (Image,x0,y0,x1,y1 for every image; x1, y1 exclusive).
    progress(done, total) is called after each image.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose a new folder for the synthetic catalogue")
    plan_rng = _rng(cfg.seed, 0)
    plan = _plan(cfg, plan_rng)
    individuals = _individuals(cfg, max(who for who, _, _ in plan) + 1)
    shots = _shots(individuals, plan, plan_rng)
    for split in ("train", "test"):
        (out / split).mkdir(parents=True, exist_ok=True)
    boxes: list[list[object]] = []
    for done, shot in enumerate(shots, start=1):
        photo = _render_shot(cfg, individuals[shot.who], shot)
        photo.image.save(out / shot.split / shot.name, "JPEG", quality=cfg.jpeg_quality, optimize=False)
        boxes.append([shot.name, *photo.box])
        if progress is not None:
            progress(done, len(shots))
    train = [s for s in shots if s.split == "train"]
    test = [s for s in shots if s.split == "test"]
    common = Counter(s.label for s in train if s.label != NEW_WHALE)
    top = sorted(common, key=lambda i: (-common[i], i))[:4]
    dummy = " ".join([NEW_WHALE, *top])
    _write_csv(out / "train.csv", ["Image", "Id"], [[s.name, s.label] for s in train])
    _write_csv(out / "sample_submission.csv", ["Image", "Id"], [[s.name, dummy] for s in test])
    _write_csv(
        out / "answers.csv",
        ["Image", "Id", "Individual"],
        [[s.name, s.label, individuals[s.who].id] for s in test],
    )
    _write_csv(out / "boxes.csv", ["Image", "x0", "y0", "x1", "y1"], boxes)
    n_new = round(cfg.new_share * cfg.individuals)
    return SynthSummary(len(train), len(test), cfg.individuals, n_new)
