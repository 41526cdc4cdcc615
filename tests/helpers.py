"""Small shared helpers for tests (fixtures live in conftest.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from registry.events.schema import EVENT_TYPES, conform


def random_events(
    n: int = 600, users: int = 12, days: int = 50, seed: int = 3, start: str = "2024-03-01"
) -> pd.DataFrame:
    """Uniformly random canonical events: no signal, just shapes and edge cases for pipeline checks."""
    rng = np.random.default_rng(seed)
    begin = pd.Timestamp(start, tz="UTC")
    frame = pd.DataFrame(
        {
            "event_time": begin + pd.to_timedelta(rng.integers(0, days * 86400, n), unit="s"),
            "user_id": rng.integers(1, users + 1, n),
            "event_type": rng.choice(EVENT_TYPES, n, p=[0.5, 0.15, 0.05, 0.05, 0.1, 0.15]),
            "price": rng.gamma(2.0, 20.0, n).round(2),
            "quantity": rng.integers(1, 4, n),
        }
    )
    return conform(frame)
