"""Local-feature re-ranking on synthetic flukes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from flukeid.data.synth import render_photo, sample_individual
from flukeid.identify.ranking import ScoreTable
from flukeid.identify.rerank import RerankConfig, Reranker, count_inliers, extract, fit_fusion


def photos(tmp_path: Path, seed: int, individuals: int = 3, per: int = 3) -> dict[str, list[Path]]:
    rng = np.random.default_rng(seed)
    out: dict[str, list[Path]] = {}
    for i in range(individuals):
        ind = sample_individual(rng)
        for j in range(per):
            path = tmp_path / f"{i}_{j}.png"
            render_photo(ind, rng, (320, 220), greyscale=0.0, text=0.0).image.save(path)
            out.setdefault(f"w_{i}", []).append(path)
    return out


def test_same_individual_has_more_inliers_than_different(tmp_path: Path) -> None:
    cfg = RerankConfig()
    by_id = photos(tmp_path, seed=11)
    same, different = [], []
    for ident, paths in by_id.items():
        query = extract(paths[0], cfg)
        same += [count_inliers(query, extract(p, cfg)) for p in paths[1:]]
        different += [
            count_inliers(query, extract(p, cfg)) for other, ps in by_id.items() if other != ident for p in ps
        ]
    assert np.mean(same) > np.mean(different) + 1 and max(same) >= 5, (same, different)


def test_rerank_lifts_the_right_individual_and_fusion_weight_is_fitted(tmp_path: Path) -> None:
    by_id = photos(tmp_path, seed=12)
    queries = []
    for paths in by_id.values():  # the query is a re-encoded, resized copy of one catalogue photo
        image = Image.open(paths[0])
        image.resize((image.width * 3 // 4, image.height * 3 // 4)).save(paths[0].with_suffix(".jpg"), quality=80)
        queries.append(paths[0].with_suffix(".jpg"))
    gallery = by_id
    names = sorted(gallery)
    wrong_first = np.array([[0.5, 0.9, 0.8], [0.9, 0.5, 0.8], [0.9, 0.8, 0.5]], dtype=np.float32)  # truth is last
    table = ScoreTable(names, wrong_first)
    reranker = Reranker(gallery, RerankConfig(top_k=3, workers=2))
    inliers = reranker.inliers(table, queries)
    assert inliers.shape == (3, 3) and all(inliers[q, q] == inliers[q].max() for q in range(3))
    fit = fit_fusion(reranker, table, inliers, names)
    assert fit.weight > 0 and fit.map5 == 1.0
    assert extract(tmp_path / "missing.png", RerankConfig()).descriptors.shape == (0, 128)


def test_keypoint_cache_keeps_the_most_recently_used_photos(tmp_path: Path) -> None:
    by_id = photos(tmp_path, seed=3, individuals=1, per=3)
    a, b, c = by_id["w_0"]
    reranker = Reranker(by_id, RerankConfig(cache_photos=2))
    first = reranker.keypoints(a)
    reranker.keypoints(b)
    assert reranker.keypoints(a) is first  # a hit: a becomes the most recent
    reranker.keypoints(c)  # evicts b, the least recently used
    assert set(reranker._cache) == {a, c}
    assert len(first.descriptors) > 0
