from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from flukeid import NEW_WHALE
from flukeid.data.splits import SplitKind, make_split, write_split
from flukeid.errors import ConfigError


def catalogue(n_ids: int = 80, max_photos: int = 8) -> pd.DataFrame:
    rows = [
        (f"{i:03d}_{j}.jpg", f"w_{i:03d}", Path(f"/nowhere/{i:03d}_{j}.jpg"))
        for i in range(n_ids)
        for j in range(1 + i % max_photos)
    ]
    rows.append(("nw.jpg", NEW_WHALE, Path("/nowhere/nw.jpg")))
    return pd.DataFrame(rows, columns=["Image", "Id", "path"])


@pytest.mark.parametrize("kind", list(SplitKind))
def test_split_is_deterministic_and_partitions(kind: SplitKind) -> None:
    labels = catalogue()
    a, b = make_split(labels, kind, seed=3), make_split(labels, kind, seed=3)
    pd.testing.assert_frame_equal(a.test, b.test)
    pd.testing.assert_frame_equal(a.train, b.train)
    assert not make_split(labels, kind, seed=4).test.equals(a.test)
    assert not set(a.train["Image"]) & set(a.test["Image"])
    assert NEW_WHALE in set(a.train["Id"])  # new_whale rows stay in the catalogue part


def test_closed_split_every_query_is_known() -> None:
    split = make_split(catalogue(), "closed", seed=0)
    assert set(split.test["Id"]) <= set(split.train["Id"])
    assert (split.test["Id"] == split.test["Individual"]).all()


def test_open_split_unknowns_become_new_whale() -> None:
    split = make_split(catalogue(), "open", seed=0, unknown_share=0.25)
    unknown = split.test[split.test["Id"] == NEW_WHALE]
    assert unknown["Individual"].nunique() == 20
    assert not set(unknown["Individual"]) & set(split.train["Id"])
    known = split.test[split.test["Id"] != NEW_WHALE]
    assert set(known["Id"]) <= set(split.train["Id"])


def test_disjoint_split_shares_no_individual() -> None:
    split = make_split(catalogue(), "disjoint", seed=0)
    assert not set(split.test["Id"]) & set(split.train["Id"])
    assert (split.test["Id"] == split.test["Individual"]).all()


def test_whale_split_has_the_benchmark_shape() -> None:
    split = make_split(catalogue(n_ids=2000, max_photos=12), "whale", seed=0)
    known_queries = split.test[split.test["Id"] != NEW_WHALE]
    assert known_queries["Id"].is_unique  # one query photo per known individual
    per_id = split.train[split.train["Id"] != NEW_WHALE].groupby("Id").size()
    assert set(known_queries["Id"]) == set(per_id.index)
    shares = per_id.value_counts(normalize=True)
    # individuals with a single photo available can only give 1 catalogue photo, so 1s are a bit over 52%
    assert 0.50 < shares[1] < 0.62 and 0.17 < shares[2] < 0.28 and 0.07 < shares[3] < 0.15
    unknown = split.test[split.test["Id"] == NEW_WHALE].groupby("Individual").size()
    assert set(unknown) <= {1, 2}
    n_ids = per_id.size + unknown.size
    assert 0.2 < unknown.size / n_ids < 0.3
    assert 0.25 < split.new_whale_share < 0.4  # "new_whale first" scores about a third, as on Kaggle


def test_write_split_kaggle_layout(tmp_path: Path) -> None:
    from conftest import write_image

    for i in range(6):
        for j in range(3):
            write_image(tmp_path / "src" / f"w_{i}" / f"{j}.jpg", seed=i * 10 + j)
    rows = [(f"w_{i}/{j}.jpg", f"w_{i}", tmp_path / "src" / f"w_{i}" / f"{j}.jpg") for i in range(6) for j in range(3)]
    split = make_split(pd.DataFrame(rows, columns=["Image", "Id", "path"]), "open", seed=1)
    out = tmp_path / "out"
    write_split(split, out, boxes={"w_0/0.jpg": (1.0, 2.0, 10.0, 12.0)})
    train, answers = pd.read_csv(out / "train.csv"), pd.read_csv(out / "answers.csv")
    assert list(train.columns) == ["Image", "Id"]
    assert list(answers.columns) == ["Image", "Id", "Individual", "Source"]
    assert all((out / "train" / n).is_file() for n in train["Image"])
    assert all((out / "test" / n).is_file() for n in answers["Image"])
    assert not any("w_" in n for n in list(train["Image"]) + list(answers["Image"]))  # names leak no label
    sample = pd.read_csv(out / "sample_submission.csv")
    assert list(sample["Image"]) == list(answers["Image"])
    assert sample["Id"].str.split().map(len).eq(5).all()
    assert len(pd.read_csv(out / "boxes.csv")) == 1


def test_unknown_kinds_and_shares_out_of_range_are_refused_with_the_valid_ones() -> None:
    labels = pd.DataFrame({"Image": ["a", "b"], "Id": ["w_1", "w_2"], "path": ["a", "b"]})
    with pytest.raises(ConfigError, match="split kind: unknown 'weird'; valid: closed, open, disjoint, whale"):
        make_split(labels, "weird")
    with pytest.raises(ConfigError, match=r"unknown_share must be in \[0, 1\), found -1"):
        make_split(labels, "open", unknown_share=-1)
