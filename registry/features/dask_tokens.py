"""Fast dask tokens for the list columns of Feast's file offline store.

Feast's file offline store runs point-in-time joins with dask, and dask names every intermediate result by a
token: a hash of its content (`dask.base.tokenize`). A pandas column of lists (a sequence feature) is an
object array of NumPy arrays, for which dask has no fast path: it pickles the column, unpickles it to check,
and pickles it again to confirm the hash is stable (`dask.tokenize._normalize_pickle`). That was 99% of a
`get_historical_features` call for `user_sequence` on the bench shop (161 s for 8,905 entity rows, 73 s of it
in `pickle.dumps`; 17 s with this token, same frame), and it is repeated on every call.

`install()` registers, through dask's documented extension point (`normalize_token.register`), a token for
object arrays whose elements are 1-d NumPy arrays or None: a hash (dask's own buffer hash) of the positions
of the Nones, the elements' lengths and dtypes, and the values concatenated per dtype, computed with a few
NumPy calls instead of pickling. Everything else (numbers, plain strings, other objects)
goes to dask's own normaliser unchanged.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import pandas as pd
from dask.hashing import hash_buffer_hex
from dask.tokenize import normalize_token

_installed = False
_ndim = operator.attrgetter("ndim")
_dtype = operator.attrgetter("dtype")


def install() -> None:
    """Register the list-column token (idempotent; process-wide, as every dask normaliser is)."""
    global _installed
    if _installed:
        return
    # dask registers its NumPy normalisers lazily, on the first NumPy lookup; trigger that first so they
    # do not later replace this one, and keep dask's for everything this one does not handle.
    dask_array_token = normalize_token.dispatch(np.ndarray)

    def normalize_array(x: np.ndarray) -> Any:
        if x.dtype == object and x.size:
            token = list_column_token(x)
            if token is not None:
                return token
        return dask_array_token(x)

    normalize_token.register(np.ndarray)(normalize_array)
    _installed = True


def list_column_token(x: np.ndarray) -> tuple[str, str, tuple[int, ...]] | None:
    """A content token of an object array whose elements are 1-d NumPy arrays or None (a list column, or a
    pandas block of several), or None if it holds anything else (then dask's own normaliser decides).

    Hashed: where the Nones are, every element's length and dtype, and per dtype the elements' values
    concatenated (strings joined by NUL, with their lengths alongside), so arrays differing anywhere hash
    apart."""
    values = x.ravel()
    present = ~pd.isna(values)  # C loops (pandas, map) throughout: a column can hold millions of lists
    items = values[present]
    if set(map(type, values[~present])) - {type(None)}:
        return None  # NaN, NA, NaT: missing, but not None; dask's normaliser keeps them apart
    if not len(items) or set(map(type, items)) != {np.ndarray} or set(map(_ndim, items)) != {1}:
        return None  # strings, numbers, lists, other objects, all None: dask's normaliser
    dtypes = {dtype: code for code, dtype in enumerate(dict.fromkeys(map(_dtype, items)))}
    codes = np.fromiter(map(dtypes.__getitem__, map(_dtype, items)), np.int64, len(items))
    lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
    parts = [present.tobytes(), lengths.tobytes(), codes.tobytes()]
    for dtype, code in dtypes.items():  # in order of first appearance: part of the content
        flat = np.concatenate(items if len(dtypes) == 1 else items[codes == code])
        if dtype.hasobject:  # lists of strings
            if set(map(type, flat)) != {str}:
                return None
            sizes = np.fromiter(map(len, flat), dtype=np.int64, count=len(flat))
            data = sizes.tobytes() + "\0".join(flat).encode("utf-8", "surrogatepass")
        else:
            data = flat.tobytes()
        parts += [dtype.str.encode(), np.int64(len(data)).tobytes(), data]
    return "shopscore-list-column", hash_buffer_hex(b"".join(parts)), x.shape
