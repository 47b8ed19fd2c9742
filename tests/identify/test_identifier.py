"""The one identification pipeline: calibration, fusion, stored local features, and the same answers from the
command line, `evaluate` and the curator service."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from flukeid import NEW_WHALE
from flukeid.cli import main
from flukeid.data.check import check_catalogue
from flukeid.data.splits import Split, SplitKind
from flukeid.errors import FlukeidError
from flukeid.gallery import Gallery
from flukeid.identify.calibration import Isotonic
from flukeid.identify.evaluate import evaluate_split
from flukeid.identify.identifier import Identifier, load_settings, save_settings
from flukeid.models.artifact import ModelConfig, build_model, load_model, save_model
from flukeid.serve.app import create_app
from flukeid.serve.auth import add_user
from flukeid.serve.catalog import init_catalog
from flukeid.serve.db import sessions
from flukeid.synth import SynthConfig, generate

TINY = ModelConfig(backbone="timm/test_efficientnet", pretrained=False, embedding_dim=32, image_size=(48, 96))
SIFT = "sift-512px-2000kp-v1"


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A synthetic catalogue, a tiny model tuned with RootSIFT over a shortlist of 4, and its gallery."""
    root = tmp_path_factory.mktemp("identifier")
    generate(root / "cat", SynthConfig(individuals=12, photos=(2, 3), size=(96, 160), seed=7, train_new_whale=0.0))
    save_model(root / "model", build_model(TINY).eval(), TINY, labels=[], threshold=0.9)
    assert main(["tune", str(root / "model"), str(root / "cat"), "--matchers", "sift", "--shortlist", "4"]) == 0
    assert main(["gallery", "build", str(root / "model"), str(root / "cat"), "--out", str(root / "gallery")]) == 0
    return {"cat": root / "cat", "model": root / "model", "gallery": root / "gallery"}


def test_calibration_is_strictly_increasing_and_puts_a_same_pair_above_a_different_one() -> None:
    rng = np.random.default_rng(0)
    same = rng.random(400) < 0.3
    scores = np.where(same, rng.poisson(20, 400), rng.poisson(3, 400)).astype(float)
    calibration = Isotonic.fit(scores, same)
    grid = np.linspace(-5, 60, 500)
    probability = calibration(grid)
    assert (np.diff(probability) > 0).all() and (probability >= 0).all() and (probability <= 1).all()
    assert calibration([25.0])[0] > 0.9 > 0.1 > calibration([1.0])[0]  # a same-like pair above a different-like
    assert Isotonic.from_dict(calibration.to_dict()) == calibration


def test_the_command_line_evaluate_and_the_service_answer_the_same_top5(tuned: dict[str, Path], tmp_path: Path) -> None:
    queries = sorted((tuned["cat"] / "test").iterdir())[:3]
    out = tmp_path / "out"
    args = ["identify", str(tuned["model"]), str(tuned["gallery"]), *map(str, queries), "--out", str(out)]
    assert main([*args, "--no-report"]) == 0
    command_line = {row.Image: row.Id.split() for row in pd.read_csv(out / "submission.csv").itertuples()}

    labels = check_catalogue(tuned["cat"]).usable_labels()
    test = pd.DataFrame({"Image": [q.name for q in queries], "Id": "x", "Individual": "x", "path": queries})
    evaluation = evaluate_split(load_model(tuned["model"]), Split(SplitKind.OPEN, 0, labels, test))
    evaluated = {q.name: r.ids for q, r in zip(evaluation.queries, evaluation.rankings)}
    lines = pd.read_json(out / "predictions.jsonl", lines=True).set_index("image")
    for prediction in evaluation.predictions():  # the same calibrated probabilities too
        assert prediction.probabilities == pytest.approx(lines.loc[prediction.image, "probabilities"], abs=1e-5)

    shutil.copytree(tuned["gallery"], tmp_path / "gallery")
    settings = init_catalog(tmp_path / "catalog", tuned["model"], tmp_path / "gallery")
    with sessions(settings.database).begin() as session:
        token = add_user(session, "viewer", "viewer")
    client = TestClient(create_app(tmp_path / "catalog"))
    served = {}
    for query in queries:
        files = [("files", (query.name, query.read_bytes(), "image/jpeg"))]
        answer = client.post("/api/identify", files=files, headers={"Authorization": f"Bearer {token}"}).json()
        ids = [c["individual"] for c in answer["candidates"]]
        served[query.name] = [
            *ids[: answer["new_individual"]["rank"]],
            NEW_WHALE,
            *ids[answer["new_individual"]["rank"] :],
        ][:5]
    assert command_line == evaluated == served


