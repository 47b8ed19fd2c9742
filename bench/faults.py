"""Fault and bad-input suite: the real CLI (in subprocesses) and the curator service over inputs that go wrong.

    python bench/faults.py [--keep] [--only SUBSTR] [--jobs 2]

Builds a tiny setup in a temporary folder (a synthetic catalogue of ~20 photos at 48x64, an untrained tiny
model, its gallery, a service catalogue), then runs every case and classifies it:

- clear: non-zero exit, no traceback, one ``error:`` line (or `check`'s report) naming the file, field or value;
- unclear: refused without a traceback, but the message does not say which file or value (or is a bare
  ``SomeError: ...`` line);
- handled: exit 0 (HTTP 2xx) and the result is right (bad photo skipped and reported, the rest processed);
- wrong: exit 0 with a wrong result, or a valid input refused; hang: no answer within the case's time;
- traceback: any ``Traceback`` in the output, or an HTTP 500;
- data lost: an input (catalogue, model, gallery, service database) changed or deleted when it should not.

Prints the summary line for bench/RESULTS.md and a per-case table; exits 1 on any traceback, hang or data loss.
The cases go beyond tests/cli/test_cli_faults.py and tests/serve/ (different inputs).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from faults_cases import Case, Setup, cli_cases

import flukeid

SRC = Path(flukeid.__file__).parents[1]
TIMEOUT_S = 120
BARE_EXCEPTION = re.compile(r"^(error: )?[A-Z]\w*(Error|Exception)\b")
TRACE = "Traceback"


@dataclass(frozen=True)
class Outcome:
    """One case's result: ``kind`` is clear, unclear, handled, wrong, hang or traceback."""

    name: str
    request: str
    kind: str
    message: str
    data_lost: str = ""  # what changed or went missing, if anything


SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
"""SQLite's transient files: a checkpoint folds them into the database and deletes them, which loses nothing (a
change to the database itself is still caught)."""


def snapshot(roots: Iterable[Path], skip: Iterable[Path] = ()) -> dict[str, str]:
    """sha1 of every file under ``roots`` (paths under ``skip`` left out), by path."""
    skipped = [Path(s).resolve() for s in skip]
    hashes: dict[str, str] = {}
    for root in roots:
        for path in sorted(Path(root).rglob("*")):
            if path.name.endswith(SQLITE_SIDECARS) or any(path.resolve().is_relative_to(s) for s in skipped):
                continue
            if path.is_file():
                hashes[str(path)] = hashlib.sha1(path.read_bytes()).hexdigest()
    return hashes


def lost(before: dict[str, str], after: dict[str, str]) -> str:
    """Files changed or deleted between two snapshots (new files are not a loss)."""
    gone = [p for p in before if p not in after]
    changed = [p for p in before if p in after and after[p] != before[p]]
    parts = [f"deleted {Path(p).name}" for p in gone[:3]] + [f"changed {Path(p).name}" for p in changed[:3]]
    extra = len(gone) + len(changed) - len(parts)
    return ", ".join(parts) + (f" (+{extra} more)" if extra > 0 else "")


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def last_line(text: str) -> str:
    """A command's summary: its last line of output."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def error_message(stdout: str, stderr: str) -> str:
    """The message a refusal gave: the ``error:`` line, else (``check``) the first problem on stdout."""
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    if errors:
        return errors[0]
    return first_line(stderr) or first_line(stdout)


def classify_exit(case: Case, code: int, stdout: str, stderr: str) -> tuple[str, str]:
    """(kind, message) of a finished CLI run."""
    if TRACE in stdout + stderr:
        return "traceback", first_line(stderr[stderr.rfind(TRACE) :].splitlines()[-1]) if stderr else first_line(stdout)
    if code == 0:
        if case.expect_ok is False:
            return "wrong", f"accepted: {first_line(stdout)}"
        problem = case.check(stdout) if case.check else None
        return ("wrong", problem) if problem else ("handled", last_line(stdout))
    message = error_message(stdout, stderr)
    if case.expect_ok is True:
        return "wrong", f"refused a valid input: {message}"
    stderr_errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    one_line = len(stderr_errors) <= 1 and (stderr_errors or case.report_on_stdout)
    named = all(part.lower() in (stdout + stderr).lower() for part in case.names)
    bare = BARE_EXCEPTION.match(message) is not None or "rerun with --debug" in message
    return ("clear" if one_line and named and not bare else "unclear"), message


def run_cli_case(case: Case, setup: Setup) -> Outcome:
    """Prepare the case's inputs, snapshot them, run the command, classify, compare the snapshot."""
    work = setup.root / "cases" / case.name
    work.mkdir(parents=True)
    (work / "out").mkdir()
    if case.prepare is not None:
        case.prepare(setup, work)
    args = [arg.format(**setup.places(work)) for arg in case.args]
    protected = [setup.fixed, work]
    skip = [work / "out", *(work / p for p in case.may_change)]
    before = snapshot(protected, skip)
    env = {**os.environ, "PYTHONPATH": str(SRC), "FLUKEID_CACHE": str(setup.root / "cache"), "NO_COLOR": "1"}
    env["COLUMNS"] = "400"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "flukeid", *args],
            cwd=work / "out",
            env=env,
            capture_output=True,
            text=True,
            timeout=case.timeout_s,
        )
        kind, message = classify_exit(case, done.returncode, done.stdout, done.stderr)
    except subprocess.TimeoutExpired:
        kind, message = "hang", f"no answer in {case.timeout_s} s"
    request = "flukeid " + " ".join(_short(arg, setup.root) for arg in args)
    message = message.replace(str(setup.root) + "/", "")
    return Outcome(case.name, request, kind, message, lost(before, snapshot(protected, skip)))


