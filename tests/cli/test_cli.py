"""The CLI in-process: each command on a tiny synthetic catalogue, and its errors as one line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from flukeid.cli import main


@pytest.fixture(scope="module")
def flukes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "flukes"
    assert main(["synth", str(out), "--individuals", "12", "--photos", "2-4", "--size", "64-96", "--seed", "1"]) == 0
    return out


def test_synth_check_stats(flukes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (flukes / "train.csv").is_file() and (flukes / "answers.csv").is_file()
    assert main(["check", str(flukes)]) == 0
    assert "0 fatal" in capsys.readouterr().out
    plot = tmp_path / "s.png"
    assert main(["stats", str(flukes), "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    assert "individuals" in printed and "singletons" in printed
    assert plot.stat().st_size > 1000


def test_split_then_score(flukes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "split"
    assert main(["split", str(flukes), str(out), "--kind", "whale", "--seed", "0"]) == 0
    answers = pd.read_csv(out / "answers.csv")
    perfect = answers.assign(Id=answers["Id"] + " x y")[["Image", "Id"]]
    perfect.to_csv(tmp_path / "perfect.csv", index=False)
    assert main(["score", str(tmp_path / "perfect.csv"), str(out / "answers.csv")]) == 0
    assert "MAP@5 1.0000" in capsys.readouterr().out
    assert main(["score", str(out / "sample_submission.csv"), str(out / "answers.csv")]) == 0


def test_errors_are_one_red_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("Image,Label\na.jpg,w_1\n")
    answers = tmp_path / "answers.csv"
    answers.write_text("Image,Id\na.jpg,w_1\n")
    assert main(["score", str(bad), str(answers)]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "bad.csv" in err and "Traceback" not in err
    assert main(["check", str(tmp_path / "nowhere")]) == 1
    assert "fatal" in capsys.readouterr().out
    assert main(["split", str(tmp_path), str(tmp_path / "o"), "--kind", "weird"]) == 1
    assert "--kind: unknown 'weird'; valid: closed, open, disjoint, whale" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "s"), "--photos", "a-b"]) == 2
    assert main(["synth", str(tmp_path / "s"), "--individuals", "1"]) == 1


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("synth", "check", "stats", "split", "score", "demo"):
        assert main([command, "--help"]) == 0
        assert "Usage" in capsys.readouterr().out


def test_demo_runs_the_whole_path_quickly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path / "demo"), "--quick"]) == 0
    printed = capsys.readouterr().out
    assert "MAP@5" in printed and "baseline" in printed
    assert (tmp_path / "demo" / "results" / "submission.csv").is_file()
    assert (tmp_path / "demo" / "results" / "report.html").is_file()
    assert (
        main(
            [
                "score",
                str(tmp_path / "demo" / "results" / "submission.csv"),
                str(tmp_path / "demo" / "flukes" / "answers.csv"),
            ]
        )
        == 0
    )


def test_train_command_with_overrides(flukes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "model: {backbone: timm/test_efficientnet, pretrained: false, embedding_dim: 16, image_size: [48, 96]}\n"
        "epochs: 1\nbatch_size: 8\nm_per_class: 2\nnegatives_per_batch: 2\nnum_workers: 0\n"
    )
    out = tmp_path / "run"
    args = ["train", str(flukes), "--config", str(config), "--out", str(out), "--set", "loss.name=triplet"]
    assert main(args) == 0
    assert "validation MAP@5" in capsys.readouterr().out
    assert (out / "model" / "model.safetensors").is_file() and "triplet" in (out / "train.yaml").read_text()
    assert main(["train", str(flukes), "--config", str(config), "--out", str(out), "--set", "loss.name=arcface"]) == 1
    assert "holds a run with another model or loss" in capsys.readouterr().err
    assert main(["train", str(flukes), "--config", str(config), "--set", "loss.nme=x"]) == 1
    assert "unknown key 'nme' (did you mean 'name'?)" in capsys.readouterr().err


def _fail_with(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    """`flukeid score` raises ``exc`` (an error flukeid did not anticipate)."""

    def score_submission(*args: object, **kwargs: object) -> float:
        raise exc

    monkeypatch.setattr("flukeid.data.submission.score_submission", score_submission)


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (OSError(28, "No space left on device", "sub.csv"), 1, "error: No space left on device: sub.csv (rerun with"),
        (PermissionError(13, "Permission denied", "/x", None), 1, "error: Permission denied: /x (rerun with --debug"),
        (ValueError("boom\nsecond line"), 1, "error: ValueError: boom second line (rerun with --debug for the"),
        (RuntimeError(), 1, "error: RuntimeError (rerun with --debug"),
        (MemoryError(), 1, "error: out of memory (rerun with --debug"),
        (KeyboardInterrupt(), 130, "error: interrupted"),
    ],
    ids=["disk-full", "permission", "value", "no-message", "memory", "ctrl-c"],
)
def test_unexpected_errors_are_one_line_and_debug_shows_them(
    exc: BaseException, code: int, line: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fail_with(monkeypatch, exc)
    assert main(["score", "sub.csv", "answers.csv"]) == code
    assert _one_error_line(capsys.readouterr().err).startswith(line)
    if not isinstance(exc, KeyboardInterrupt):
        with pytest.raises(type(exc)):
            main(["--debug", "score", "sub.csv", "answers.csv"])


def test_debug_is_a_root_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flukeid.errors import SubmissionError

    with pytest.raises(SubmissionError, match="file not found"):
        main(["--debug", "score", str(tmp_path / "a.csv"), str(tmp_path / "b.csv")])
    assert main(["score", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--debug"]) == 2  # not a score option
    assert "No such option: --debug" in _one_error_line(capsys.readouterr().err)


def test_error_lines_print_brackets_as_they_are(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "[bold]runs[/]" / "sub.csv"
    assert main(["score", str(missing), str(missing)]) == 1
    assert f"error: {missing}: file not found" in _one_error_line(capsys.readouterr().err)


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth"]) == 2
    assert _one_error_line(capsys.readouterr().err) == "error: Missing argument 'out'. (see flukeid synth --help)"
    assert main([]) == 2  # a bare flukeid shows the help
    assert "Usage" in capsys.readouterr().out


def test_python_m_flukeid_exits_non_zero_on_errors(tmp_path: Path) -> None:
    import subprocess
    import sys

    missing = str(tmp_path / "missing.csv")
    done = subprocess.run([sys.executable, "-m", "flukeid", "score", missing, missing], capture_output=True, text=True)
    assert done.returncode == 1, done
    assert done.stderr.strip() == f"error: {missing}: file not found"
