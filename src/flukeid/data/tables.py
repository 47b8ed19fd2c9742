"""Reading a CSV table of labels (Kaggle's train.csv, labels.csv, a wildlife-datasets metadata.csv) one way, with
errors that name the file and say what is wrong."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from flukeid.errors import CatalogueError


def read_csv_table(path: Path) -> pd.DataFrame:
    """Every cell as a string ('' for empty); a binary file, a row longer than the header or
    text pandas cannot parse raise CatalogueError naming ``path``."""
    try:
        with path.open("rb") as file:
            head = file.read(1 << 16)
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    if b"\0" in head:
        line = head.count(b"\n", 0, head.index(b"\0")) + 1
        raise CatalogueError(f"{path}: holds NUL bytes (first on line {line}): a binary file, not a CSV table")
    try:
        with warnings.catch_warnings():
            # index_col=False: rows longer than the header are an error, never a silent shift of the columns
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, index_col=False)
    except pd.errors.ParserWarning as exc:
        raise CatalogueError(
            f"{path}: a row has more cells than the header line; quote names holding commas ({exc})"
        ) from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CatalogueError(f"{path}: not a readable CSV ({exc})") from exc
