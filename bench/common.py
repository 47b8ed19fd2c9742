"""What the benchmark scripts share: where a named catalogue lies."""

from __future__ import annotations

from pathlib import Path

from flukeid.data.synth import SynthConfig, generate

SYNTHETIC = SynthConfig(individuals=160, photos=(2, 6), size=(192, 320), seed=123, new_share=0.0)
"""The synthetic benchmark catalogue: every individual in train.csv, split later like any catalogue."""


def catalogue(name: str, work: Path) -> Path:
    """'synthetic' (generated once into ``work``) or a catalogue folder."""
    if name != "synthetic":
        return Path(name)
    root = work / "synthetic"
    if not (root / "train.csv").is_file():
        generate(root, SYNTHETIC)
    return root
