"""ONNX export and runtime on a tiny model: the export matches PyTorch, embeddings and identify's top-5 agree between
the runtimes, an attached detector is exported and crops alike, and stale or missing exports are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

from flukeid.cli import main
from flukeid.detect.model import DetectorConfig, attach_detector, build_detector, load_detector, save_detector
from flukeid.detect.predict import predict_boxes
from flukeid.embed import embed_paths
from flukeid.errors import FlukeidError
from flukeid.gallery import Gallery
from flukeid.identify.identifier import Identifier
from flukeid.models import onnx
from flukeid.models.artifact import ModelConfig, build_model, load_model, save_model
from flukeid.models.onnx import OnnxNetwork
from flukeid.synth import SynthConfig, generate

TINY = ModelConfig(backbone="timm/test_efficientnet", pretrained=False, embedding_dim=32, image_size=(48, 96))
TINY_DETECTOR = DetectorConfig(backbone="timm/test_efficientnet", pretrained=False, image_size=(48, 96), hidden=8)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A synthetic catalogue, a tiny model exported to ONNX (by the CLI) and a gallery built with torch."""
    root = tmp_path_factory.mktemp("onnx")
    generate(root / "cat", SynthConfig(individuals=10, photos=(2, 3), size=(64, 96), seed=5, train_new_whale=0.0))
    save_model(root / "model", build_model(TINY).eval(), TINY, labels=[], threshold=0.5)
    assert main(["export", str(root / "model"), "--onnx"]) == 0
    assert main(["gallery", "build", str(root / "model"), str(root / "cat"), "--out", str(root / "gallery")]) == 0
    return {"root": root, "cat": root / "cat", "model": root / "model", "gallery": root / "gallery"}


def queries(world: dict[str, Path]) -> list[Path]:
    return sorted((world["cat"] / "test").iterdir())


def test_export_writes_a_dynamic_batch_onnx_file_that_matches_pytorch(world: dict[str, Path]) -> None:
    network = OnnxNetwork(world["model"] / "model.onnx")
    torch_model = load_model(world["model"]).model
    for batch in (1, 5):
        images = np.random.default_rng(batch).normal(size=(batch, 3, 48, 96)).astype(np.float32)
        with torch.no_grad():
            expected = torch_model(torch.from_numpy(images)).numpy()
        assert network(images).shape == (batch, 32)
        assert np.abs(network(images) - expected).max() < 1e-4


@pytest.mark.parametrize("flip_tta", [False, True])
def test_onnx_embeddings_equal_torch_embeddings(world: dict[str, Path], flip_tta: bool) -> None:
    photos = queries(world)
    torch_run = embed_paths(load_model(world["model"]), photos, num_workers=0, flip_tta=flip_tta)
    onnx_artifact = load_model(world["model"], runtime="onnx")
    assert onnx_artifact.runtime == "onnx" and onnx_artifact.model_id == load_model(world["model"]).model_id
    onnx_run = embed_paths(onnx_artifact, photos, num_workers=0, flip_tta=flip_tta)
    assert onnx_run.paths == torch_run.paths
    assert np.abs(onnx_run.vectors - torch_run.vectors).max() < 1e-4
    assert np.allclose(np.linalg.norm(onnx_run.vectors, axis=1), 1.0, atol=1e-5)


def test_identify_gives_the_same_top5_with_onnx(world: dict[str, Path]) -> None:
    gallery = Gallery.open(world["gallery"])
    photos = queries(world)
    by_torch = Identifier.load(load_model(world["model"]), gallery).identify(photos)
    by_onnx = Identifier.load(load_model(world["model"], runtime="onnx"), gallery).identify(photos)
    assert [p.ranking.ids for p in by_onnx] == [p.ranking.ids for p in by_torch]
    for a, b in zip(by_onnx, by_torch):
        assert np.allclose(a.ranking.scores, b.ranking.scores, atol=1e-4)


