"""The examples run as a user runs them (a subprocess, tiny settings) and print what they promise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parents[1] / "examples"


def test_identify_synthetic_prints_top5_with_probabilities_and_map5(tmp_path: Path) -> None:
    command = [sys.executable, str(EXAMPLES / "identify_synthetic.py"), "--out", str(tmp_path / "run")]
    options = ["--tiny", "--no-local", "--individuals", "8", "--show", "3"]
    done = subprocess.run([*command, *options], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert re.fullmatch(r"\d+ catalogue photos of \d+ individuals; \d+ queries", lines[0])
    answers = lines[1:4]
    assert len(answers) == 3
    for line in answers:
        top5 = re.findall(r"(\S+) (\d\.\d\d)", line.split(": ", 1)[1])
        assert len(top5) == 5 and all(0.0 <= float(p) <= 1.0 for _, p in top5), line
    score = re.fullmatch(r"MAP@5 (\d\.\d{3})", lines[-1])
    assert score is not None and 0.0 <= float(score.group(1)) <= 1.0
