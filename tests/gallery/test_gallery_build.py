"""`flukeid gallery build` is all or nothing: a build killed at any point leaves its destination absent or
complete, an unfinished gallery is refused with a clear message and replaced by the next build, and a complete
gallery is only replaced when asked."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from flukeid import NEW_WHALE
from flukeid.cli import main
from flukeid.errors import FlukeidError
from flukeid.folders import leftover_folders, replacing_folder
from flukeid.gallery import Gallery
from flukeid.gallery.build import build_gallery, gallery_model
from flukeid.gallery.store import DATABASE_FILE, MODEL_LINK
from flukeid.models.artifact import ModelConfig, build_model, load_model, save_model
from flukeid.synth import SynthConfig, generate

TINY = ModelConfig(backbone="timm/test_efficientnet", pretrained=False, embedding_dim=16, image_size=(48, 96))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("build")
    generate(root / "cat", SynthConfig(individuals=6, photos=(2, 3), size=(64, 96), seed=3, train_new_whale=0.0))
    save_model(root / "model", build_model(TINY).eval(), TINY, labels=[], threshold=0.9)
    return {"cat": root / "cat", "model": root / "model"}


def catalogue_size(world: dict[str, Path]) -> int:
    labels = pd.read_csv(world["cat"] / "train.csv")
    return int((labels["Id"] != NEW_WHALE).sum())


def build(world: dict[str, Path], out: Path, *extra: str) -> int:
    return main(["gallery", "build", str(world["model"]), str(world["cat"]), "--out", str(out), *extra])


def assert_complete(world: dict[str, Path], out: Path) -> None:
    gallery = Gallery.open(out)
    assert len(gallery) == catalogue_size(world)
    assert (out / "model_path.txt").read_text() == str(world["model"].resolve())


# -- a build killed part way -----------------------------------------------------------------------------------------

CHILD = """
import os, signal, sys
import flukeid.folders as folders
import flukeid.gallery.store as store
from flukeid.cli import main

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

moment = sys.argv[1]
if moment == "database-written":  # the gallery's database exists, no photo is in yet
    store.Gallery.add = die
elif moment == "mid-insert":  # the third photo's row is being written
    real_row, rows = store._photo_row, []
    def dying_row(*row):
        rows.append(row)
        if len(rows) == 3:
            die()
        return real_row(*row)
    store._photo_row = dying_row
elif moment == "before-rename":  # every photo is in, the folder is about to be renamed into place
    folders._swap_in = die
