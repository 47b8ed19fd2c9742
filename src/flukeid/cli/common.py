"""What the CLI commands share: root options, option checks, progress bars over library calls, and errors as one
red line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import typer
from rich.markup import escape

from flukeid.errors import FlukeidError
from flukeid.progress import console, progress_bar, progress_bar_if_used

INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT), as shells report it."""


@dataclass
class CliState:
    """What the root options decide for the whole run; `run` reads it back when a command fails."""

    debug: bool = False


def parse_range(text: str, name: str) -> tuple[int, int]:
    """'1-6' -> (1, 6); '3' -> (3, 3)."""
    try:
        low, _, high = text.partition("-")
        return int(low), int(high or low)
    except ValueError:
        raise typer.BadParameter(f"expected MIN-MAX like 1-6, found {text!r}", param_hint=name) from None


def check_share(value: float, name: str) -> None:
    """A share of photos or individuals: in [0, 1)."""
    if not 0 <= value < 1:
        raise typer.BadParameter(f"a share in [0, 1) is needed, found {value}", param_hint=name)


def checked_labels(data: Path) -> pd.DataFrame:
    """`flukeid.data.check.usable_labels` of a catalogue, with a progress bar."""
    from flukeid.data.check import usable_labels

    with progress_bar("checking images") as update:
        return usable_labels(data, update)


def cropped_rows(labels: pd.DataFrame, model: Path | None, crop: Path | None = None) -> pd.DataFrame:
    """`flukeid.detect.crop.crop_rows`, with a progress bar when there is a detector to crop with."""
    from flukeid.detect.crop import crop_rows

    with progress_bar_if_used("cropping") as update:
        return crop_rows(labels, model, crop, update)


def cropped_photos(paths: list[Path], model: Path | None, crop: Path | None = None) -> list[Path]:
    """`flukeid.detect.crop.crop_queries`, with a progress bar when there is a detector to crop with."""
    from flukeid.detect.crop import crop_queries

    with progress_bar_if_used("cropping") as update:
        return crop_queries(paths, model, crop, update)


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


def run(app: typer.Typer, args: list[str]) -> int:
    """Run the command line; every failure becomes one ``error:`` line and an exit code (tracebacks with --debug).

    ``--debug`` is the root option's value alone: the root callback stores it in ``state`` before any command
    runs, and what fails before that callback (usage errors) is reported as one line with or without it."""
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
