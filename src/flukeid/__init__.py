"""flukeid: identify individual animals (humpback whale flukes and others) from photos."""

from __future__ import annotations

__version__ = "0.1.0"

NEW_WHALE = "new_whale"
"""Label of an individual that is not in the catalogue, as in the Kaggle benchmark."""
