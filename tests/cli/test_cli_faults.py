"""Fault injection: the CLI in-process over a table of bad inputs; each exits non-zero with one `error:` line.

`{name}` in an argument is a path from the `paths` fixture: a tiny valid catalogue and broken files beside it.
(Permission tests are left out: the tests run as root, who reads everything.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flukeid.cli import main
from flukeid.synth import SynthConfig, generate

TINY = (
    "model: {backbone: timm/test_efficientnet, pretrained: false, embedding_dim: 16, image_size: [48, 96]}\n"
    "epochs: 1\nbatch_size: 8\nm_per_class: 2\nnegatives_per_batch: 2\nnum_workers: 0\n"
)


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("faults")
    cat = root / "cat"
    generate(cat, SynthConfig(individuals=6, photos=(2, 3), size=(48, 64), seed=0))
    files = {
        "cat": cat,
        "answers": cat / "answers.csv",
        "photo": next((cat / "train").iterdir()),
        "missing": root / "missing",
        "dir": root / "dir",
        "empty": root / "empty.csv",
        "binary": root / "binary.csv",
        "latin1": root / "latin1.csv",
        "yaml": root / "tiny.yaml",
        "badcat": root / "badcat",
        "run": root / "run",
        "fresh": root / "fresh",
    }
    files["dir"].mkdir()
    files["empty"].write_bytes(b"")
    files["binary"].write_bytes(bytes(range(256)) * 8)
    files["latin1"].write_bytes(b"Image,Id\ncaf\xe9.jpg,w_1\n")
    files["yaml"].write_text(TINY)
    shutil.copytree(cat, files["badcat"])
    (files["badcat"] / "train.csv").write_bytes(bytes(range(256)) * 4)
    checkpoints = files["run"] / "checkpoints"  # a run whose every checkpoint is broken
    checkpoints.mkdir(parents=True)
    (checkpoints / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    (checkpoints / "best.ckpt").write_bytes(b"")
    return {name: str(path) for name, path in files.items()}


TRAIN = ["train", "{cat}", "--config", "{yaml}", "--out", "{fresh}"]

CASES: list[tuple[list[str], int, str]] = [
    # score: submission and answers files
    (["score", "{missing}", "{answers}"], 1, "missing: file not found"),
    (["score", "{dir}", "{answers}"], 1, "dir: is a folder, not a CSV file"),
    (["score", "{empty}", "{answers}"], 1, "empty.csv: the file is empty (0 bytes)"),
    (["score", "{binary}", "{answers}"], 1, "binary.csv: holds NUL bytes (first on line 1)"),
    (["score", "{photo}", "{answers}"], 1, "holds NUL bytes"),
    (["score", "{latin1}", "{answers}"], 1, "latin1.csv: not UTF-8 text (byte 0xe9 on line 2)"),
    (["score", "{answers}", "{binary}"], 1, "binary.csv: holds NUL bytes"),
    (["score", "{answers}", "{empty}"], 1, "empty.csv: the file is empty"),
    (["score", "{answers}"], 2, "Missing argument 'answers'"),
    # train: config files, --set values and options, refused before any training
    ([*TRAIN[:2], "--config", "{binary}"], 1, "binary.csv: holds NUL bytes: a binary file, not a YAML config"),
    ([*TRAIN[:2], "--config", "{photo}"], 1, "not a YAML config"),
    ([*TRAIN[:2], "--config", "{latin1}"], 1, "latin1.csv: not UTF-8 text"),
    ([*TRAIN[:2], "--config", "{dir}"], 1, "dir: is a folder, not a config file"),
    ([*TRAIN[:2], "--config", "{missing}"], 1, "missing: config file not found"),
    ([*TRAIN, "--set", "epochs=-1"], 1, "epochs must be an integer >= 1, found -1"),
    ([*TRAIN, "--epochs", "0"], 1, "epochs must be an integer >= 1, found 0"),
    ([*TRAIN, "--set", "epochs=[1"], 1, "--set 'epochs=[1': the value is not valid YAML"),
    ([*TRAIN, "--strategy", "bogus"], 1, "strategy 'bogus', num_nodes 1: Lightning cannot train with these"),
    ([*TRAIN, "--devices", "0"], 1, "devices '0', strategy 'auto', num_nodes 1: Lightning cannot train with these"),
    ([*TRAIN, "--set", "epochs"], 1, "--set expects KEY=VALUE, found 'epochs'"),
    ([*TRAIN, "--set", "=3"], 1, "--set expects KEY=VALUE, found '=3'"),
    ([*TRAIN, "--set", "optim..lr=1"], 1, "has an empty part"),
    ([*TRAIN, "--set", "unknown.key=1"], 1, "override 'unknown.key': unknown key 'unknown'"),
    ([*TRAIN, "--set", "epochs.x=1"], 1, "'epochs' is a value, not a section with keys"),
    ([*TRAIN, "--set", "epochs=many"], 1, "epochs: expected int, found 'many'"),
    ([*TRAIN, "--set", "optim.lr=-1"], 1, "optim.lr must be a finite number > 0, found -1.0"),
    ([*TRAIN, "--set", "optim.lr=.nan"], 1, "optim.lr must be a finite number > 0, found nan"),
    ([*TRAIN, "--set", "batch_size=0"], 1, "batch_size must be at least 6"),
    ([*TRAIN, "--set", "m_per_class=1"], 1, "m_per_class must be an integer >= 2"),
    ([*TRAIN, "--set", "num_workers=-1"], 1, "num_workers must be an integer >= 0"),
    ([*TRAIN, "--set", "val_query_share=1"], 1, "val_query_share must be in [0, 1), found 1.0"),
    ([*TRAIN, "--set", "model.image_size=[0, 64]"], 1, "model.image_size must be [height, width] in positive"),
    ([*TRAIN, "--set", "model.embedding_dim=-8"], 1, "model.embedding_dim must be a positive integer or null"),
    ([*TRAIN, "--seed", "-1"], 1, "seed must be in [0, 4294967295], found -1"),
    ([*TRAIN, "--seed", str(2**70)], 1, "seed must be in [0, 4294967295]"),
    ([*TRAIN, "--pseudo-rounds", "-1"], 2, "Invalid value for '--pseudo-rounds'"),
    ([*TRAIN, "--epochs", "x"], 2, "Invalid value for '--epochs'"),
    # train: catalogues and run folders
    (["train", "{missing}", "--config", "{yaml}", "--out", "{fresh}"], 1, "missing: catalogue folder not found"),
    (["train", "{binary}", "--config", "{yaml}", "--out", "{fresh}"], 1, "binary.csv: holds NUL bytes"),
    (["train", "{badcat}", "--config", "{yaml}", "--out", "{fresh}"], 1, "train.csv: holds NUL bytes"),
    (["train", "{cat}", "--config", "{yaml}", "--out", "{run}"], 1, "cannot resume from"),
    # synth, check, stats, split, distill
    (["synth", "{binary}", "--individuals", "3"], 1, "Not a directory"),
    (["synth", "{dir}/s", "--individuals", "-1"], 1, "individuals must be >= 2, got -1"),
    (["synth", "{dir}/s", "--photos", "a-b"], 2, "expected MIN-MAX like 1-6, found 'a-b'"),
    (["synth", "{dir}/s", "--size", "0-0"], 1, "SynthConfig.size must be"),
    (["synth", "{dir}/s", "--new-share", "2"], 1, "new_share must be in [0, 1], got 2.0"),
    (["check", "{cat}", "--show", "-1"], 2, "Invalid value for '--show'"),
    (["check", "{cat}", "--max-pixels", "0"], 2, "Invalid value for '--max-pixels'"),
    (["stats", "{binary}"], 1, "binary.csv: holds NUL bytes (first on line 1): a binary file, not a CSV table"),
    (["stats", "{badcat}"], 1, "train.csv: holds NUL bytes"),
    (["stats", "{cat}", "--plot", "{dir}"], 2, "is a folder: give a file name like"),
    (["split", "{cat}", "{dir}/o", "--query-share", "2"], 2, "a share in [0, 1) is needed, found 2.0"),
    (["split", "{cat}", "{dir}/o", "--unknown-share", "-1"], 2, "a share in [0, 1) is needed, found -1.0"),
    (["split", "{cat}", "{dir}/o", "--kind", "weird"], 1, "--kind: unknown 'weird'"),
    (["split", "{cat}", "{binary}"], 1, "Not a directory"),
    (["distill", "{missing}", "{cat}"], 1, "missing: not a flukeid model directory"),
    (["distill", "{dir}", "{cat}", "--temperature", "0"], 2, "must be > 0, found 0.0"),
    (["frozen", "{fresh}", "--size", "-5"], 2, "Invalid value for '--size'"),
    (["identify", "{dir}", "{dir}", "{cat}", "--threshold", "nan"], 2, "--threshold: a number is needed, found nan"),
    # models, galleries, catalogues that are not there or are files
    (["identify", "{dir}", "{dir}", "{cat}"], 1, "not a flukeid gallery"),
    (["identify", "{binary}", "{binary}", "{binary}"], 1, "not a flukeid gallery"),
    (["evaluate", "{missing}", "{cat}"], 1, "not a flukeid model directory"),
    (["tune", "{dir}", "{cat}"], 1, "not a flukeid model directory"),
    (["gallery", "info", "{binary}"], 1, "not a flukeid gallery"),
    (["gallery", "build", "{missing}", "{cat}"], 1, "not a flukeid model directory"),
    (["detect", "train", "{binary}"], 1, "binary.csv: holds NUL bytes"),
    (["serve", "{missing}"], 1, "not a flukeid catalogue"),
    (["users", "add", "{dir}", "bob"], 1, "not a flukeid catalogue"),
    # the command line itself
    (["nope"], 2, "No such command 'nope'"),
    (["--nope", "score"], 2, "No such option: --nope"),
]


def _ids(case: tuple[list[str], int, str]) -> str:
    args = case[0]
    return " ".join(args[:1] + [a for a in args[1:] if a not in TRAIN[1:]])[:60]


@pytest.mark.parametrize(("args", "code", "message"), CASES, ids=[_ids(c) for c in CASES])
def test_bad_input_is_one_error_line(
    args: list[str], code: int, message: str, paths: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([arg.format(**paths) for arg in args]) == code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert message in lines[0]
    assert "Traceback" not in captured.out + captured.err
    assert not Path(paths["fresh"]).exists()  # refused before writing anything


@pytest.mark.parametrize("data", ["{missing}", "{binary}", "{badcat}"])
def test_check_reports_fatal_problems_on_stdout(data: str, paths: dict[str, str], capsys) -> None:  # type: ignore[no-untyped-def]
    """`check` is the one command whose failure is its report: the problems on stdout, exit code 1."""
    assert main(["check", data.format(**paths)]) == 1
    captured = capsys.readouterr()
    assert "fatal" in captured.out and "Traceback" not in captured.out + captured.err


def test_refused_resume_keeps_the_checkpoints(paths: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    checkpoints = Path(paths["run"]) / "checkpoints"
    assert main(["train", paths["cat"], "--config", paths["yaml"], "--out", paths["run"]]) == 1
    err = capsys.readouterr().err
    assert "last.ckpt does not load" in err and "best.ckpt does not load" in err and "--no-resume" in err
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]