def test_every_answer_comes_with_its_calibrated_probability(tuned: dict[str, Path]) -> None:
    queries = sorted((tuned["cat"] / "test").iterdir())[:4]
    for p in Identifier.load(tuned["model"], Gallery.open(tuned["gallery"])).identify(queries):
        assert p.probability is not None and p.probabilities is not None
        assert len(p.probabilities) == len(p.ranking.ids) and all(0 <= v <= 1 for v in p.probabilities)
        for name, score, probability in zip(p.ranking.ids, p.ranking.scores, p.probabilities):
            expected = 1 - p.probability if name == NEW_WHALE else score  # a fused score is P(same) already
            assert probability == pytest.approx(expected, abs=1e-6)


def test_a_second_identify_run_extracts_no_gallery_features(tuned: dict[str, Path]) -> None:
    query = sorted((tuned["cat"] / "test").iterdir())[0]
    gallery = Gallery.open(tuned["gallery"])
    assert gallery.local_feature_counts() == {SIFT: len(gallery)}  # stored by `gallery build`
    first = Identifier.load(tuned["model"], gallery)
    first.identify([query])
    second = Identifier.load(tuned["model"], Gallery.open(tuned["gallery"]))
    second.identify([query])
    assert first.features is not None and second.features is not None
    assert first.features.extracted == second.features.extracted == 0


def test_a_gallery_without_features_extracts_them_once_and_keeps_them(
    tuned: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gallery = Gallery.create(tmp_path / "g", load_model(tuned["model"]).model_id, 32)
    source = Gallery.open(tuned["gallery"])
    photos = source.photos()
    gallery.add(
        [p.image for p in photos], [p.individual for p in photos], source.all_vectors(), [p.path for p in photos]
    )
    query = sorted((tuned["cat"] / "test").iterdir())[0]
    with caplog.at_level("INFO"):
        identifier = Identifier.load(tuned["model"], gallery)
        answer = identifier.identify([query])
    assert identifier.features is not None and identifier.features.extracted > 0
    assert "have no stored sift" in caplog.text
    again = Identifier.load(tuned["model"], gallery)
    assert again.identify([query]) == answer and again.features is not None and again.features.extracted == 0


def test_removing_a_photo_removes_its_features(tuned: dict[str, Path], tmp_path: Path) -> None:
    shutil.copytree(tuned["gallery"], tmp_path / "g")
    gallery = Gallery.open(tmp_path / "g")
    photo, before = gallery.photos()[0], len(gallery)
    assert gallery.local_features(SIFT, [photo.sha1])
    assert main(["remove", str(tmp_path / "g"), "--image", photo.image]) == 0
    assert not Gallery.open(tmp_path / "g").local_features(SIFT, [photo.sha1])
    assert Gallery.open(tmp_path / "g").local_feature_counts() == {SIFT: before - 1}


def test_a_model_tuned_with_other_settings_is_refused_until_re_tuned(tuned: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(tuned["model"], model)
    save_settings(model, dataclasses.replace(load_settings(model), shortlist=9))
    with pytest.raises(FlukeidError, match=r"fitted with other identify settings.*re-tune it: `flukeid tune"):
        Identifier.load(model, Gallery.open(tuned["gallery"]))
    assert main(["tune", str(model), str(tuned["cat"])]) == 0
    assert json.loads((model / "fusion.json").read_text())["settings"]["shortlist"] == 9
    Identifier.load(model, Gallery.open(tuned["gallery"]))
