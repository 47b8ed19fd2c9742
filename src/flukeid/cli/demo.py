"""`flukeid demo`: the whole path on synthetic flukes."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(Path("demo-out"), help="Working folder for the demo."),
    seed: int = typer.Option(0, help="Random seed."),
    quick: bool = typer.Option(False, help="A tiny untrained-size run in seconds (for tests)."),
) -> None:
    """Run the whole path on synthetic flukes: synth, check, train, gallery, identify, score, report."""
    from flukeid.demo import run_demo

    run_demo(out, seed=seed, quick=quick)
