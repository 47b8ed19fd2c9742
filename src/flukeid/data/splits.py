"""Deterministic train/test splits of a labelled catalogue, written in the Kaggle layout.

Kinds:
- ``closed``: every query's individual has catalogue photos (about ``query_share`` of each one's photos).
- ``open``: ``unknown_share`` of the individuals are held out whole; their photos become ``new_whale``
  queries.
- ``disjoint``: individuals split in two; test queries keep their real IDs (zero-shot retrieval).
- ``whale``: the Kaggle benchmark's shape on any catalogue: a quarter of the individuals unknown (1-2 photos
  each become ``new_whale`` queries); known ones keep a long-tailed number of catalogue photos (52% one,
  24% two, 12% three, 12% four or more) and give one query photo each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from flukeid import NEW_WHALE
from flukeid.config import check_choice
from flukeid.data.boxes import Box, read_boxes
from flukeid.errors import ConfigError
from flukeid.folders import link_or_copy

if TYPE_CHECKING:
    from flukeid.data.check import CheckReport

WHALE_CATALOGUE_SIZES = (1, 2, 3, 4)
WHALE_CATALOGUE_PROBS = (0.52, 0.24, 0.12, 0.12)
"""Share of known individuals with 1, 2, 3 and 4-or-more catalogue photos (Kaggle 2018 train set)."""


class SplitKind(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    DISJOINT = "disjoint"
    WHALE = "whale"


@dataclass(frozen=True)
class Split:
    """``train``: Image, Id, path (the catalogue). ``test``: Image, Id, Individual, path (queries + answers).

    ``Id`` of a test row is the label a perfect system answers (``new_whale`` for an unknown individual);
    ``Individual`` is the real identity, needed for BAUS.
    """

    kind: SplitKind
    seed: int
    train: pd.DataFrame
    test: pd.DataFrame

    @property
    def new_whale_share(self) -> float:
        return float((self.test["Id"] == NEW_WHALE).mean()) if len(self.test) else 0.0


def _queries_of(photos: list[int], rng: np.random.Generator, share: float) -> list[int]:
    """Pick about ``share`` of one individual's photos as queries, leaving at least one in the catalogue."""
    if len(photos) < 2:
        return []
    count = min(max(1, round(share * len(photos))), len(photos) - 1)
    return list(rng.choice(photos, size=count, replace=False))


def _whale_catalogue_size(rng: np.random.Generator, available: int) -> int:
    size = int(rng.choice(WHALE_CATALOGUE_SIZES, p=WHALE_CATALOGUE_PROBS))
    if size == 4:
        size += int(rng.geometric(0.5)) - 1  # 4, 5, 6... with a decaying tail
    return min(size, available)


def make_split(
    labels: pd.DataFrame,
    kind: SplitKind | str,
    seed: int = 0,
    query_share: float = 0.2,
    unknown_share: float = 0.25,
) -> Split:
    """Split labelled rows (Image, Id, path). ``new_whale`` rows stay in the catalogue part."""
    check_choice("split kind", kind, [k.value for k in SplitKind])
    for name, share in (("query_share", query_share), ("unknown_share", unknown_share)):
        if not 0 <= share < 1:
            raise ConfigError(f"{name} must be in [0, 1), found {share}")
    kind = SplitKind(kind)
    rng = np.random.default_rng(seed)
    known = labels[labels["Id"] != NEW_WHALE].sort_values(["Id", "Image"]).reset_index(drop=True)
    groups = {ident: list(idx) for ident, idx in known.groupby("Id", sort=True).groups.items()}
    ids = sorted(groups)
    n_unknown = round(unknown_share * len(ids)) if kind is not SplitKind.CLOSED else 0
    unknown = set(rng.choice(ids, size=n_unknown, replace=False)) if n_unknown else set()
    train_rows: list[int] = []
    query_rows: list[tuple[int, str]] = []  # (row, answer label)
    for ident in ids:
        photos = [int(i) for i in rng.permutation(groups[ident])]
        if ident in unknown:
            if kind is SplitKind.WHALE:
                photos = photos[: int(rng.integers(1, 3))]
            answer = ident if kind is SplitKind.DISJOINT else NEW_WHALE
            query_rows += [(i, answer) for i in photos]
        elif kind is SplitKind.WHALE:
            if len(photos) < 2:
                continue  # a known individual needs one catalogue and one query photo
            query_rows.append((photos[0], ident))
            train_rows += photos[1 : 1 + _whale_catalogue_size(rng, len(photos) - 1)]
        elif kind is SplitKind.DISJOINT:
            train_rows += photos
        else:
            queries = _queries_of(photos, rng, query_share)
            query_rows += [(i, ident) for i in queries]
            train_rows += [i for i in photos if i not in queries]
    extra = labels[labels["Id"] == NEW_WHALE]
    train = pd.concat([known.loc[sorted(train_rows)], extra])[["Image", "Id", "path"]]
    test = known.loc[[i for i, _ in query_rows], ["Image", "path"]].copy()
    test["Id"] = [answer for _, answer in query_rows]
    test["Individual"] = known.loc[[i for i, _ in query_rows], "Id"].to_numpy()
    test = test.sample(frac=1.0, random_state=seed)[["Image", "Id", "Individual", "path"]]
    return Split(kind, seed, train.reset_index(drop=True), test.reset_index(drop=True))


