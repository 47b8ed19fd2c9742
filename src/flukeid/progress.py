"""Rich progress bars and logging for long loops; library code only sees a ``(done, total)`` callback."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from rich import progress as rich_progress
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

_LIGHTNING_NOISE = (
    r".*ckpt_path.*",
    r".*LeafSpec.*",
    r".*does not have many workers.*",
    r".*deterministic.*",
    r".*exists and is not empty.*",  # a resumed run's folders hold files: expected
)

Progress = Callable[[int, int], None]
"""How long work reports how far it is: called with (done, total) as it goes; every library stage that takes a while
accepts one (`progress_bar` makes one that draws a bar). Lightning's training loops draw their own bar instead
(`progress: bool` there)."""

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
def progress_bar(description: str) -> Iterator[Progress]:
    """Yield a ``(done, total)`` callback that drives one rich progress bar."""
    with rich_progress.Progress(
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
def quiet_lightning() -> Iterator[None]:
    """Lightning's tips (its logger below WARNING) and expected warnings off for the block, restored after; never
    for the whole process."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for noise in _LIGHTNING_NOISE:
                warnings.filterwarnings("ignore", message=noise)
            yield
    finally:
        logger.setLevel(level)


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
