"""Calibrated fusion of a model's matchers, fitted on a catalogue (``flukeid tune``) and stored as fusion.json.

Each matcher's raw pair score (the embedding's cosine, a local matcher's verified inliers) becomes P(same
individual) through its own isotonic calibration; a pair's fused score is the mean of those probabilities.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flukeid.config import from_dict, to_dict
from flukeid.errors import FlukeidError
from flukeid.identify.calibration import Isotonic, Logistic
from flukeid.identify.settings import IdentifySettings
from flukeid.scores import ScoreTable

GLOBAL = "global"
"""The component name of the embedding's cosine similarity (local matchers go by their settings' key)."""


@dataclass(frozen=True)
class PairScores:
    """The shortlisted (query, catalogue photo) pairs: the query's row (P,), the photo's gallery id (P,), its
    individual's column in the score table (P,), and each component's raw score (P,) (GLOBAL: cosine)."""

    query: np.ndarray
    photo: np.ndarray
    column: np.ndarray
    raw: dict[str, np.ndarray]


@dataclass(frozen=True)
class Fusion:
    """``components``: the isotonic calibration of each matcher; ``threshold``: the new_whale threshold on fused
    scores; ``match``: P(best match right) from the fused top-1 score and margin; ``settings`` and ``model_id``:
    what it was fitted for; ``map5``: MAP@5 on the validation queries it was fitted on; ``pairs``: how many
    labelled pairs the calibrations saw."""

    settings: IdentifySettings
    model_id: str
    components: dict[str, Isotonic]
    threshold: float
    match: Logistic
    map5: float
    pairs: int

    def pair_probability(self, raw: Mapping[str, np.ndarray]) -> np.ndarray:
        """Fused P(same) (N,) of pairs from each component's raw scores (N,): the mean of the calibrations."""
        return np.mean([self.components[name](raw[name]) for name in self.components], axis=0)

    def table(self, cosine: ScoreTable, pairs: PairScores) -> ScoreTable:
        """Per-individual fused scores (Q, I): the best fused P(same) of the individual's pairs; individuals off the
        shortlist score as a pair at their best cosine that no local matcher verified."""
        unmatched = {name: np.zeros(cosine.scores.size) for name in self.components}
        base = self.pair_probability(unmatched | {GLOBAL: cosine.scores.reshape(-1)})
        fused = base.reshape(cosine.scores.shape)
        if len(pairs.query):
            np.maximum.at(fused, (pairs.query, pairs.column), self.pair_probability(pairs.raw))
        return ScoreTable(cosine.individuals, fused.astype(np.float32), names_checked=True)

    def save(self, path: Path) -> None:
        body = {
            "settings": to_dict(self.settings),
            "model_id": self.model_id,
            "components": {name: iso.to_dict() for name, iso in self.components.items()},
            "threshold": self.threshold,
            "match": {"weights": list(self.match.weights), "bias": self.match.bias},
            "map5": self.map5,
            "pairs": self.pairs,
        }
        path.write_text(json.dumps(body, indent=2))

    @classmethod
    def load(cls, path: Path) -> Fusion | None:
        """The fusion stored at ``path``, None when there is none; FlukeidError when it cannot be read."""
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text())
            return cls(
                from_dict(IdentifySettings, raw["settings"], f"{path} settings"),
                str(raw["model_id"]),
                {name: Isotonic.from_dict(iso) for name, iso in raw["components"].items()},
                float(raw["threshold"]),
                Logistic(tuple(raw["match"]["weights"]), float(raw["match"]["bias"])),
                float(raw["map5"]),
                int(raw["pairs"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise FlukeidError(f"{path}: not a readable fusion ({exc}); fit it again with `flukeid tune`") from exc
