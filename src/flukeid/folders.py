"""Folders written whole or not at all: fill a temporary sibling, then rename it into place.

Model, detector and gallery folders are written this way, so a reader (or a process killed mid-write) sees the old
folder or the new one, never half of one. A killed writer leaves its temporary sibling behind
(``.<name>.<random>``); ``leftover_folders`` finds them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _prefix(path: Path) -> str:
    return f".{path.name}."


@contextmanager
def replacing_folder(path: Path) -> Iterator[Path]:
    """A temporary sibling folder to fill; it replaces ``path`` whole when the block ends (readers never see a
    half-written or half-deleted folder), and is removed if the block fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(path), dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap_in(tmp, path)


def _swap_in(new: Path, path: Path) -> None:
    """Rename ``new`` to ``path``; an existing ``path`` is first renamed aside and deleted afterwards."""
    old = None
    if path.exists() or path.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f"{_prefix(path)}old.", dir=path.parent))
        old.rmdir()  # a free unique name: renaming onto it works for a folder or a file
        os.replace(path, old)
    os.replace(new, path)
    _sync(path.parent)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def _sync(folder: Path) -> None:
    """Make the renames in ``folder`` durable (where the platform can open a folder to sync it)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def leftover_folders(path: Path) -> list[Path]:
    """Temporary siblings of ``path`` left by a writer that was killed before it finished, sorted."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(_prefix(path)) and p.is_dir())


def link_or_copy(source: Path, target: Path) -> None:
    """Put a file at ``target`` (its folder made): a hard link (no extra disk), or a copy where linking fails."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
