"""The ``flukeid`` command line: each command parses, calls one library function, prints."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from flukeid.cli_detect import register as register_detect
from flukeid.cli_identify import register as register_identify
from flukeid.cli_serve import register as register_serve
from flukeid.data.images import DEFAULT_MAX_PIXELS
from flukeid.embed_ray import RAY_HELP
from flukeid.errors import FlukeidError
from flukeid.progress import console, progress_bar, setup_logging, stdout

INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT), as shells report it."""

app = typer.Typer(
    help="Identify individual whales (and other marked animals) from photos.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _range(text: str, name: str) -> tuple[int, int]:
    """'1-6' -> (1, 6); '3' -> (3, 3)."""
    try:
        low, _, high = text.partition("-")
        return int(low), int(high or low)
    except ValueError:
        raise typer.BadParameter(f"expected MIN-MAX like 1-6, found {text!r}", param_hint=name) from None


@dataclass
class CliState:
    """What the root options decide for the whole run; `main` reads it back when a command fails."""

    debug: bool = False


def _share(value: float, name: str) -> None:
    """A share of photos or individuals: in [0, 1)."""
    if not 0 <= value < 1:
        raise typer.BadParameter(f"a share in [0, 1) is needed, found {value}", param_hint=name)


@app.callback()
def _root(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
) -> None:
    setup_logging(verbose)
    ctx.ensure_object(CliState).debug = debug


@app.command()
def synth(
    out: Path = typer.Argument(..., help="Folder to write the Kaggle-layout catalogue into."),
    individuals: int = typer.Option(200, help="Number of individuals."),
    photos: str = typer.Option("1-6", help="Photos per individual, MIN-MAX (long-tailed)."),
    size: str = typer.Option("192-384", help="Image width in pixels, MIN-MAX."),
    new_share: float = typer.Option(0.2, help="Share of individuals seen only in test (new_whale)."),
    seed: int = typer.Option(0, help="Random seed: same seed, same bytes."),
) -> None:
    """Generate a synthetic fluke catalogue (train/, test/, train.csv, answers.csv, boxes.csv)."""
    from flukeid.data.synth import SynthConfig, generate

    sizes = _range(photos, "--photos"), _range(size, "--size")
    try:
        cfg = SynthConfig(individuals=individuals, photos=sizes[0], size=sizes[1], new_share=new_share, seed=seed)
        with progress_bar("rendering flukes") as update:
            summary = generate(out, cfg, progress=update)
    except (ValueError, FileExistsError) as exc:
        raise FlukeidError(str(exc)) from exc
    stdout.print(
        f"wrote {summary.train_images} train and {summary.test_images} test photos of "
        f"{summary.individuals} individuals ({summary.new_individuals} new) to {out}"
    )


@app.command()
def check(
    data: Path = typer.Argument(..., help="Catalogue folder."),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, min=1, help="Refuse images with more pixels than this."),
    show: int = typer.Option(50, min=0, help="Print at most this many problems (0: all)."),
) -> None:
    """Validate a catalogue: every problem with its file and row. Exit code 1 only for fatal problems."""
    from flukeid.data.check import check_catalogue
    from flukeid.data.problems import Severity

    with progress_bar("checking images") as update:
        report = check_catalogue(data, max_pixels=max_pixels, progress=update)
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


@app.command()
def stats(
    data: Path = typer.Argument(..., help="Catalogue folder."),
    plot: Path = typer.Option(Path("stats.png"), help="Where to write the photos-per-individual plot."),
) -> None:
    """Count images, individuals, singletons and new_whale photos; plot photos per individual."""
    from flukeid.data.catalogue import load_catalogue
    from flukeid.data.stats import catalogue_stats
    from flukeid.report.plots import plot_photos_per_id

    if plot.is_dir():
        raise typer.BadParameter(f"{plot} is a folder: give a file name like {plot / 'stats.png'}", param_hint="--plot")
    cat = load_catalogue(data)
    result = catalogue_stats(cat.labels[cat.labels["Id"] != ""], test_images=len(cat.test))
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


