"""Inference without torch: a model folder exported to ONNX embeds and identifies (global descriptor + SIFT) in a
Python where torch and its kin cannot be imported, with the same vectors and answers as the torch path; what still
needs torch (an export, learned matchers, a detector) is refused with a message saying so."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnx", reason="the onnx extra is not installed")

from flukeid.cli import main
from flukeid.detect.model import DetectorConfig, attach_detector, build_detector, save_detector
from flukeid.embed import embed_paths
from flukeid.errors import FlukeidError
from flukeid.models import artifact as artifact_module
from flukeid.models.artifact import INPUTS_KEY, ModelConfig, build_model, load_model, load_onnx_model, save_model
from flukeid.synth import SynthConfig, generate

TINY = ModelConfig(backbone="timm/test_efficientnet", pretrained=False, embedding_dim=32, image_size=(48, 96))
TINY_DETECTOR = DetectorConfig(backbone="timm/test_efficientnet", pretrained=False, image_size=(48, 96), hidden=8)
BLOCKED = ("torch", "torchvision", "timm", "lightning", "pytorch_metric_learning", "kornia")
WITHOUT_TORCH = f"""
import sys

BLOCKED = {BLOCKED!r}


class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"No module named {{name!r}} (blocked by the test)")
        return None


sys.meta_path.insert(0, NoTorch())
exec(sys.argv[1])
"""
"""``python -c WITHOUT_TORCH BODY ARGS...``: runs BODY where torch and its kin are not importable."""
BODY = """
import json, sys
from pathlib import Path
from flukeid.cli import main
from flukeid.detect.model import model_detector
from flukeid.errors import FlukeidError
from flukeid.matchers import MatcherSettings, create_matcher
from flukeid.models.artifact import load_model

root = Path(sys.argv[2])
photos = sorted(str(p) for p in (root / "cat" / "test").iterdir())
codes = {
    "embed": main(["embed", str(root / "model"), *photos, "--out", str(root / "no-torch.npz")]),
    "identify": main(["identify", str(root / "model"), str(root / "gallery"), *photos, "--out",
                      str(root / "no-torch-identify"), "--no-report"]),
}
refusals = {}
for name, refused in {
    "unexported": lambda: load_model(root / "unexported"),
    "aliked": lambda: create_matcher(MatcherSettings("aliked")),
    "detector": lambda: model_detector(root / "with-detector"),
}.items():
    try:
        refused()
    except FlukeidError as exc:
        refusals[name] = str(exc)
torch_loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print(json.dumps({"codes": codes, "refusals": refusals, "torch_loaded": torch_loaded}))
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalogue, a tiny model exported to ONNX and tuned with SIFT, its gallery, and with torch: its
    embeddings and identify answers; plus a model never exported and one carrying a detector."""
    root = tmp_path_factory.mktemp("no-torch")
    generate(root / "cat", SynthConfig(individuals=10, photos=(2, 3), size=(64, 96), seed=5, train_new_whale=0.0))
    save_model(root / "model", build_model(TINY).eval(), TINY, labels=[], threshold=0.5)
    assert main(["export", str(root / "model"), "--onnx"]) == 0
    assert main(["tune", str(root / "model"), str(root / "cat"), "--matchers", "sift"]) == 0
    assert main(["gallery", "build", str(root / "model"), str(root / "cat"), "--out", str(root / "gallery")]) == 0
    photos = sorted(str(p) for p in (root / "cat" / "test").iterdir())
    assert main(["embed", str(root / "model"), *photos, "--out", str(root / "torch.npz")]) == 0
    identify = ["identify", str(root / "model"), str(root / "gallery"), *photos, "--no-report"]
    assert main([*identify, "--out", str(root / "torch-identify")]) == 0
    save_model(root / "unexported", build_model(TINY).eval(), TINY, labels=[], threshold=None)
    save_model(root / "with-detector", build_model(TINY).eval(), TINY, labels=[], threshold=None)
    save_detector(root / "detector", build_detector(TINY_DETECTOR, pretrained=False).eval(), TINY_DETECTOR, {})
    attach_detector(root / "with-detector", root / "detector")
    return root


def test_the_onnx_loader_needs_no_torch_network_and_embeds_like_torch(world: Path) -> None:
    by_torch = load_model(world / "model")
    by_onnx = load_onnx_model(world / "model")
    assert by_onnx.model is None and by_onnx.runtime == "onnx"
    assert by_onnx.model_id == by_torch.model_id
    assert by_onnx.inputs == by_torch.inputs
    assert (by_onnx.threshold, by_onnx.extra, by_onnx.labels) == (by_torch.threshold, by_torch.extra, by_torch.labels)
    photos = sorted((world / "cat" / "test").iterdir())
    for flip_tta in (False, True):
        expected = embed_paths(by_torch, photos, num_workers=0, flip_tta=flip_tta).vectors
        found = embed_paths(by_onnx, photos, batch_size=4, flip_tta=flip_tta).vectors
        assert np.abs(found - expected).max() < 1e-4


def test_without_torch_load_model_takes_the_export_and_refuses_stale_or_old_ones(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(artifact_module, "torch_installed", lambda: False)
    assert load_model(world / "model").model is None
    with pytest.raises(FlukeidError, match=r"torch is not installed and .* has no model\.onnx: run `flukeid export"):
        load_model(world / "unexported")
    stale = tmp_path / "stale"
    save_model(stale, build_model(TINY).eval(), TINY, labels=[], threshold=None)
    (stale / "model.onnx").write_bytes((world / "model" / "model.onnx").read_bytes())  # another model's export
    with pytest.raises(FlukeidError, match="not from these weights"):
        load_model(stale)
    import onnx

    old = tmp_path / "old"  # exported by a flukeid that stored no input settings
    shutil.copytree(world / "model", old)
    proto = onnx.load(old / "model.onnx")
    kept = [prop for prop in proto.metadata_props if prop.key != INPUTS_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    onnx.save(proto, old / "model.onnx")
    with pytest.raises(FlukeidError, match="does not record its input settings"):
        load_model(old)


def test_embed_and_identify_run_where_torch_cannot_be_imported(world: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*sys.path, os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, BODY, str(world)], capture_output=True, text=True, env=env, timeout=300
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["torch_loaded"] == [] and result["codes"] == {"embed": 0, "identify": 0}
    with np.load(world / "torch.npz") as by_torch, np.load(world / "no-torch.npz") as by_onnx:
        assert list(by_onnx["path"]) == list(by_torch["path"])
        assert str(by_onnx["model_id"]) == str(by_torch["model_id"])
        assert np.abs(by_onnx["vector"] - by_torch["vector"]).max() < 1e-4
    answers = {
        run: [json.loads(line) for line in (world / run / "predictions.jsonl").read_text().splitlines()]
        for run in ("torch-identify", "no-torch-identify")
    }
    for by_torch, by_onnx in zip(answers["torch-identify"], answers["no-torch-identify"], strict=True):
        assert by_onnx["image"] == by_torch["image"] and by_onnx["ids"] == by_torch["ids"]
        assert np.allclose(by_onnx["scores"], by_torch["scores"], atol=1e-4)
    refusals = result["refusals"]
    assert "torch is not installed and" in refusals["unexported"] and "flukeid export" in refusals["unexported"]
    assert "matcher aliked needs torch, which is not installed" in refusals["aliked"]
    assert "torch is not installed: cropping with the detector" in refusals["detector"]