def _short(arg: str, root: Path) -> str:
    return arg.replace(str(root) + "/", "")[:80]


def run_all(cases: list[Case], setup: Setup, jobs: int, report: Callable[[Outcome], None]) -> list[Outcome]:
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        outcomes = []
        for outcome in pool.map(lambda c: run_cli_case(c, setup), cases):
            report(outcome)
            outcomes.append(outcome)
    return outcomes


def summary_line(outcomes: list[Outcome]) -> str:
    counts = Counter(o.kind for o in outcomes)
    return (
        f"| {len(outcomes)} | {counts['clear']} | {counts['handled']} | {counts['traceback']} | "
        f"{sum(bool(o.data_lost) for o in outcomes)} |"
    )


def table(outcomes: list[Outcome]) -> str:
    rows = ["| case | command / request | outcome | first line of the message |", "|---|---|---|---|"]
    for o in outcomes:
        kind = o.kind + (f" + DATA LOST ({o.data_lost})" if o.data_lost else "")
        message = o.message.replace("|", "\\|")[:160]
        rows.append(f"| {o.name} | `{o.request.replace('|', '/')}` | {kind} | {message} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder (its path is printed).")
    parser.add_argument("--only", default="", help="Run only the cases whose name contains this.")
    parser.add_argument("--jobs", type=int, default=2, help="CLI cases run at once.")
    parser.add_argument("--no-service", action="store_true", help="Leave out the service cases.")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="flukeid-faults-"))
    started = time.monotonic()
    try:
        setup = Setup.build(root)
        print(f"setup in {time.monotonic() - started:.0f} s ({root})", flush=True)
        cases = [c for c in cli_cases(setup) if args.only in c.name]

        def report(o: Outcome) -> None:
            print(f"  {o.kind:9} {'LOST ' if o.data_lost else ''}{o.name}: {o.message[:110]}", flush=True)

        outcomes = run_all(cases, setup, args.jobs, report)
        if not args.no_service:
            from faults_service import service_outcomes

            outcomes += service_outcomes(setup, args.only, report, Outcome, snapshot, lost)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    counts = Counter(o.kind for o in outcomes)
    print(f"\n{len(outcomes)} cases in {time.monotonic() - started:.0f} s\n")
    print("| inputs tried | clear errors | handled | tracebacks | data lost |\n|---|---|---|---|---|")
    print(summary_line(outcomes))
    print(f"\nalso: unclear errors {counts['unclear']}, wrong results {counts['wrong']}, hangs {counts['hang']}\n")
    print(table(outcomes))
    bad = counts["traceback"] + counts["hang"] + sum(bool(o.data_lost) for o in outcomes)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