@app.command()
def split(
    data: Path = typer.Argument(..., help="Catalogue folder."),
    out: Path = typer.Argument(..., help="Folder for the Kaggle-layout train/test pair."),
    kind: str = typer.Option("whale", help="closed, open, disjoint or whale."),
    seed: int = typer.Option(0, help="Random seed."),
    query_share: float = typer.Option(0.2, help="closed/open: share of each individual's photos as queries."),
    unknown_share: float = typer.Option(0.25, help="open/whale/disjoint: share of individuals held out."),
) -> None:
    """Split a catalogue into train/test (+ private answers.csv) reproducibly."""
    from flukeid.data.boxes import read_boxes
    from flukeid.data.check import check_catalogue
    from flukeid.data.splits import SplitKind, make_split, write_split

    _share(query_share, "--query-share")
    _share(unknown_share, "--unknown-share")
    valid = [k.value for k in SplitKind]
    if kind not in valid:
        raise FlukeidError(f"--kind {kind!r} is not one of {', '.join(valid)}")
    with progress_bar("checking images") as update:
        report = check_catalogue(data, progress=update)
    result = make_split(report.require_usable(), kind, seed, query_share, unknown_share)
    boxes_file = report.catalogue.boxes_file if report.catalogue else None
    write_split(result, out, boxes=read_boxes(boxes_file).boxes if boxes_file else None)
    stdout.print(
        f"{kind} split (seed {seed}): {len(result.train)} catalogue photos, {len(result.test)} queries "
        f"({result.new_whale_share:.0%} new_whale) -> {out}; answers in {out / 'answers.csv'}"
    )


@app.command()
def score(
    submission: Path = typer.Argument(..., help="submission.csv (Image,Id with up to 5 labels)."),
    answers: Path = typer.Argument(..., help="answers.csv (Image,Id[,Individual])."),
) -> None:
    """Score a Kaggle submission: MAP@5 (refuses malformed files with the reason)."""
    from flukeid.data.submission import score_submission

    stdout.print(f"MAP@5 {score_submission(submission, answers):.4f}")


