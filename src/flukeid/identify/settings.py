"""How a model identifies: which local matchers run, on how many candidates, in what time. A model setting,
stored as ``identify.yaml`` in the model folder; the fusion fitted by ``flukeid tune`` records the settings it was
fitted with, so a changed setting asks for a re-tune instead of reusing numbers fitted for other scores."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from flukeid.config import check_value
from flukeid.matchers import MatcherSettings, check_settings

DEFAULT_MATCHERS: tuple[MatcherSettings, ...] = (MatcherSettings("sift", max_side=512, keypoints=2000),)


@dataclass(frozen=True)
class IdentifySettings:
    """``shortlist``: catalogue individuals per query matched locally (the best by the global embedding), each by
    at most ``photos_per_individual`` of its photos (the most similar). ``budget_s``: seconds of local matching per
    query, None for none (with a budget, answers depend on the machine's speed and load). ``workers``: threads
    that match pairs. ``fuse_global``: the embedding's calibrated cosine is one of the fused scores (False: it only
    makes the shortlist, the local matchers decide)."""

    matchers: tuple[MatcherSettings, ...] = DEFAULT_MATCHERS
    shortlist: int = 30
    photos_per_individual: int = 2
    budget_s: float | None = None
    workers: int = 2
    fuse_global: bool = True

    def __post_init__(self) -> None:
        for matcher in self.matchers:
            check_settings(matcher)
        keys = [m.key for m in self.matchers]
        check_value("matchers", keys, len(set(keys)) == len(keys), "distinct")
        check_value("shortlist", self.shortlist, self.shortlist >= 1, "an integer >= 1")
        check_value("photos_per_individual", self.photos_per_individual, self.photos_per_individual >= 1, ">= 1")
        check_value("budget_s", self.budget_s, self.budget_s is None or self.budget_s > 0, "None or > 0")
        check_value("workers", self.workers, self.workers >= 1, "an integer >= 1")


def with_choices(
    settings: IdentifySettings, matchers: Sequence[str] | None = None, shortlist: int | None = None
) -> IdentifySettings:
    """``settings`` running the matchers named in ``matchers`` (those it has keep their options, others get their
    defaults; empty: none) on a ``shortlist`` of individuals; None leaves a setting as it is."""
    if matchers is not None:
        current = {m.name: m for m in settings.matchers}
        chosen = tuple(current.get(n) or MatcherSettings(n) for n in matchers)  # type: ignore[arg-type]
        settings = dataclasses.replace(settings, matchers=chosen)
    if shortlist is not None:
        settings = dataclasses.replace(settings, shortlist=shortlist)
    return settings
