"""Local matchers on synthetic flukes: the same individual out-scores a different one, for every matcher."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flukeid.errors import ConfigError
from flukeid.matchers import MATCHERS, LocalFeatures, MatcherSettings, create_matcher
from flukeid.synth import render_photo, sample_individual


@pytest.fixture(scope="module")
def flukes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Three individuals, two photos each (different pose, light and background)."""
    folder = tmp_path_factory.mktemp("flukes")
    rng = np.random.default_rng(11)
    out: dict[str, list[Path]] = {}
    for i in range(3):
        individual = sample_individual(rng)
        for j in range(2):
            path = folder / f"{i}_{j}.png"
            render_photo(individual, rng, (320, 220), greyscale=0.0, text=0.0).image.save(path)
            out.setdefault(f"w_{i}", []).append(path)
    return out


KEYPOINTS = {"sift": 512, "aliked": 256, "disk": 512, "xfeat": 256}
"""Enough for a margin on these photos (DISK's keypoints are the least distinctive), few for CPU time."""


@pytest.mark.parametrize("name", sorted(MATCHERS))
def test_the_same_individual_out_scores_the_others(name: str, flukes: dict[str, list[Path]]) -> None:
    matcher = create_matcher(MatcherSettings(name, max_side=320, keypoints=KEYPOINTS[name]))  # type: ignore[arg-type]
    features = {ident: [matcher.features(p) for p in paths] for ident, paths in flukes.items()}
    for ident, (query, same) in features.items():
        right = matcher.score(query, same)
        wrong = [matcher.score(query, other[j]) for o, other in features.items() if o != ident for j in (0, 1)]
        print(name, ident, right, wrong)
        assert right > max(wrong), (name, ident, right, wrong)


def test_features_survive_storage_and_unreadable_photos_match_nothing(
    flukes: dict[str, list[Path]], tmp_path: Path
) -> None:
    matcher = create_matcher(MatcherSettings("sift", max_side=256, keypoints=300))
    features = matcher.features(flukes["w_0"][0])
    back = LocalFeatures.from_bytes(features.to_bytes())
    assert back.size == features.size and np.array_equal(back.keypoints, features.keypoints)
    assert np.allclose(back.descriptors, features.descriptors, atol=1e-3) and 0 < len(back) <= 300
    assert max(features.size) <= 256  # matched at most max_side large
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a photo")
    assert len(matcher.features(broken)) == 0 and matcher.score(matcher.features(broken), features) == 0
    Image.new("RGB", (64, 64), "grey").save(tmp_path / "flat.png")  # no texture, no keypoints
    assert matcher.score(matcher.features(tmp_path / "flat.png"), features) == 0


def test_settings_name_the_valid_matchers() -> None:
    with pytest.raises(ConfigError, match=r"unknown matcher 'alked' .*did you mean 'aliked'"):
        create_matcher(MatcherSettings("alked"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="keypoints >= 8"):
        create_matcher(MatcherSettings("sift", keypoints=0))
    assert MatcherSettings("aliked", 512, 1024).key == "aliked-512px-1024kp-v1"


def test_a_homography_magsac_cannot_fit_verifies_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    from flukeid.matchers.base import Correspondences, verified_inliers

    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, size=(20, 2)).astype(np.float32)
    pairs = Correspondences(points, points + 3.0, np.ones(20, np.float32))
    assert verified_inliers(pairs, 8.0) == 20  # a pure shift is a homography: all verified

    def refuse(*args: object, **kwargs: object) -> None:
        raise cv2.error("(-215:Assertion failed) !model.empty() in function 'setModelParameters'")

    monkeypatch.setattr(cv2, "findHomography", refuse)  # what OpenCV 5 does on some degenerate sets
    assert verified_inliers(pairs, 8.0) == 0
