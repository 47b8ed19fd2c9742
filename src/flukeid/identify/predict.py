"""The answers of `flukeid identify` as files: a Kaggle submission and one JSON line per photo."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from flukeid.data.submission import write_submission
from flukeid.identify.identifier import Prediction


def write_outputs(predictions: Sequence[Prediction], out: Path) -> dict[str, Path]:
    """Write ``submission.csv`` (Kaggle) and ``predictions.jsonl``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    submission, lines = out / "submission.csv", out / "predictions.jsonl"
    write_submission(submission, {p.image: p.ranking.ids for p in predictions})
    with lines.open("w") as handle:
        for p in predictions:
            record = {
                "image": p.image,
                "ids": p.ranking.ids,
                "scores": [None if np.isnan(s) else round(float(s), 5) for s in p.ranking.scores],
                "probability": p.probability,
                "probabilities": None if p.probabilities is None else [round(v, 5) for v in p.probabilities],
                "error": p.error,
            }
            handle.write(json.dumps(record) + "\n")
    return {"submission": submission, "jsonl": lines}
