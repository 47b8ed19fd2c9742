"""Rich progress bars and logging for long loops; library code only sees a ``(done, total)`` callback."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

console = Console(stderr=True)
"""Progress, logs and errors go to stderr."""
stdout = Console(soft_wrap=True)
"""Results go to stdout, so they can be piped."""


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
        force=True,
    )
    for noisy in ("matplotlib", "PIL", "lightning", "lightning.pytorch", "faiss", "faiss.loader", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """Yield a ``(done, total)`` callback that drives one rich progress bar."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@contextmanager
def progress_bar_if_used(description: str) -> Iterator[Callable[[int, int], None]]:
    """Like `progress_bar`, but the bar appears at the callback's first call: none for work that turns out to be
    nothing to do (cropping without a detector)."""
    with ExitStack() as stack:
        bars: list[Callable[[int, int], None]] = []

        def update(done: int, total: int) -> None:
            if not bars:
                bars.append(stack.enter_context(progress_bar(description)))
            bars[0](done, total)

        yield update
