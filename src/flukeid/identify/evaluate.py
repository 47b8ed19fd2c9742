"""Evaluate a model on a split: embed catalogue and queries, rank, score open-set metrics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flukeid import NEW_WHALE
from flukeid.data.splits import Split
from flukeid.embed import Embeddings, embed_paths
from flukeid.identify.ranking import Ranking, ScoreTable, individual_scores, novelty_scores, rank, tune_threshold
from flukeid.metrics import OpenSetScores, open_set_scores
from flukeid.models.artifact import Artifact


@dataclass(frozen=True)
class Evaluation:
    scores: OpenSetScores
    threshold: float | None
    oracle_map5: float  # MAP@5 with the threshold tuned on these very queries (an upper bound, for reference)
    rankings: list[Ranking]
    table: ScoreTable
    truths: list[str]  # the answer for each row of ``table``
    queries: list[Path]  # the photo of each row of ``table`` (unreadable ones are left out)


def score_queries(gallery: Embeddings, gallery_ids: list[str], queries: Embeddings) -> ScoreTable:
    """Per-individual max cosine similarity of each query to the catalogue."""
    return individual_scores(queries.vectors @ gallery.vectors.T, gallery_ids)


def evaluate_table(
    table: ScoreTable, truths: list[str], identities: list[str], threshold: float | None, queries: list[Path]
) -> Evaluation:
    rankings = rank(table, k=5, threshold=threshold)
    scores = open_set_scores([r.ids for r in rankings], truths, identities, novelty_scores(table))
    oracle = tune_threshold(table, truths).map5 if len(truths) else float("nan")
    return Evaluation(scores, threshold, oracle, rankings, table, list(truths), list(queries))


def evaluate_split(
    artifact: Artifact,
    split: Split,
    cache: Path | None = None,
    num_workers: int = 2,
    flip_tta: bool = False,
    rerank: bool = False,
) -> Evaluation:
    """Score ``split.test`` queries against ``split.train`` with the model's tuned threshold (with ``rerank``,
    fused with local-feature matches at the weight and threshold of the model's ``rerank.json``)."""
    catalogue = split.train[split.train["Id"] != NEW_WHALE]
    gallery = embed_paths(artifact, list(catalogue["path"]), cache=cache, num_workers=num_workers, flip_tta=flip_tta)
    ids = dict(zip(catalogue["path"].map(Path), catalogue["Id"]))
    queries = embed_paths(artifact, list(split.test["path"]), cache=cache, num_workers=num_workers, flip_tta=flip_tta)
    kept = split.test.set_index(split.test["path"].map(Path)).loc[queries.paths]
    table = score_queries(gallery, [ids[p] for p in gallery.paths], queries)
    threshold = artifact.threshold
    if rerank:
        from flukeid.identify.rerank import FusionFit, Reranker

        fusion = FusionFit.load(artifact.path / "rerank.json")
        reranker = Reranker.for_labels(catalogue)
        table, threshold = reranker.fuse(table, reranker.inliers(table, queries.paths), fusion.weight), fusion.threshold
    return evaluate_table(table, list(kept["Id"]), list(kept["Individual"]), threshold, queries.paths)


def mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"
