"""Batches of P individuals x M photos that always hold positive pairs, even for singletons.

An individual with fewer than M photos is drawn with replacement, so a singleton appears M times; the
dataset augments each draw independently, so its positive pair is an augmented copy of itself. Photos with a
negative label (``new_whale``) are only ever negatives: a few join each batch, each at most once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class IdentityBatchSampler(Sampler[list[int]]):
    """Yield lists of dataset indices: ``classes_per_batch * m`` positives-bearing rows + negatives.

    ``labels[i] >= 0``: individual of row i; ``< 0``: a negatives-only photo. ``rank``/``world_size`` give each
    DDP process its own stream of batches (seeded by ``seed + rank`` and the epoch).
    """

    def __init__(
        self,
        labels: Sequence[int],
        batch_size: int,
        m: int = 4,
        negatives: int = 0,
        batches_per_epoch: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if m < 2:
            raise ValueError(f"m_per_class must be at least 2 to form positive pairs, found {m}")
        if batch_size < m + negatives:
            raise ValueError(f"batch_size {batch_size} is smaller than m_per_class {m} + negatives {negatives}")
        by_class: dict[int, list[int]] = defaultdict(list)
        for index, label in enumerate(labels):
            if label >= 0:
                by_class[int(label)].append(index)
        self.by_class = {c: np.array(rows) for c, rows in sorted(by_class.items())}
        self.negative_rows = np.array([i for i, label in enumerate(labels) if label < 0], dtype=np.int64)
        self.classes_per_batch = (batch_size - negatives) // m
        if len(self.by_class) < 2:
            raise ValueError(f"need at least 2 individuals to train, found {len(self.by_class)}")
        self.classes_per_batch = min(self.classes_per_batch, len(self.by_class))
        self.m = m
        self.negatives = min(negatives, len(self.negative_rows))
        # an epoch sees every photo once, or every individual m times where most are singletons
        positives = sum(len(rows) for rows in self.by_class.values())
        default = max(1, max(positives, len(self.by_class) * m) // (self.classes_per_batch * m) // world_size)
        self.batches_per_epoch = batches_per_epoch or default
        self.seed, self.rank, self.epoch = seed, rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.rank, self.epoch])
        self.epoch += 1
        classes = np.array(list(self.by_class))
        for _ in range(self.batches_per_epoch):
            batch: list[int] = []
            for c in rng.choice(classes, size=self.classes_per_batch, replace=False):
                rows = self.by_class[int(c)]
                batch += rng.choice(rows, size=self.m, replace=len(rows) < self.m).tolist()
            if self.negatives:
                batch += rng.choice(self.negative_rows, size=self.negatives, replace=False).tolist()
            yield batch
