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
    assert "--kind 'weird' is not one of closed, open, disjoint, whale" in capsys.readouterr().err
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
