"""`flukeid embed` without Ray: an embeddings file of the single-process vectors, resumed, unreadable photos reported;
and `--ray` failing with one line when Ray is missing or the address is a folder."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from flukeid.cli import main
from flukeid.embed import (
    Embedded,
    describe_failures,
    embed_to_file,
    load_embeddings,
    local_batches,
    parts_folder,
    photo_inputs,
)
from flukeid.errors import FlukeidError
from flukeid.identify.identifier import Identifier
from flukeid.models.artifact import ModelConfig, build_model, load_model, save_model
from flukeid.synth import SynthConfig, generate

TINY = ModelConfig(backbone="timm/test_efficientnet", pretrained=False, embedding_dim=32, image_size=(48, 96))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("embed")
    generate(root / "cat", SynthConfig(individuals=4, photos=(2, 3), size=(64, 96), seed=3, train_new_whale=0.0))
    save_model(root / "model", build_model(TINY).eval(), TINY, labels=[], threshold=0.9)
    other = ModelConfig(backbone="timm/test_efficientnet", pretrained=False, embedding_dim=16, image_size=(48, 96))
    save_model(root / "other", build_model(other).eval(), other, labels=[], threshold=0.9)
    return {"cat": root / "cat", "model": root / "model", "other": root / "other"}


def _photos(world: dict[str, Path], tmp_path: Path) -> Path:
    """A folder of the catalogue's photos plus one that cannot be read."""
    folder = tmp_path / "photos"
    shutil.copytree(world["cat"] / "train", folder)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return folder


def test_embed_writes_the_single_process_vectors_and_resumes(
    world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, out = _photos(world, tmp_path), tmp_path / "emb.npz"
    good = sorted(p for p in folder.iterdir() if p.name != "broken.jpg")
    assert main(["embed", str(world["model"]), str(folder), "--out", str(out), "--batch-size", "3"]) == 0
    first = " ".join(capsys.readouterr().out.split())
    assert f"{len(good)} photo(s) embedded, 0 already in" in first and "1 unreadable" in first
    assert "broken.jpg: not a readable image" in first
    table = load_embeddings(out)
    artifact = load_model(world["model"])
    expected = Identifier(artifact, None).embed(good)
    assert table.model_id == artifact.model_id and list(table.image) == [p.name for p in good]
    assert list(table.path) == [str(p.resolve()) for p in good]
    np.testing.assert_allclose(table.vector, expected.vectors, atol=1e-5)
    assert not parts_folder(out).exists()

    assert main(["embed", str(world["model"]), str(folder), "--out", str(out)]) == 0
    second = " ".join(capsys.readouterr().out.split())
    assert f"0 photo(s) embedded, {len(good)} already in" in second and "1 unreadable" in second
    assert f"holds {len(good)} photo(s)" in second


def test_a_catalogue_folder_gives_names_and_individuals(world: dict[str, Path]) -> None:
    photos = photo_inputs([world["cat"]])
    labelled = [p for p in photos if p.individual]
    assert labelled and all(p.path.is_file() for p in photos)
    assert len(photos) == len(list((world["cat"] / "train").iterdir())) + len(list((world["cat"] / "test").iterdir()))
    assert photo_inputs([world["cat"], world["cat"] / "train"]) == photos  # each photo once


def test_an_interrupted_run_resumes_from_its_chunks_and_a_changed_photo_is_embedded_again(
    world: dict[str, Path], tmp_path: Path
) -> None:
    artifact = load_model(world["model"])
    photos = photo_inputs([_photos(world, tmp_path)])
    out, embed = tmp_path / "emb.npz", local_batches(artifact, batch_size=2)
    calls: list[int] = []

    def interrupted(paths: list[Path]) -> Iterator[Embedded]:
        for batch in embed(paths):
            if len(calls) == 2:
                raise KeyboardInterrupt
            calls.append(len(batch.photos))
            yield batch

    with pytest.raises(KeyboardInterrupt):
        embed_to_file(artifact.model_id, artifact.model.dim, photos, out, interrupted, chunk=1)
    assert not out.exists() and len(list(parts_folder(out).iterdir())) == 2
    run = embed_to_file(artifact.model_id, artifact.model.dim, photos, out, embed)
    assert run.skipped == sum(calls) and run.embedded == len(photos) - 1 - sum(calls) and len(run.failed) == 1
    assert run.total == len(photos) - 1 and not parts_folder(out).exists()

    changed = photos[0].path
    shutil.copy(photos[1].path, changed)
    again = embed_to_file(artifact.model_id, artifact.model.dim, photos, out, embed)
    table = load_embeddings(out)
    assert again.embedded == 1 and again.total == run.total and len(set(table.path)) == len(table)
    row = list(table.path).index(str(changed.resolve()))
    np.testing.assert_allclose(table.vector[row], table.vector[list(table.path).index(str(photos[1].path.resolve()))])


def test_embed_refuses_another_models_file_and_a_file_not_npz(
    world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = sorted((world["cat"] / "train").iterdir())[0]
    out = tmp_path / "emb.npz"
    assert main(["embed", str(world["model"]), str(photo), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["embed", str(world["other"]), str(photo), "--out", str(out)]) == 1
    assert "holds embeddings of model" in capsys.readouterr().err
    assert main(["embed", str(world["model"]), str(photo), "--out", str(tmp_path / "emb.csv")]) == 1
    assert "embeddings files end in .npz" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(FlukeidError, match="no photos in it, and not a catalogue"):
        photo_inputs([tmp_path / "empty"])


def test_ray_option_says_how_to_install_ray_and_refuses_a_folder_as_address(
    world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = sorted((world["cat"] / "train").iterdir())[0]
    out = tmp_path / "emb.npz"
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    assert main(["embed", str(world["model"]), str(photo), "--out", str(out), "--ray", "local"]) == 1
    err = capsys.readouterr().err
    assert "pip install -e '.[scale]'" in " ".join(err.split()) and len(err.strip().splitlines()) <= 2
    assert main(["embed", str(world["model"]), str(photo), "--out", str(out), "--ray", str(photo.parent)]) == 1
    assert "not a Ray address" in capsys.readouterr().err
    assert not out.exists()


def test_describe_failures_names_the_first_photos_and_counts_the_rest() -> None:
    failed = {Path(f"p{i}.jpg"): "truncated" for i in range(3)} | {Path("x.jpg"): "x.jpg: not an image"}
    assert describe_failures(failed, shown=2) == "p0.jpg: truncated; p1.jpg: truncated; and 2 more"
    assert describe_failures(failed) == "p0.jpg: truncated; p1.jpg: truncated; p2.jpg: truncated; x.jpg: not an image"