def test_cli_embed_and_identify_run_with_onnx(world: dict[str, Path], tmp_path: Path) -> None:
    photos = [str(p) for p in queries(world)]
    assert main(["embed", str(world["model"]), *photos, "--out", str(tmp_path / "t.npz")]) == 0
    assert main(["embed", str(world["model"]), *photos, "--out", str(tmp_path / "o.npz"), "--runtime", "onnx"]) == 0
    with np.load(tmp_path / "t.npz") as t, np.load(tmp_path / "o.npz") as o:
        assert np.abs(t["vector"] - o["vector"]).max() < 1e-4
    out = tmp_path / "ident"
    args = ["identify", str(world["model"]), str(world["gallery"]), *photos, "--out", str(out), "--no-report"]
    assert main([*args, "--runtime", "onnx"]) == 0
    assert (out / "submission.csv").is_file()


def test_missing_or_stale_exports_and_unknown_runtimes_are_refused(world: dict[str, Path], tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    save_model(fresh, build_model(TINY).eval(), TINY, labels=[], threshold=None)
    with pytest.raises(FlukeidError, match="no ONNX export; export it: `flukeid export"):
        load_model(fresh, runtime="onnx")
    (fresh / "model.onnx").write_bytes((world["model"] / "model.onnx").read_bytes())  # another model's export
    with pytest.raises(FlukeidError, match="not from these weights"):
        load_model(fresh, runtime="onnx")
    with pytest.raises(FlukeidError, match="runtime: unknown 'onnxx'"):
        load_model(fresh, runtime="onnxx")  # type: ignore[arg-type]


def test_export_without_a_format_or_beyond_the_tolerance_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "m"
    save_model(model, build_model(TINY).eval(), TINY, labels=[], threshold=None)
    assert main(["export", str(model)]) == 2
    assert "choose a format: --onnx" in capsys.readouterr().err
    monkeypatch.setattr(onnx, "compare", lambda *args, **kwargs: 0.02)  # an exporter that got the maths wrong
    assert main(["export", str(model), "--onnx"]) == 1
    error = " ".join(capsys.readouterr().err.split())
    assert "differ by up to 2.00e-02 (> 0.0001); the export was deleted" in error
    assert not (model / "model.onnx").exists()
    assert main(["export", str(model), "--onnx", "--tolerance", "0.05"]) == 0
    assert "max abs diff vs PyTorch 2.00e-02" in " ".join(capsys.readouterr().out.split())


def test_an_attached_detector_is_exported_and_crops_alike(world: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "with-detector"
    save_model(model, build_model(TINY).eval(), TINY, labels=[], threshold=None)
    save_detector(tmp_path / "det", build_detector(TINY_DETECTOR).eval(), TINY_DETECTOR, {})
    attach_detector(model, tmp_path / "det")
    assert main(["export", str(model), "--onnx"]) == 0
    assert (model / "detector" / "detector.onnx").is_file()
    photos = queries(world)[:4]
    by_torch = predict_boxes(load_detector(model / "detector"), photos, num_workers=0)
    by_onnx = predict_boxes(load_detector(model / "detector", runtime="onnx"), photos, num_workers=0)
    for a, b in zip(by_torch, by_onnx):
        assert a.box is not None and b.box is not None
        assert np.abs(np.array(a.box) - np.array(b.box)).max() < 1e-2  # pixels
        assert a.confidence == pytest.approx(b.confidence, abs=1e-4)
    assert Identifier.load(load_model(model, runtime="onnx")).detector.onnx is not None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["export", "{missing}", "--onnx"], 1, "missing: not a flukeid model directory"),
        (["export", "{model}"], 2, "choose a format: --onnx"),
        (["embed", "{model}", "{cat}", "--out", "{tmp}/e.npz", "--runtime", "onnxx"], 1, "did you mean 'onnx'?"),
        (["identify", "{model}", "{gallery}", "{cat}", "--runtime", "onnx", "--ray", "local"], 2, "Ray actors embed"),
        (["identify", "{model}", "{gallery}", "{cat}", "--runtime", "tflite"], 1, "runtime: unknown 'tflite'"),
    ],
)
def test_bad_export_and_runtime_options_are_one_error_line(
    world: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    message: str,
) -> None:
    paths = {k: str(v) for k, v in world.items()} | {"missing": str(tmp_path / "missing"), "tmp": str(tmp_path)}
    assert main([a.format(**paths) for a in args]) == code
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
