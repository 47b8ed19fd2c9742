"""CLI commands of the data stage: synth, check, stats, split, convert, score."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from flukeid.cli.common import check_share, parse_range
from flukeid.data.images import DEFAULT_MAX_PIXELS
from flukeid.data.wildlife import UNKNOWN_NAME
from flukeid.errors import FlukeidError
from flukeid.progress import progress_bar, stdout

CATALOGUE_HELP = "Catalogue folder, or a wildlife-datasets metadata table (.csv or .parquet)."
UNKNOWN_HELP = "Identity that marks unknown animals in a wildlife-datasets table, read as new_whale ('' for none)."


def synth(
    out: Path = typer.Argument(..., help="Folder to write the Kaggle-layout catalogue into."),
    individuals: int = typer.Option(200, help="Number of individuals."),
    photos: str = typer.Option("1-6", help="Photos per individual, MIN-MAX (long-tailed)."),
    size: str = typer.Option("192-384", help="Image width in pixels, MIN-MAX."),
    new_share: float = typer.Option(0.2, help="Share of individuals seen only in test (new_whale)."),
    seed: int = typer.Option(0, help="Random seed: same seed, same bytes."),
) -> None:
    """Generate a synthetic fluke catalogue (train/, test/, train.csv, answers.csv, boxes.csv)."""
    from flukeid.synth import SynthConfig, generate

    sizes = parse_range(photos, "--photos"), parse_range(size, "--size")
    try:
        cfg = SynthConfig(individuals=individuals, photos=sizes[0], size=sizes[1], new_share=new_share, seed=seed)
        with progress_bar("rendering flukes") as update:
            summary = generate(out, cfg, progress=update)
    except FileExistsError as exc:
        raise FlukeidError(str(exc)) from exc
    stdout.print(
        f"wrote {summary.train_images} train and {summary.test_images} test photos of "
        f"{summary.individuals} individuals ({summary.new_individuals} new) to {out}"
    )


def check(
    data: Path = typer.Argument(..., help=CATALOGUE_HELP),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, min=1, help="Refuse images with more pixels than this."),
    show: int = typer.Option(50, min=0, help="Print at most this many problems (0: all)."),
    unknown: str = typer.Option(UNKNOWN_NAME, help=UNKNOWN_HELP),
) -> None:
    """Validate a catalogue: every problem with its file and row. Exit code 1 only for fatal problems."""
    from flukeid.data.check import check_catalogue
    from flukeid.data.problems import Severity

    with progress_bar("checking images") as update:
        report = check_catalogue(data, max_pixels=max_pixels, progress=update, unknown=unknown)
    colours = {Severity.WARNING: "yellow", Severity.ERROR: "red", Severity.FATAL: "bold red"}
    shown = report.problems if show == 0 else report.problems[:show]
    for problem in shown:
        stdout.print(f"[{colours[problem.severity]}]{problem}[/]", highlight=False, soft_wrap=True)
    if len(shown) < len(report.problems):
        stdout.print(f"... and {len(report.problems) - len(shown)} more (use --show 0 for all)")
    usable = len(report.usable_labels())
    layout = report.catalogue.layout.value if report.catalogue else "?"
    stdout.print(
        f"{data} ({layout} layout): {usable} usable labelled photos, {len(report.infos)} images decoded; "
        f"{report.count(Severity.FATAL)} fatal, {report.count(Severity.ERROR)} errors, "
        f"{report.count(Severity.WARNING)} warnings"
    )
    if report.fatal:
        raise typer.Exit(1)


def stats(
    data: Path = typer.Argument(..., help=CATALOGUE_HELP),
    plot: Path = typer.Option(Path("stats.png"), help="Where to write the photos-per-individual plot."),
    unknown: str = typer.Option(UNKNOWN_NAME, help=UNKNOWN_HELP),
) -> None:
    """Count images, individuals, singletons and new_whale photos; plot photos per individual."""
    from flukeid.data.catalogue import load_catalogue
    from flukeid.data.stats import labelled_stats
    from flukeid.report.plots import plot_photos_per_id

    if plot.is_dir():
        raise typer.BadParameter(f"{plot} is a folder: give a file name like {plot / 'stats.png'}", param_hint="--plot")
    result = labelled_stats(load_catalogue(data, unknown))
    table = Table(title=f"{data}", show_header=False)
    for name, value in [
        ("labelled images", result.images),
        ("test images", result.test_images),
        ("individuals", result.individuals),
        ("singletons", f"{result.singletons} ({result.singleton_share:.1%} of individuals)"),
        ("new_whale images", f"{result.new_whale_images} ({result.new_whale_share:.1%})"),
    ]:
        table.add_row(name, str(value))
    hist = Table("photos per individual", "individuals")
    for photos, count in result.photos_per_id.items():
        hist.add_row(str(photos), str(count))
    stdout.print(table, hist)
    stdout.print(f"plot: {plot_photos_per_id(result, plot)}")


def split(
    data: Path = typer.Argument(..., help="Catalogue folder."),
    out: Path = typer.Argument(..., help="Folder for the Kaggle-layout train/test pair."),
    kind: str = typer.Option("whale", help="closed, open, disjoint or whale."),
    seed: int = typer.Option(0, help="Random seed."),
    query_share: float = typer.Option(0.2, help="closed/open: share of each individual's photos as queries."),
    unknown_share: float = typer.Option(0.25, help="open/whale/disjoint: share of individuals held out."),
) -> None:
    """Split a catalogue into train/test (+ private answers.csv) reproducibly."""
    from flukeid.config import check_choice
    from flukeid.data.check import check_catalogue
    from flukeid.data.splits import SplitKind, split_catalogue

    check_share(query_share, "--query-share")
    check_share(unknown_share, "--unknown-share")
    check_choice("--kind", kind, [k.value for k in SplitKind])
    with progress_bar("checking images") as update:
        report = check_catalogue(data, progress=update)
    result = split_catalogue(report, out, kind, seed, query_share, unknown_share)
    stdout.print(
        f"{kind} split (seed {seed}): {len(result.train)} catalogue photos, {len(result.test)} queries "
        f"({result.new_whale_share:.0%} new_whale) -> {out}; answers in {out / 'answers.csv'}"
    )


def convert(
    data: Path = typer.Argument(..., help=CATALOGUE_HELP),
    out: Path = typer.Argument(..., help="New (or empty) folder to write."),
    to: str = typer.Option(..., "--to", help="Layout to write: kaggle (train.csv, train/, boxes.csv) or wildlife."),
    unknown: str = typer.Option(
        UNKNOWN_NAME, help=UNKNOWN_HELP + " A written table names them 'unknown', as wildlife-datasets does."
    ),
) -> None:
    """Write a catalogue in another layout: Kaggle or a wildlife-datasets table (metadata.csv), with its boxes."""
    from flukeid.data.check import check_catalogue
    from flukeid.data.convert import Target, check_convert_target, convert_catalogue

    valid = [t.value for t in Target]
    if to not in valid:
        raise FlukeidError(f"--to {to!r} is not one of {', '.join(valid)}")
    check_convert_target(out)  # before checking every photo
    with progress_bar("checking images") as update:
        report = check_catalogue(data, progress=update, unknown=unknown)
    with progress_bar("copying photos") as update:
        result = convert_catalogue(report, out, to, unknown, update)
    stdout.print(
        f"{result.photos} photos of {result.individuals} individuals ({result.new_whale} new_whale, "
        f"{result.boxes} with a box) -> {out} ({result.target.value} layout)"
        + (f"; {result.skipped} unusable row(s) left behind (see flukeid check)" if result.skipped else "")
    )


def score(
    submission: Path = typer.Argument(..., help="submission.csv (Image,Id with up to 5 labels)."),
    answers: Path = typer.Argument(..., help="answers.csv (Image,Id[,Individual])."),
) -> None:
    """Score a Kaggle submission: MAP@5 (refuses malformed files with the reason)."""
    from flukeid.data.submission import score_submission

    stdout.print(f"MAP@5 {score_submission(submission, answers):.4f}")
