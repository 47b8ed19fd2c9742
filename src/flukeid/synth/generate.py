"""Writing a synthetic fluke catalogue in the Kaggle "Humpback Whale Identification" layout.

Which individual appears in which photo and split is planned first; then each photo is rendered from its
own child generator, so the same seed gives the same bytes.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from flukeid import NEW_WHALE
from flukeid.errors import ConfigError
from flukeid.synth.individual import Individual, sample_individual
from flukeid.synth.render import RenderedPhoto, render_photo


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. photos: (min, max) photos per individual, long-tailed; size: (min, max) width px.

    new_share: share of individuals seen only in test (labelled new_whale); test_share: share of the
    photos of known individuals with >= 2 photos that go to test; train_new_whale: share of train
    rows that are one-off individuals labelled new_whale; greyscale / text: per-photo probabilities.
    Raises ConfigError naming the first field out of range or of the wrong type.
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
    """Raise ConfigError naming the first nonsensical field of cfg."""
    for name in ("individuals", "seed", "jpeg_quality"):
        if not _is_int(getattr(cfg, name)):
            raise ConfigError(f"SynthConfig.{name} must be an integer, got {getattr(cfg, name)!r}")
    for name in ("photos", "size"):
        value = getattr(cfg, name)
        if not (isinstance(value, tuple | list) and len(value) == 2 and all(map(_is_int, value))):
            raise ConfigError(f"SynthConfig.{name} must be two integers (min, max), got {value!r}")
    if cfg.individuals < 2:
        raise ConfigError(f"SynthConfig.individuals must be >= 2, got {cfg.individuals}")
    lo, hi = cfg.photos
    if lo < 1 or lo > hi:
        raise ConfigError(f"SynthConfig.photos must be (min, max) with 1 <= min <= max, got {cfg.photos}")
    for name in ("new_share", "test_share", "train_new_whale", "greyscale", "text"):
        value = getattr(cfg, name)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"SynthConfig.{name} must be in [0, 1], got {value}")
    if cfg.train_new_whale >= 1.0:
        raise ConfigError("SynthConfig.train_new_whale must be < 1: train needs known individuals")
    if round(cfg.new_share * cfg.individuals) >= cfg.individuals:
        raise ConfigError(f"SynthConfig.new_share={cfg.new_share} leaves no known individual")
    if cfg.size[0] < 32 or cfg.size[0] > cfg.size[1]:
        raise ConfigError(f"SynthConfig.size must be (min, max) width with 32 <= min <= max, got {cfg.size}")
    if cfg.seed < 0:
        raise ConfigError(f"SynthConfig.seed must be >= 0, got {cfg.seed}")
    if not 1 <= cfg.jpeg_quality <= 100:
        raise ConfigError(f"SynthConfig.jpeg_quality must be in [1, 100], got {cfg.jpeg_quality}")


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
