"""`shopscore features build`: every batch source the feature repo reads, built from the canonical events and
written to the workspace's features/ directory (registry.flow.build_features calls `build_all`).

The snapshots stream block by block through their writer (registry/features/snapshots.py); the sequence
and real-time builders are per user too, so they are built and written in blocks of users as well; the
lifetime state is built at once (its file is as small as the event log's distinct (user, time) pairs).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from registry.features import lifetime
from registry.features.contract import (
    ACTIVITY_VIEW,
    LAG_DAYS,
    LIFETIME_VIEW,
    REALTIME_VIEW,
    SEQUENCE_VIEW,
    lag_view,
)
from registry.features.files import (
    write_lifetime_lags,
    write_realtime_rows,
    write_user_features,
    write_user_lifetime,
    write_user_sequences,
)
from registry.features.ordering import user_blocks
from registry.features.realtime import realtime_rows
from registry.features.sequences import build_user_sequences
from registry.features.snapshots import iter_user_features

# Events per block of users for the sequence and real-time builders: they work on pandas frames, whose
# per-call overhead wants larger blocks than the snapshots' (snapshots.BLOCK_EVENTS).
FRAME_BLOCK_EVENTS = 1 << 20


def _event_blocks(events: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """The events of consecutive blocks of users (ascending ids), rows in their original order: the
    sequence and real-time builders are per user too, so building block by block and writing each block
    gives the same file as building all at once, in memory bounded by a block."""
    codes, users = pd.factorize(events["user_id"].to_numpy(), sort=True)
    for _, _, index in user_blocks(codes, len(users), FRAME_BLOCK_EVENTS):
        yield events.iloc[np.sort(index)]


def build_all(events: pd.DataFrame, features_dir: Path, *, grain: str = "1d") -> dict[str, Path]:
    """Build and write every batch source the feature repo reads; returns {view name: its file}."""
    activity = write_user_features(iter_user_features(events, grain=grain), features_dir)
    sequences = write_user_sequences(
        (build_user_sequences(block, grain=grain) for block in _event_blocks(events)), features_dir
    )
    realtime = write_realtime_rows((realtime_rows(block) for block in _event_blocks(events)), features_dir)
    state = lifetime.build_user_lifetime(events)
    lags = write_lifetime_lags(lifetime.build_lifetime_lags(state), features_dir)
    return {
        ACTIVITY_VIEW: activity,
        SEQUENCE_VIEW: sequences,
        REALTIME_VIEW: realtime,
        LIFETIME_VIEW: write_user_lifetime(state, features_dir),
        **{lag_view(days): lags for days in LAG_DAYS},
    }
