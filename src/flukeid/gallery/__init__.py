"""Gallery: catalogue photos with their embeddings, stored in SQLite and searched through a FAISS index.

`Gallery.create` / `Gallery.open` a gallery folder; `add` and `remove` photos (each write one transaction);
`search` for the nearest photos, or `score_table` / `centroid_table` for per-individual scores to rank.
"""

from __future__ import annotations

from flukeid.gallery.index import INDEX_KINDS, PhotoHits, SearchSettings
from flukeid.gallery.store import Gallery, Photo

__all__ = ["INDEX_KINDS", "Gallery", "Photo", "PhotoHits", "SearchSettings"]