def flat_name(image: str) -> str:
    """A file name that carries no label: the folder layout's ``w_1/a.jpg`` must not leak ``w_1``."""
    suffix = Path(image).suffix.lower() or ".jpg"
    return hashlib.sha1(image.encode("utf-8")).hexdigest()[:16] + suffix


def write_split(split: Split, out: Path, boxes: Mapping[str, Box] | None = None, top_ids: int = 4) -> None:
    """Write ``train.csv``, ``train/``, ``test/``, ``answers.csv`` (private), ``sample_submission.csv``."""
    for part in ("train", "test"):
        (out / part).mkdir(parents=True, exist_ok=True)
    renamed: dict[str, pd.DataFrame] = {}
    for part, frame in (("train", split.train), ("test", split.test)):
        frame = frame.assign(Source=frame["Image"], Image=frame["Image"].map(flat_name))
        for name, source in zip(frame["Image"], frame["path"]):
            target = out / part / name
            if not target.exists():
                link_or_copy(Path(source), target)
        renamed[part] = frame
    renamed["train"][["Image", "Id"]].to_csv(out / "train.csv", index=False)
    renamed["test"][["Image", "Id", "Individual", "Source"]].to_csv(out / "answers.csv", index=False)
    frequent = split.train.loc[split.train["Id"] != NEW_WHALE, "Id"].value_counts().index[:top_ids].tolist()
    guess = " ".join([NEW_WHALE, *frequent])
    pd.DataFrame({"Image": renamed["test"]["Image"], "Id": guess}).to_csv(out / "sample_submission.csv", index=False)
    if boxes:
        rows = [
            (new, *boxes[old])
            for frame in renamed.values()
            for new, old in zip(frame["Image"], frame["Source"])
            if old in boxes
        ]
        pd.DataFrame(rows, columns=["Image", "x0", "y0", "x1", "y1"]).to_csv(out / "boxes.csv", index=False)


def split_catalogue(
    report: CheckReport,
    out: Path,
    kind: SplitKind | str,
    seed: int = 0,
    query_share: float = 0.2,
    unknown_share: float = 0.25,
) -> Split:
    """Split a checked catalogue's usable labelled rows (FlukeidError if it has none) and write the Kaggle-layout
    pair to ``out`` (`write_split`), with the catalogue's boxes: its boxes file's, or a wildlife table's bboxes."""
    labels = report.require_usable()
    split = make_split(labels, kind, seed, query_share, unknown_share)
    boxes_file = report.catalogue.boxes_file if report.catalogue else None
    boxes = read_boxes(boxes_file).boxes if boxes_file else None
    if "box" in labels.columns:
        boxes = {image: box for image, box in zip(labels["Image"], labels["box"]) if isinstance(box, tuple)}
    write_split(split, out, boxes=boxes)
    return split
