"""The CLI's shared plumbing: option checks, and the tests/conftest.py fixtures reaching tests/cli/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import typer

from flukeid.cli.common import check_share, parse_range


def test_tests_conftest_applies_here(tmp_path: Path) -> None:
    assert os.environ["FLUKEID_CACHE"] == str(tmp_path / "cache")  # its autouse fixture ran


def test_ranges_and_shares() -> None:
    assert parse_range("1-6", "--photos") == (1, 6) and parse_range("3", "--photos") == (3, 3)
    with pytest.raises(typer.BadParameter, match="expected MIN-MAX like 1-6, found 'a-b'"):
        parse_range("a-b", "--photos")
    check_share(0.0, "--query-share")
    for bad in (1.0, -0.1):
        with pytest.raises(typer.BadParameter, match="a share in \\[0, 1\\) is needed"):
            check_share(bad, "--query-share")


def test_a_progress_bar_if_used_starts_at_the_first_update(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib

    from flukeid import progress

    started: list[tuple[int, int]] = []

    @contextlib.contextmanager
    def bar(description: str):  # type: ignore[no-untyped-def]
        yield lambda done, total: started.append((done, total))

    monkeypatch.setattr(progress, "progress_bar", bar)
    with progress.progress_bar_if_used("cropping"):
        pass
    assert started == []
    with progress.progress_bar_if_used("cropping") as update:
        update(0, 2)
        update(2, 2)
    assert started == [(0, 2), (2, 2)]