main(sys.argv[2:])
"""


def killed_build(world: dict[str, Path], out: Path, moment: str, *extra: str) -> None:
    args = ["gallery", "build", str(world["model"]), str(world["cat"]), "--out", str(out), *extra]
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), moment, *args], check=False, capture_output=True, text=True
    )
    assert child.returncode == -signal.SIGKILL, child.stderr


@pytest.mark.parametrize("moment", ["database-written", "mid-insert", "before-rename"])
def test_a_killed_build_leaves_no_gallery_and_the_next_build_succeeds(
    world: dict[str, Path], tmp_path: Path, moment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gallery"
    killed_build(world, out, moment)
    assert not out.exists()  # never an empty gallery that looks valid
    assert leftover_folders(out)  # the killed build's temporary folder
    capsys.readouterr()
    assert main(["gallery", "info", str(out)]) == 1
    message = capsys.readouterr().err
    assert "a build of it was interrupted" in message and "flukeid gallery build" in message
    assert main(["identify", str(world["model"]), str(out), str(world["cat"] / "test")]) == 1
    assert build(world, out) == 0
    assert "was left by an interrupted build" in capsys.readouterr().out
    assert_complete(world, out)


def test_a_killed_replacing_build_keeps_the_old_gallery(world: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "gallery"
    assert build(world, out) == 0
    before = Gallery.open(out).photos()
    killed_build(world, out, "mid-insert", "--replace")
    assert Gallery.open(out).photos() == before
    assert_complete(world, out)


def test_ctrl_c_during_a_build_leaves_nothing_behind(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Gallery, "add", interrupted)
    out = tmp_path / "gallery"
    assert build(world, out) == 130
    assert not out.exists() and leftover_folders(out) == []


# -- unfinished galleries --------------------------------------------------------------------------------------------


def older_flukeid_interrupted_build(out: Path) -> None:
    """What an interrupted build of an older flukeid left: the database, no photos, no state, no model link."""
    Gallery.create(out, "model-a", 8)
    with sqlite3.connect(out / DATABASE_FILE) as conn:
        conn.execute("DELETE FROM info WHERE key = 'state'")


def building_gallery(out: Path) -> None:
    """A gallery still marked as being built (a build renamed into place by hand, say)."""
    Gallery.create(out, "model-a", 8, building=True)


@pytest.mark.parametrize("leave", [older_flukeid_interrupted_build, building_gallery])
def test_an_unfinished_gallery_is_refused_then_replaced_by_a_build(
    world: dict[str, Path], tmp_path: Path, leave, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gallery"
    leave(out)
    with pytest.raises(FlukeidError, match=r"an unfinished gallery \(.*interrupted.*\); build it again with"):
        Gallery.open(out)
    capsys.readouterr()
    assert main(["gallery", "info", str(out)]) == 1
    assert "unfinished gallery" in capsys.readouterr().err
    assert build(world, out) == 0
    assert "replacing the unfinished gallery" in capsys.readouterr().out
    assert_complete(world, out)


def test_an_empty_gallery_of_an_older_flukeid_that_was_written_to_still_opens(tmp_path: Path) -> None:
    gallery = Gallery.create(tmp_path / "g", "model-a", 8)
    gallery.add(["p.jpg"], ["a"], [[1.0] * 8])
    gallery.remove(images=["p.jpg"])
    with sqlite3.connect(gallery.path / DATABASE_FILE) as conn:
        conn.execute("DELETE FROM info WHERE key = 'state'")
    assert len(Gallery.open(gallery.path)) == 0


def test_a_complete_gallery_is_replaced_only_when_asked(
    world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gallery"
    assert build(world, out) == 0
    Gallery.open(out).remove(images=[Gallery.open(out).photos()[0].image])
    capsys.readouterr()
    assert build(world, out) == 1
    assert "already holds a flukeid gallery" in capsys.readouterr().err
    assert len(Gallery.open(out)) == catalogue_size(world) - 1  # untouched
    assert build(world, out, "--replace") == 0
    assert_complete(world, out)
    assert leftover_folders(out) == []


def test_a_build_never_replaces_a_folder_of_other_files(world: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "photos"
    out.mkdir()
    (out / "keep.jpg").write_bytes(b"mine")
    assert build(world, out, "--replace") == 1
    assert (out / "keep.jpg").read_bytes() == b"mine"
    (tmp_path / "empty").mkdir()
    assert build(world, tmp_path / "empty") == 0
    assert_complete(world, tmp_path / "empty")


def test_build_gallery_in_python_returns_the_gallery_in_place(world: dict[str, Path], tmp_path: Path) -> None:
    from flukeid.data.check import check_catalogue
    from flukeid.gallery.build import build_gallery

    built = build_gallery(load_model(world["model"]), check_catalogue(world["cat"]).usable_labels(), tmp_path / "g")
    assert built.gallery.path == tmp_path / "g" and built.replaced is None
    assert len(built.gallery) == catalogue_size(world)


def test_a_catalogue_id_flukeid_cannot_write_stops_the_build_before_embedding(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flukeid.data.check import check_catalogue
    from flukeid.gallery import build

    labels = check_catalogue(world["cat"]).usable_labels()
    labels.loc[labels.index[1], "Id"] = "w with spaces"
    monkeypatch.setattr(build, "embed_paths", None)  # never reached
    with pytest.raises(FlukeidError, match=rf"'{labels['Image'].iloc[1]}': ID 'w with spaces' contains whitespace"):
        build.build_gallery(load_model(world["model"]), labels, tmp_path / "g")
    assert not (tmp_path / "g").exists()


# -- vector stores -----------------------------------------------------------------------------------------------------


def test_a_milvus_gallery_is_built_shown_rebuilt_replaced_and_moved(
    world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("pymilvus")
    out = tmp_path / "gallery"
    assert build(world, out, "--store", "milvus") == 0
    assert_complete(world, out)
    capsys.readouterr()
    assert main(["gallery", "info", str(out)]) == 0
    assert "store milvus (Milvus Lite milvus.db, collection flukeid_" in capsys.readouterr().out
    assert main(["gallery", "rebuild", str(out)]) == 0
    assert "rebuilt the vector store" in capsys.readouterr().out
    assert build(world, out, "--store", "milvus", "--replace") == 0  # in the process that served the old one
    gallery = Gallery.open(out)
    vectors = gallery.all_vectors()
    assert gallery.search(vectors, k=1).ids[:, 0].tolist() == [p.id for p in gallery.photos()]
    capsys.readouterr()
    assert main(["gallery", "rebuild", str(out), "--store", "faiss"]) == 0
    assert "store faiss (embedded)" in capsys.readouterr().out
    assert not (out / "milvus.db").exists()
    assert Gallery.open(out).search(vectors, k=1).ids[:, 0].tolist() == [p.id for p in gallery.photos()]


def test_store_options_are_refused_before_embedding(
    world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    capsys.readouterr()
    assert build(world, tmp_path / "g", "--milvus-uri", "x.db") == 1
    assert "--milvus-uri is for the milvus store" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # as if not installed
    assert build(world, tmp_path / "g", "--store", "milvus") == 1
    err = capsys.readouterr().err
    assert "pip install -e '.[scale]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "g").exists()


# -- the folder helper -------------------------------------------------------------------------------------------------


def test_replacing_folder_keeps_the_old_folder_until_the_new_one_is_whole(tmp_path: Path) -> None:
    target = tmp_path / "folder"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), replacing_folder(target) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("failed half way")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    with replacing_folder(target) as tmp:
        (tmp / "new.txt").write_text("new")
        assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert leftover_folders(target) == []


def test_a_library_build_records_its_model_and_gallery_model_reads_it(world: dict[str, Path], tmp_path: Path) -> None:
    from flukeid.data.check import check_catalogue

    labels = check_catalogue(world["cat"]).usable_labels()
    out = tmp_path / "g"
    build_gallery(load_model(world["model"]), labels, out)
    assert (out / MODEL_LINK).read_text() == str(world["model"].resolve())
    assert gallery_model(out) == world["model"].resolve()
    assert gallery_model(out, tmp_path / "other") == tmp_path / "other"  # a model given wins
    (out / MODEL_LINK).unlink()
    with pytest.raises(FlukeidError, match="no model recorded for this gallery; pass --model"):
        gallery_model(out)
