"""Local features of gallery photos: extracted once per photo content and matcher, kept in the gallery's
database (removed with the photo), decoded into a bounded in-memory cache for matching."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from flukeid.gallery.store import Gallery, Photo
from flukeid.matchers import LocalFeatures, LocalMatcher
from flukeid.progress import Progress

log = logging.getLogger(__name__)


def _extract(matcher: LocalMatcher, photo: Photo) -> LocalFeatures:
    return matcher.features(Path(photo.path)) if photo.path else LocalFeatures.empty(matcher.dim)


def store_local_features(
    gallery: Gallery,
    matchers: Sequence[LocalMatcher],
    photos: Sequence[Photo] | None = None,
    progress: Progress | None = None,
) -> int:
    """Extract and keep the features of ``photos`` (default: all the gallery's) that are not stored yet, for every
    matcher; returns how many were extracted."""
    photos = gallery.photos() if photos is None else list(photos)
    extracted = 0
    for number, matcher in enumerate(matchers):
        stored = gallery.local_features(matcher.key, [p.sha1 for p in photos if p.sha1])
        todo = {p.sha1: p for p in photos if p.sha1 and p.sha1 not in stored}
        found: dict[str, bytes] = {}
        for done, (sha1, photo) in enumerate(todo.items(), start=1):
            found[sha1] = _extract(matcher, photo).to_bytes()
            if progress:
                progress(number * len(photos) + done, len(matchers) * len(photos))
        gallery.store_local_features(matcher.key, found)
        extracted += len(found)
    return extracted


class FeatureCache:
    """Gallery photos' local features for matching: from memory, else the gallery's database, else extracted
    (and stored for the next run). ``extracted`` counts the photos whose features had to be extracted. At most
    ``capacity`` photos' features stay in memory (2000 RootSIFT keypoints are about 1 MB a photo)."""

    def __init__(self, gallery: Gallery, capacity: int = 500) -> None:
        self.gallery, self.capacity = gallery, capacity
        self.extracted = 0
        self._memory: OrderedDict[tuple[str, str], LocalFeatures] = OrderedDict()
        self._lock = threading.Lock()
        self._announced: set[str] = set()

    def _remember(self, key: tuple[str, str], features: LocalFeatures) -> None:
        with self._lock:
            self._memory[key] = features
            self._memory.move_to_end(key)
            while len(self._memory) > self.capacity:
                self._memory.popitem(last=False)

    def features(self, matcher: LocalMatcher, photos: Sequence[Photo]) -> dict[int, LocalFeatures]:
        """Features of each photo (by gallery photo id) for ``matcher``."""
        found: dict[int, LocalFeatures] = {}
        wanted: dict[str, list[Photo]] = {}
        for photo in photos:
            key = (matcher.key, photo.sha1 or f"path:{photo.path}")
            with self._lock:
                hit = self._memory.get(key)
            if hit is not None:
                found[photo.id] = hit
            else:
                wanted.setdefault(key[1], []).append(photo)
        stored = self.gallery.local_features(matcher.key, [s for s in wanted if not s.startswith("path:")])
        missing = {sha1: same[0] for sha1, same in wanted.items() if sha1 not in stored}
        if missing and matcher.key not in self._announced:
            self._announced.add(matcher.key)
            log.info(
                "%s: %d photo(s) have no stored %s features: extracting them when needed (and storing them)",
                self.gallery.path,
                len(missing),
                matcher.key,
            )
        extracted = {sha1: _extract(matcher, photo) for sha1, photo in missing.items()}
        self.extracted += len(extracted)
        self.gallery.store_local_features(
            matcher.key, {sha1: f.to_bytes() for sha1, f in extracted.items() if not sha1.startswith("path:")}
        )
        for sha1, same in wanted.items():
            features = extracted[sha1] if sha1 in extracted else LocalFeatures.from_bytes(stored[sha1])
            self._remember((matcher.key, sha1), features)
            for photo in same:
                found[photo.id] = features
        return found
