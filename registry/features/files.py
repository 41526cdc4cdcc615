"""Writing the batch sources: each builder's output streamed atomically into its parquet file under the
workspace's features/ directory, with the file name the contract gives it (registry/features/contract.py).
A file is replaced only once all of it is written, so Feast never reads a half-written source.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from registry.features.contract import (
    FEATURES_FILE,
    LAGS_FILE,
    LIFETIME_FILE,
    REALTIME_FILE,
    SEQUENCES_FILE,
)


def write_atomic(tables: Iterable[pa.Table], features_dir: Path, name: str, **options: Any) -> Path:
    """Stream `tables` (one schema) into `<features_dir>/<name>`, replacing it only once all are written.

    `options` go to pyarrow's ParquetWriter."""
    features_dir.mkdir(parents=True, exist_ok=True)
    target = features_dir / name
    tmp = features_dir / f".{name}.tmp"
    writer = None
    try:
        for table in tables:
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, **options)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise ValueError(f"nothing to write to {name}; build from at least one event")
    tmp.replace(target)
    return target


def _tables(frames: pd.DataFrame | Iterable[pd.DataFrame]) -> Iterator[pa.Table]:
    for frame in [frames] if isinstance(frames, pd.DataFrame) else frames:
        yield pa.Table.from_pandas(frame, preserve_index=False)


def write_user_features(features: pd.DataFrame | Iterable[pd.DataFrame], features_dir: Path) -> Path:
    """Write snapshots atomically to `<features_dir>/user_features.parquet` (the Feast FileSource).

    `features` is one frame or, to stream in bounded memory, the blocks of `iter_user_features`.
    """
    # Dictionary pages would double the write time of these ~40 numeric columns to save a quarter of the size.
    return write_atomic(_tables(features), features_dir, FEATURES_FILE, use_dictionary=False)


def write_user_sequences(sequences: pa.Table | Iterable[pa.Table], features_dir: Path) -> Path:
    tables = [sequences] if isinstance(sequences, pa.Table) else sequences
    return write_atomic(tables, features_dir, SEQUENCES_FILE)


def write_realtime_rows(rows: pd.DataFrame | Iterable[pd.DataFrame], features_dir: Path) -> Path:
    return write_atomic(_tables(rows), features_dir, REALTIME_FILE)


def write_user_lifetime(table: pa.Table, features_dir: Path) -> Path:
    """Write the lifetime rows (registry/features/lifetime.py, build_user_lifetime)."""
    return write_atomic([table], features_dir, LIFETIME_FILE)


def write_lifetime_lags(lags: pa.Table, features_dir: Path) -> Path:
    """Write the lifetime totals' lagged copies (lifetime.build_lifetime_lags): every lag view reads them."""
    return write_atomic([lags], features_dir, LAGS_FILE)
