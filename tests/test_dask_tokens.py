"""The dask token for list columns: equal content, equal token; any difference, a different token."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dask.base import tokenize
from dask.tokenize import normalize_token

from registry.features import dask_tokens
from registry.features.dask_tokens import list_column_token


def column(*items: object) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):  # element-wise: numpy would broadcast equal-length lists into 2-d
        out[i] = None if item is None else np.asarray(item, dtype=object if _strings(item) else None)
    return out


def _strings(item: object) -> bool:
    return any(isinstance(v, str) for v in item)  # type: ignore[union-attr]


BASE = column([1, 2, 3], None, [4], ["a", "b"])


@pytest.mark.parametrize(
    "other",
    [
        column([1, 2], None, [3, 4], ["a", "b"]),  # same values, split differently
        column([1, 2, 3], [4], None, ["a", "b"]),  # None elsewhere
        column([1.0, 2.0, 3.0], None, [4.0], ["a", "b"]),  # same numbers, another dtype
        column([1, 2, 3], None, [4], ["a\0b"]),  # the strings' separator inside a string
        column([1, 2, 3], None, [4], ["ab", ""]),
        column([1, 2, 3], None, [5], ["a", "b"]),
    ],
    ids=["split", "none-moved", "dtype", "nul-in-string", "string-split", "value"],
)
def test_different_columns_get_different_tokens(other):
    assert list_column_token(BASE) != list_column_token(other)


def test_equal_columns_get_equal_tokens():
    assert list_column_token(BASE) == list_column_token(column([1, 2, 3], None, [4], ["a", "b"]))
    block = np.stack([BASE, BASE])  # pandas keeps several object columns in one 2-d block
    assert list_column_token(block) == list_column_token(np.stack([BASE, BASE.copy()]))
    assert list_column_token(block) != list_column_token(np.stack([BASE, column([0], None, [4], ["a"])]))


@pytest.mark.parametrize(
    "values",
    [
        np.array(["a", "b"], dtype=object),
        np.array([None, None], dtype=object),
        np.array([[1, 2], 3], dtype=object),
        np.array([np.arange(2), np.nan, None], dtype=object),  # NaN is missing, but not None
    ],
    ids=["strings", "all-none", "mixed", "nan-not-none"],
)
def test_other_object_arrays_are_left_to_dask(values):
    assert list_column_token(values) is None


def test_installed_dask_tokenizes_frames_by_content():
    dask_tokens.install()
    assert normalize_token(BASE)[0] == "shopscore-list-column"  # dask dispatches list columns here
    frame = pd.DataFrame({"user_id": [1, 2, 3, 4], "seq": BASE})
    assert tokenize(frame) == tokenize(frame.copy(deep=True))
    changed = frame.copy()
    changed.at[2, "seq"] = np.array([5])
    assert tokenize(frame) != tokenize(changed)
    # Everything else keeps dask's own token.
    assert tokenize(np.arange(5)) == tokenize(np.arange(5)) != tokenize(np.arange(6))
