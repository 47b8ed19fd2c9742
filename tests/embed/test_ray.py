"""The Ray path (Ray Data map_batches over an actor pool) gives the single-process numbers: the same embeddings, the
same submission from `identify --ray`, and `embed --ray` resumes like `embed`. One local Ray (2 CPUs) for the module."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flukeid.cli import main
from flukeid.embed import load_embeddings
from flukeid.gallery import Gallery
from flukeid.identify.identifier import Identifier
from flukeid.models.artifact import ModelConfig, build_model, load_model, save_model
from flukeid.synth import SynthConfig, generate

ray = pytest.importorskip("ray")

from flukeid.embed_ray import _driver_crop, ray_embed  # noqa: E402  (after the skip: it needs ray to be useful)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Data's own, about its settings
TINY = ModelConfig(backbone="timm/test_efficientnet", pretrained=False, embedding_dim=32, image_size=(48, 96))


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    # Ray gives its raylet a fixed 30 s to register at start-up, which a loaded machine can miss: start-up is retried
    # (what the tests check starts after it)
    for attempt in range(3):
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception:
            ray.shutdown()
            if attempt == 2:
                raise
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ray")
    generate(root / "cat", SynthConfig(individuals=6, photos=(2, 3), size=(64, 96), seed=7, train_new_whale=0.0))
    save_model(root / "model", build_model(TINY).eval(), TINY, labels=[], threshold=0.9)
    assert main(["gallery", "build", str(root / "model"), str(root / "cat"), "--out", str(root / "gallery")]) == 0
    queries = root / "queries"
    shutil.copytree(root / "cat" / "test", queries)
    (queries / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return {"cat": root / "cat", "model": root / "model", "gallery": root / "gallery", "queries": queries}


def test_ray_embeds_what_the_single_process_path_embeds(world: dict[str, Path], local_ray: None) -> None:
    identifier = Identifier(load_model(world["model"]), None)
    paths = [*sorted((world["cat"] / "train").iterdir()), world["queries"] / "broken.jpg", world["cat"] / "gone.jpg"]
    expected = identifier.embed(paths)
    found = ray_embed(identifier, paths, batch_size=4)
    assert found.photos == expected.photos and found.crops == expected.crops
    np.testing.assert_allclose(found.vectors, expected.vectors, atol=1e-5)
    assert found.failed == expected.failed and len(found.failed) == 2


def test_identify_on_ray_writes_the_same_submission(world: dict[str, Path], tmp_path: Path, local_ray: None) -> None:
    args = ["identify", str(world["model"]), str(world["gallery"]), str(world["queries"]), "--no-report"]
    assert main([*args, "--out", str(tmp_path / "here")]) == 0
    assert main([*args, "--out", str(tmp_path / "ray"), "--ray", "local"]) == 0
    here, there = (pd.read_csv(tmp_path / name / "submission.csv") for name in ("here", "ray"))
    pd.testing.assert_frame_equal(here, there)
    lines = [pd.read_json(tmp_path / name / "predictions.jsonl", lines=True) for name in ("here", "ray")]
    assert list(lines[0]["error"].notna()) == list(lines[1]["error"].notna()) and lines[1]["error"].notna().sum() == 1
    assert len(Gallery.open(world["gallery"])) > 0


def test_embed_on_ray_resumes_and_equals_embed_here(
    world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], local_ray: None
) -> None:
    command = ["embed", str(world["model"]), str(world["cat"]), str(world["queries"] / "broken.jpg")]
    assert main([*command, "--out", str(tmp_path / "here.npz")]) == 0
    assert main([*command, "--out", str(tmp_path / "ray.npz"), "--ray", "local", "--batch-size", "4"]) == 0
    assert "1 unreadable" in capsys.readouterr().out
    here, there = load_embeddings(tmp_path / "here.npz"), load_embeddings(tmp_path / "ray.npz")
    order = np.argsort(there.path)
    assert sorted(here.path) == list(there.path[order])
    np.testing.assert_allclose(here.vector[np.argsort(here.path)], there.vector[order], atol=1e-5)
    assert main([*command, "--out", str(tmp_path / "ray.npz"), "--ray", "local"]) == 0
    again = " ".join(capsys.readouterr().out.split())
    assert f"0 photo(s) embedded, {len(here)} already in" in again and "1 unreadable" in again


def test_a_crop_the_driver_cannot_read_comes_back_as_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUKEID_CACHE", str(tmp_path / "cache"))
    photo = tmp_path / "photo.jpg"
    assert _driver_crop("", b"", photo) == photo  # not cropped: the photo as given
    here = tmp_path / "crop.jpg"
    here.write_bytes(b"crop")
    assert _driver_crop(str(here), b"crop", photo) == here
    copied = _driver_crop("/elsewhere/on/a/worker/photo.jpg", b"crop bytes", photo)
    assert copied.read_bytes() == b"crop bytes" and copied.name == "photo.jpg" and copied.is_relative_to(tmp_path)
