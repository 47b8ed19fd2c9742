"""Evaluate a model on a split: its catalogue part becomes a gallery, its queries go through the model's
identification pipeline (the same `Identifier` as `flukeid identify`), and open-set metrics are scored."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from flukeid.data.splits import Split
from flukeid.gallery.build import build_gallery
from flukeid.gallery.local import store_local_features
from flukeid.identify.identifier import Identifier, Prediction, load_fusion, load_settings
from flukeid.identify.ranking import Ranking, novelty_scores, rank, tune_threshold
from flukeid.identify.settings import IdentifySettings
from flukeid.metrics import OpenSetScores, open_set_scores
from flukeid.models.artifact import Artifact
from flukeid.progress import Progress
from flukeid.scores import ScoreTable


@dataclass(frozen=True)
class Evaluation:
    scores: OpenSetScores
    threshold: float | None
    oracle_map5: float  # MAP@5 with the threshold tuned on these very queries (an upper bound, for reference)
    rankings: list[Ranking]
    table: ScoreTable
    truths: list[str]  # the answer for each row of ``table``
    queries: list[Path]  # the photo of each row of ``table`` (unreadable ones are left out)
    seconds_per_query: float = 0.0  # scoring only: the gallery's embedding and stored features not counted
    best_probabilities: list[float] | None = None  # calibrated P(the best individual is right) of each query
    answer_probabilities: list[list[float]] | None = None  # P(each answer is right), as `Prediction.probabilities`

    def predictions(self) -> list[Prediction]:
        """Each query's answer, as `flukeid.identify.predict.write_outputs` writes them."""
        best, answers = self.best_probabilities, self.answer_probabilities
        return [
            Prediction(
                p.name,
                p,
                r,
                None if best is None else best[i],
                probabilities=None if answers is None else answers[i],
            )
            for i, (p, r) in enumerate(zip(self.queries, self.rankings))
        ]


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
    settings: IdentifySettings | None = None,
    local: bool = True,
    progress: Progress | None = None,
) -> Evaluation:
    """Score ``split.test`` queries against ``split.train`` with the model's identify settings and tuned fusion
    (``local=False``: the embedding alone, with its own threshold). Photos are used as they are: crop both sides
    first if the model crops."""
    settings = settings or load_settings(artifact.path)
    fusion = load_fusion(artifact, settings) if local else None
    with tempfile.TemporaryDirectory(prefix="flukeid-evaluate-") as tmp:
        gallery = build_gallery(artifact, split.train, Path(tmp) / "gallery").gallery
        identifier = Identifier(artifact, gallery, settings, fusion)
        store_local_features(gallery, identifier.matchers)  # as `gallery build` does: the timing is per query
        start = time.perf_counter()
        scored = identifier.score(list(split.test["path"].map(Path)), progress)
        seconds = (time.perf_counter() - start) / max(1, len(scored.paths))
    kept = split.test.set_index(split.test["path"].map(Path)).loc[scored.paths]
    evaluation = evaluate_table(
        scored.table, list(kept["Id"]), list(kept["Individual"]), identifier.threshold, scored.paths
    )
    best = identifier.probabilities(scored.table)
    return dataclasses.replace(
        evaluation,
        seconds_per_query=seconds,
        best_probabilities=None if best is None else [float(b) for b in best],
        answer_probabilities=identifier.answer_probabilities(scored.table, evaluation.rankings),
    )
