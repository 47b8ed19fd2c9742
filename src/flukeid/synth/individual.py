"""A synthetic individual: its fluke outline, pigment patches and scars, drawn from a random generator.

Fluke-local coordinates: x runs along the span from -1 (left tip, as photographed) to 1 (right tip);
y points up, 0 at the leading edge where the tail stock joins; lengths are in half-spans. The
photographer sees the underside of the raised fluke, trailing edge (with the notches) on top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

_EDGE_POINTS = 401
"""Points along each edge of the outline polygons."""


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
    """One whale: its id and the parameters of its fluke (fluke-local coordinates, see above).

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


# ----------------------------------------------------------------------------- fluke geometry


def leading_edge(ind: Individual, x: np.ndarray) -> np.ndarray:
    """Height of the leading edge above the root at span positions x (same shape as x)."""
    t = np.abs(x)
    return ind.sweep * t**ind.sweep_power + ind.tip_curl * t**8


def chord_at(ind: Individual, x: np.ndarray) -> np.ndarray:
    """Chord (leading to trailing edge) before notches, at span positions x."""
    t = np.clip(np.abs(x), 0.0, 1.0)
    return ind.chord * (1.0 - t) ** ind.tip_bluntness * (1.0 + ind.lobe * t)


def trailing_edge(ind: Individual, x: np.ndarray) -> np.ndarray:
    """Height of the trailing edge (median notch, signature notches, serration) at x."""
    lead, chord = leading_edge(ind, x), chord_at(ind, x)
    cut = ind.notch_depth * ind.chord * np.clip(1.0 - np.abs(x) / ind.notch_width, 0.0, None) ** 1.5
    for notch in ind.notches:
        cut = cut + notch.depth * ind.chord * np.exp(-(((x - notch.x) / notch.width) ** 2))
    grid = np.linspace(-1.0, 1.0, len(ind.serration))
    cut = cut + np.interp(x, grid, np.asarray(ind.serration)) * ind.serration_depth * ind.chord
    return lead + chord - np.minimum(cut, 0.8 * chord)


def fluke_outline(ind: Individual) -> np.ndarray:
    """Closed fluke polygon in local coordinates, (N, 2): leading edge left->right, then trailing."""
    xs = np.linspace(-1.0, 1.0, _EDGE_POINTS)
    lead = np.stack([xs, leading_edge(ind, xs)], axis=1)
    trail = np.stack([xs[::-1], trailing_edge(ind, xs[::-1])], axis=1)
    return np.concatenate([lead, trail[1:-1]])


def stock_outline(ind: Individual, length: float) -> np.ndarray:
    """Tail-stock polygon in local coordinates, (N, 2), from inside the fluke down to y=-length."""
    top = 0.3 * ind.chord
    ys = np.linspace(top, -length, 12)
    flare = ind.stock_width * (0.8 + 1.2 * ((top - ys) / (top + 0.5)) ** 2)
    return np.concatenate([np.stack([-flare, ys], 1), np.stack([flare[::-1], ys[::-1]], 1)])


def margin_outline(ind: Individual) -> np.ndarray:
    """Polygon (2 * N, 2) of the dark rim along the trailing edge: trailing edge left->right, then its inner
    border (ind.margin chords below it, never below the leading edge) right->left."""
    xs = np.linspace(-1.0, 1.0, _EDGE_POINTS)
    trail = trailing_edge(ind, xs)
    inner = np.maximum(trail - ind.margin * ind.chord, leading_edge(ind, xs))
    return np.concatenate([np.stack([xs, trail], 1), np.stack([xs, inner], 1)[::-1]])


def patch_outline(patch: Patch) -> np.ndarray:
    """Polygon (48, 2) of a pigment patch: its ellipse, radius scaled by the periodic wobble."""
    t = np.linspace(0.0, 2 * np.pi, 48, endpoint=False)
    knots = np.linspace(0.0, 2 * np.pi, len(patch.wobble) + 1)
    radius = np.interp(t, knots, (*patch.wobble, patch.wobble[0])) if patch.wobble else np.ones_like(t)
    c, s = math.cos(math.radians(patch.angle)), math.sin(math.radians(patch.angle))
    ex, ey = patch.rx * radius * np.cos(t), patch.ry * radius * np.sin(t)
    return np.stack([patch.x + ex * c - ey * s, patch.y + ex * s + ey * c], axis=1)


# ----------------------------------------------------------------------------- sampling


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
