"""Identify on CPU with a tiny untrained model: the mechanics (embed, gallery, rank, outputs) not accuracy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_image

from flukeid import NEW_WHALE
from flukeid.cli import main
from flukeid.data.submission import score_submission
from flukeid.embed import embed_paths
from flukeid.errors import FlukeidError
from flukeid.gallery import Gallery
from flukeid.identify.cluster import cluster_embeddings
from flukeid.identify.ensemble import combine, fit_ensemble
from flukeid.identify.identifier import Identifier
from flukeid.identify.predict import write_outputs
from flukeid.identify.ranking import tune_threshold
from flukeid.models.artifact import ModelConfig, build_model, load_model, save_model
from flukeid.scores import ScoreTable
from flukeid.synth import SynthConfig, generate

TINY = ModelConfig(backbone="timm/test_efficientnet", pretrained=False, embedding_dim=32, image_size=(48, 96))


def identify(artifact, gallery: Gallery, paths: list[Path], threshold: float | None = None):  # type: ignore[no-untyped-def]
    return Identifier.load(artifact, gallery).identify(paths, threshold=threshold)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("identify")
    generate(root / "cat", SynthConfig(individuals=10, photos=(2, 3), size=(64, 96), seed=5, train_new_whale=0.0))
    save_model(root / "model", build_model(TINY).eval(), TINY, labels=[], threshold=0.9)
    other = ModelConfig(backbone="timm/test_efficientnet", pretrained=False, embedding_dim=16, image_size=(48, 96))
    save_model(root / "other", build_model(other).eval(), other, labels=[], threshold=0.9)
    assert main(["gallery", "build", str(root / "model"), str(root / "cat"), "--out", str(root / "gallery")]) == 0
    return {
        "root": root,
        "cat": root / "cat",
        "model": root / "model",
        "other": root / "other",
        "gallery": root / "gallery",
    }


def test_gallery_holds_the_catalogue(world: dict[str, Path]) -> None:
    labels = pd.read_csv(world["cat"] / "train.csv")
    gallery = Gallery.open(world["gallery"])
    assert len(gallery) == len(labels)
    assert gallery.individuals() == sorted(set(labels["Id"]) - {NEW_WHALE})


def test_enroll_then_identify_finds_the_new_individual_and_remove_forgets_it(
    world: dict[str, Path], tmp_path: Path
) -> None:
    gallery = tmp_path / "g"
    shutil.copytree(world["gallery"], gallery)
    photo = sorted((world["cat"] / "test").iterdir())[0]
    artifact = load_model(world["model"])
    assert main(["enroll", str(gallery), str(photo), "--id", "w_newcomer"]) == 0
    [found] = identify(artifact, Gallery.open(gallery), [photo], threshold=0.5)
    assert found.ranking.ids[0] == "w_newcomer" and found.ranking.scores[0] == pytest.approx(1.0, abs=1e-4)
    assert main(["remove", str(gallery), "--id", "w_newcomer"]) == 0
    [after] = identify(artifact, Gallery.open(gallery), [photo], threshold=0.5)
    assert "w_newcomer" not in after.ranking.ids


def test_enroll_is_all_or_nothing_and_fails_when_no_photo_can_be_read(
    world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gallery = tmp_path / "g"
    shutil.copytree(world["gallery"], gallery)
    before = Gallery.open(gallery).photos()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    good = sorted((world["cat"] / "test").iterdir())[0]
    capsys.readouterr()
    assert main(["enroll", str(gallery), str(broken), "--id", "w_newcomer"]) == 1
    assert "1 photo(s) cannot be read, so none was enrolled" in capsys.readouterr().err
    assert main(["enroll", str(gallery), str(good), str(broken), str(tmp_path / "gone.jpg"), "--id", "w_newcomer"]) == 1
    message = " ".join(capsys.readouterr().err.split())
    assert "2 photo(s) cannot be read, so none was enrolled" in message
    assert "broken.jpg: not a readable image" in message and "gone.jpg: file not found" in message
    assert Gallery.open(gallery).photos() == before


@pytest.mark.parametrize("bad", ["w with spaces", NEW_WHALE, "", "w\u200bx\x07"])
def test_enroll_refuses_an_id_flukeid_cannot_write(
    world: dict[str, Path], tmp_path: Path, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    gallery = tmp_path / "g"
    shutil.copytree(world["gallery"], gallery)
    before = Gallery.open(gallery).photos()
    photo = sorted((world["cat"] / "test").iterdir())[0]
    capsys.readouterr()
    assert main(["enroll", str(gallery), str(photo), "--id", bad]) == 1
    assert "--id: " in capsys.readouterr().err
    assert Gallery.open(gallery).photos() == before


def test_identify_cli_writes_a_submission_that_scores(world: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert (
        main(["identify", str(world["model"]), str(world["gallery"]), str(world["cat"] / "test"), "--out", str(out)])
        == 0
    )
    score = score_submission(out / "submission.csv", world["cat"] / "answers.csv")
    assert 0.0 <= score <= 1.0
    lines = pd.read_json(out / "predictions.jsonl", lines=True)
    assert len(lines) == len(pd.read_csv(world["cat"] / "answers.csv"))
    assert (out / "report.html").read_text().count("<img") > len(lines)


def test_evaluate_cli_writes_a_report_with_map5_and_plots(world: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "eval"
    assert main(["evaluate", str(world["model"]), str(world["cat"]), "--split", "open", "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "MAP@5 over" in page and "individuals" in page and page.count("data:image/png;base64,") >= 2
    assert (out / "new_individual_pr.png").is_file() and (out / "submission.csv").is_file()


def test_unreadable_photos_are_reported_not_fatal(world: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    good = write_image(tmp_path / "good.jpg", seed=1, size=(96, 64))
    results = identify(load_model(world["model"]), Gallery.open(world["gallery"]), [broken, good])
    assert results[0].error and "broken.jpg" in results[0].error and results[0].ranking.ids == [NEW_WHALE]
    assert results[1].error is None and len(results[1].ranking.ids) == 5
    paths = write_outputs(results, tmp_path / "o")
    assert "not a readable image" in paths["jsonl"].read_text()


def test_gallery_refuses_another_model_and_empty_gallery_answers_new_whale(
    world: dict[str, Path], tmp_path: Path
) -> None:
    other = load_model(world["other"])
    photo = sorted((world["cat"] / "test").iterdir())[0]
    with pytest.raises(FlukeidError, match="was built with model"):
        identify(other, Gallery.open(world["gallery"]), [photo])
    artifact = load_model(world["model"])
    empty = Gallery.create(tmp_path / "empty", artifact.model_id, artifact.model.dim)
    [answer] = identify(artifact, empty, [photo])
    assert answer.ranking.ids == [NEW_WHALE]


def test_verify_and_cluster(world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo = sorted((world["cat"] / "test").iterdir())[0]
    copy = tmp_path / "copy.jpg"
    shutil.copy(photo, copy)
    assert main(["verify", str(world["model"]), str(photo), str(copy)]) == 1  # the model is not tuned
    assert "is not tuned" in capsys.readouterr().err
    vectors = embed_paths(load_model(world["model"]), [photo, copy, *sorted((world["cat"] / "train").iterdir())[:4]])
    labels = cluster_embeddings(vectors.vectors, threshold=0.9999)
    assert labels[0] == labels[1] and len(set(labels)) >= 2
    assert cluster_embeddings(np.zeros((0, 4)), 0.5) == []
    assert main(["cluster", str(world["model"]), str(tmp_path), "--out", str(tmp_path / "c.csv")]) == 0
    assert list(pd.read_csv(tmp_path / "c.csv")["Cluster"]) == [0]


def test_ensemble_is_at_least_as_good_as_each_model() -> None:
    rng = np.random.default_rng(0)
    names = [f"w_{i}" for i in range(12)]
    truths = [names[i % 12] for i in range(30)] + [NEW_WHALE] * 10
    tables = []
    for noise in (0.6, 0.7):
        scores = rng.normal(0.2, noise, size=(40, 12))
        for q, truth in enumerate(truths):
            if truth != NEW_WHALE:
                scores[q, names.index(truth)] += 0.8
        tables.append(ScoreTable(names, scores.astype(np.float32)))
    fit = fit_ensemble(tables, truths)
    singles = [tune_threshold(t, truths).map5 for t in tables]
    assert fit.map5 >= max(singles)
    assert combine(tables, fit.weights).scores.shape == (40, 12)
    half = ScoreTable(names[:6], tables[0].scores[:, :6])
    mixed = combine([half, tables[1]])
    assert mixed.individuals == sorted(names)
    column = mixed.individuals.index("w_7")  # missing from `half`: it counts as the lowest cosine there
    assert np.allclose(mixed.scores[:, column], 0.5 * -1.0 + 0.5 * tables[1].scores[:, 7], atol=1e-6)


def test_tune_fits_the_fusion_that_identify_and_verify_use(world: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(world["model"], model)
    gallery = tmp_path / "g"
    assert main(["tune", str(model), str(world["cat"]), "--matchers", "sift", "--shortlist", "3"]) == 0
    fusion = json.loads((model / "fusion.json").read_text())
    assert sorted(fusion["components"])[0] == "global" and sorted(fusion["components"])[1].startswith("sift-")
    assert len(fusion["components"]) == 2 and fusion["settings"]["shortlist"] == 3
    assert main(["gallery", "build", str(model), str(world["cat"]), "--out", str(gallery)]) == 0
    train = pd.read_csv(world["cat"] / "train.csv")
    source = world["cat"] / "train" / train["Image"].iloc[0]
    query = tmp_path / "query.jpg"
    shutil.copy(source, query)  # an exact copy: local features match everywhere
    [answer] = Identifier.load(model, Gallery.open(gallery)).identify([query])
    assert answer.ranking.ids[0] == train["Id"].iloc[0] and 0.0 <= (answer.probability or 0.0) <= 1.0
    out = tmp_path / "out"
    assert main(["identify", str(model), str(gallery), str(query), "--out", str(out)]) == 0
    assert pd.read_csv(out / "submission.csv")["Id"].iloc[0].split()[0] == train["Id"].iloc[0]
    same, other = Identifier.load(model), world["cat"] / "train" / train["Image"].iloc[-1]
    assert same.verify(source, query) > same.verify(source, other)


def test_frozen_default_recipe_fits_the_fusion(world: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "frozen"
    args = ["frozen", str(out), "--backbone", "mobilenetv2", "--size", "64", "--tune-on", str(world["cat"])]
    assert main([*args, "--shortlist", "4"]) == 0
    fusion = json.loads((out / "fusion.json").read_text())
    assert 0.0 <= fusion["map5"] <= 1.0 and fusion["pairs"] > 0 and "global" in fusion["components"]
    assert load_model(out).threshold is not None


def test_with_choices_keeps_known_matchers_options_and_defaults_new_ones() -> None:
    from flukeid.identify.settings import IdentifySettings, with_choices
    from flukeid.matchers import MatcherSettings

    sift = MatcherSettings("sift", max_side=256, keypoints=100)
    settings = IdentifySettings(matchers=(sift,), shortlist=7)
    assert with_choices(settings) == settings
    chosen = with_choices(settings, ["xfeat", "sift"], 3)
    assert chosen.matchers == (MatcherSettings("xfeat"), sift) and chosen.shortlist == 3
    assert with_choices(settings, []).matchers == ()
