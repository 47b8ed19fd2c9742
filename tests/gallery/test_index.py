"""FAISS index kinds, their search parameters and the index file's version stamp."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flukeid.errors import ConfigError
from flukeid.gallery.index import INDEX_KINDS, build_index, can_remove, load_index, save_index


def unit(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", INDEX_KINDS)
def test_each_kind_finds_each_vector_itself_by_its_id(kind: str) -> None:
    vectors, ids = unit(300), np.arange(1000, 1300, dtype=np.int64)
    index = build_index(kind, vectors, ids)
    similarity, found = index.search(vectors[:20], 1)
    assert found[:, 0].tolist() == ids[:20].tolist()
    np.testing.assert_allclose(similarity[:, 0], 1.0, atol=1e-5)


def test_unknown_kind_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="index kind: unknown 'annoy'"):
        build_index("annoy", unit(3), np.arange(3, dtype=np.int64))


def test_flat_index_removes_ids() -> None:
    index = build_index("flat", unit(10), np.arange(10, dtype=np.int64))
    assert can_remove(index)
    index.remove_ids(np.array([3], dtype=np.int64))
    assert 3 not in index.search(unit(10)[3:4], 10)[1][0].tolist()


def test_index_file_is_used_only_for_its_version_and_size(tmp_path: Path) -> None:
    vectors = unit(50)
    save_index(tmp_path, build_index("hnsw", vectors, np.arange(50, dtype=np.int64)), version=7)
    loaded = load_index(tmp_path, 7, 50, 16)
    assert loaded is not None and loaded.ntotal == 50
    assert load_index(tmp_path, 8, 50, 16) is None  # another database version
    assert load_index(tmp_path, 7, 49, 16) is None  # another photo count
    (tmp_path / "index.faiss").write_bytes(b"damaged")
    assert load_index(tmp_path, 7, 50, 16) is None  # checksum differs