@app.command("train")
def train_command(
    data: Path = typer.Argument(..., help="Catalogue folder."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Training YAML (see configs/)."),
    out: Path = typer.Option(Path("runs/model"), help="Run folder: checkpoints, logs, and model/."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set loss.name=triplet."),
    epochs: int | None = typer.Option(None, help="Override epochs."),
    devices: str | None = typer.Option(None, help="Lightning devices, e.g. 2."),
    strategy: str | None = typer.Option(None, help="Lightning strategy, e.g. ddp."),
    resume: bool = typer.Option(True, help="Continue from the run folder's last checkpoint if there is one."),
    seed: int | None = typer.Option(None, help="Random seed."),
    crop: Path | None = typer.Option(None, help="Detector folder: train on fluke crops (the model keeps it)."),
    pseudo_rounds: int = typer.Option(0, min=0, help="Noisy-student rounds: label --unlabelled photos, retrain."),
    unlabelled: list[Path] = typer.Option([], help="Unlabelled photos or folders for --pseudo-rounds."),
    pseudo_threshold: float = typer.Option(0.9, help="Keep a pseudo-label when P(best match right) >= this."),
) -> None:
    """Train an identity embedding model on a catalogue; writes OUT/model (load with one call)."""
    from flukeid.cli_detect import crop_rows
    from flukeid.cli_identify import usable_labels
    from flukeid.config import load_config, parse_overrides
    from flukeid.detect.model import attach_detector
    from flukeid.train.config import TrainConfig
    from flukeid.train.engine import train

    options = {"epochs": epochs, "devices": devices, "strategy": strategy, "seed": seed}
    overrides = {k: v for k, v in options.items() if v is not None} | parse_overrides(set_)
    cfg = load_config(TrainConfig, config, overrides)
    labels = crop_rows(usable_labels(data), None, crop)
    if pseudo_rounds > 0:
        if not unlabelled:
            raise FlukeidError("--pseudo-rounds needs --unlabelled photos or folders")
        from flukeid.cli_detect import crop_queries
        from flukeid.cli_identify import image_paths
        from flukeid.train.pseudo import PSEUDO_FILE, train_with_pseudo_labels

        photos = crop_queries(image_paths(unlabelled), None, crop)
        run = train_with_pseudo_labels(labels, photos, cfg, out, pseudo_rounds, pseudo_threshold)
        result = run.rounds[-1]
        stdout.print(f"{len(run.labels)} pseudo-labels over {pseudo_rounds} round(s): {out / PSEUDO_FILE}")
        result = dataclasses.replace(result, model_dir=run.model_dir)
    else:
        result = train(labels, cfg, out, resume=resume)
    if crop is not None:
        attach_detector(result.model_dir, crop)
    score = f"validation MAP@5 {result.val_map5:.3f}, " if result.val_map5 is not None else ""
    stdout.print(f"{score}new_whale threshold {result.threshold}; model: {result.model_dir}")


@app.command("distill")
def distill_command(
    teacher: Path = typer.Argument(..., help="Teacher model directory."),
    data: Path = typer.Argument(..., help="Catalogue folder to distil on."),
    student: str = typer.Option("mobilenetv2", help="Student backbone (e.g. mobilenetv2, efficientnet_lite0)."),
    ensemble_with: list[Path] = typer.Option([], help="More teacher models: the student learns from the ensemble."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Training YAML for the student's own loss."),
    out: Path = typer.Option(Path("runs/student"), help="Run folder: checkpoints, logs, and model/."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set epochs=5."),
    similarity_weight: float = typer.Option(10.0, min=0, help="Weight of matching the teachers' cosine similarities."),
    kl_weight: float = typer.Option(1.0, min=0, help="Weight of the soft-label KL (teachers with a classifier head)."),
    temperature: float = typer.Option(4.0, help="Soft-label temperature."),
) -> None:
    """Distil a teacher (or an ensemble) into a small student; report kept MAP@5 and CPU speed-up."""
    from flukeid.cli_detect import crop_rows
    from flukeid.cli_identify import usable_labels
    from flukeid.config import load_config, parse_overrides
    from flukeid.detect.model import attach_detector, model_detector
    from flukeid.train.config import TrainConfig
    from flukeid.train.distill import distill_model
    from flukeid.train.teacher import DistillConfig

    if not temperature > 0:
        raise typer.BadParameter(f"must be > 0, found {temperature}", param_hint="--temperature")
    cfg = load_config(TrainConfig, config, {"model.backbone": student} | parse_overrides(set_))
    labels = crop_rows(usable_labels(data), teacher)  # the student sees what the teacher saw
    weights = DistillConfig(similarity_weight, kl_weight, temperature)
    result = distill_model([teacher, *ensemble_with], labels, cfg, out, weights)
    detector = model_detector(teacher)
    if detector is not None:
        attach_detector(result.model_dir, detector.path)

    def show(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    kept = f" ({100 * result.student_map5 / result.teacher_map5:.0f}% kept)" if result.teacher_map5 else ""
    stdout.print(
        f"validation MAP@5: student {show(result.student_map5)}, teacher {show(result.teacher_map5)}{kept}\n"
        f"CPU embedding: student {result.student_images_per_s:.1f} img/s, teacher {result.teacher_images_per_s:.1f}"
        f" img/s ({result.student_images_per_s / max(result.teacher_images_per_s, 1e-9):.1f}x)\n"
        f"student model: {result.model_dir}"
    )


def _some_failures(failed: dict[Path, str], shown: int = 5) -> str:
    """Unreadable photos and why, on one line (the first ``shown``)."""
    reasons = [why if str(path) in why else f"{path}: {why}" for path, why in failed.items()]
    more = f"; and {len(failed) - shown} more" if len(failed) > shown else ""
    return "; ".join(reasons[:shown]) + more


@app.command("embed")
def embed_command(
    model: Path = typer.Argument(..., help="Model directory."),
    inputs: list[Path] = typer.Argument(..., help="Photos, folders of photos, or catalogue folders."),
    out: Path = typer.Option(..., "--out", help="Embeddings file (.npz); run again with it to resume or add photos."),
    ray: str | None = typer.Option(None, "--ray", metavar="ADDRESS", help=RAY_HELP),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Photos embedded per batch."),
) -> None:
    """Embed photos into an embeddings file (image, path, content sha1, individual, vector), cropped by the model's
    detector as identify crops them. Photos the file holds already (same path, content and model) are skipped;
    progress is kept as it goes, so an interrupted run resumes. Unreadable photos are reported and left out."""
    from contextlib import nullcontext

    from flukeid.detect.model import model_detector
    from flukeid.embed import check_embeddings_path, embed_to_file, local_batches, photo_inputs
    from flukeid.models.artifact import load_model

    check_embeddings_path(out)
    artifact = load_model(model)
    photos = photo_inputs(inputs)
    detector = model_detector(model)
    if ray is None:
        batches, session = local_batches(artifact, detector, batch_size), nullcontext()
    else:
        from flukeid.embed_ray import ray_batches, ray_session

        batches, session = ray_batches(model, detector.path if detector else None, batch_size), ray_session(ray)
    with session, progress_bar("embedding") as update:
        run = embed_to_file(artifact.model_id, artifact.model.dim, photos, out, batches, progress=update)
    stdout.print(
        f"{run.embedded} photo(s) embedded, {run.skipped} already in {out} (skipped), {len(run.failed)} unreadable; "
        f"{out} holds {run.total} photo(s) of model {artifact.model_id}"
    )
    if run.failed:
        stdout.print(f"unreadable (tried again next run): {escape(_some_failures(run.failed))}", highlight=False)


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-out"), help="Working folder for the demo."),
    seed: int = typer.Option(0, help="Random seed."),
    quick: bool = typer.Option(False, help="A tiny untrained-size run in seconds (for tests)."),
) -> None:
    """Run the whole path on synthetic flukes: synth, check, train, gallery, identify, score, report."""
    from flukeid.demo import run_demo

    run_demo(out, seed=seed, quick=quick)


register_identify(app)
register_detect(app)
register_serve(app)


def _one_line(text: str) -> str:
    """Whitespace runs (newlines included) as one space; rich markup escaped, so paths like a[1] print as they are."""
    return escape(" ".join(text.split()))


def _describe(exc: BaseException) -> str:
    """A line for an exception flukeid did not anticipate: what the system said, not a Python traceback."""
    if isinstance(exc, OSError) and exc.strerror:
        files = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        return f"{exc.strerror}{': ' + files if files else ''}"
    if isinstance(exc, MemoryError):
        return "out of memory"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _error(message: str) -> None:
    console.print(f"[bold red]error:[/] {_one_line(message)}", highlight=False, soft_wrap=True)


def _run(args: list[str]) -> int:
    """Run the command line; every failure becomes one ``error:`` line and an exit code (tracebacks with --debug)."""
    state = CliState()
    try:
        result = app(args=args, standalone_mode=False, prog_name="flukeid", obj=state)
    except FlukeidError as exc:
        if state.debug:
            raise
        _error(str(exc))
        return 1
    except (typer.Abort, KeyboardInterrupt):
        if state.debug:
            raise
        _error("interrupted")
        return INTERRUPTED
    except typer.TyperException as exc:  # usage errors of typer's own click
        # a bare `flukeid` shows the help; matched by name, as newer typers vendor click under another module
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # type: ignore[attr-defined]
            return int(getattr(exc, "exit_code", 2))
        context = getattr(exc, "ctx", None)
        command = context.command_path if context is not None else "flukeid"
        _error(f"{exc.format_message()} (see {command} --help)")  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 2))
    except Exception as exc:  # anything flukeid did not anticipate: disk full, permission denied, a bug
        if state.debug:
            raise
        _error(f"{_describe(exc)} (rerun with --debug for the traceback)")
        return 1
    if result == INTERRUPTED:  # typer turns Ctrl-C into exit code 130 without a word
        _error("interrupted")
    return result if isinstance(result, int) else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: any error becomes one red ``error:`` line and a non-zero exit code (a traceback with --debug);
    Ctrl-C exits with 130. Called without ``argv`` (the console script, ``python -m flukeid``) it exits."""
    code = _run(sys.argv[1:] if argv is None else argv)
    if argv is None:
        sys.exit(code)
    return code
