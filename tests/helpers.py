"""Small shared helpers for tests (fixtures live in conftest.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from registry.events.schema import EVENT_TYPES, conform

CATEGORIES = ("shoes", "phones", "books", "toys", "garden")
QUERIES = ("shoes", "nike shoes", "red phone", "cheap books", "lego set", "rake")


def random_events(
    n: int = 600, users: int = 12, days: int = 50, seed: int = 3, start: str = "2024-03-01"
) -> pd.DataFrame:
    """Uniformly random canonical events: no signal, just shapes and edge cases for pipeline checks.

    Items, categories, sessions and queries are drawn after the core columns, so those keep the values
    earlier tests were written against. Searches carry a query and no price, as the generator's do.
    """
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
    frame["item_id"] = rng.integers(1, 40, n)
    category = rng.choice(CATEGORIES, n).astype(object)
    category[rng.random(n) < 0.05] = None  # some events have no category
    frame["category"] = category
    # Sessions may straddle midnight: a session id is per user and per 5-hour block (shifted by 3 h).
    block = ((frame["event_time"] - begin).dt.total_seconds() // 3600 + 3) // 5
    frame["session_id"] = frame["user_id"].astype(str) + "-" + block.astype(int).astype(str)
    is_search = frame["event_type"] == "search"
    frame["query"] = np.where(is_search, rng.choice(QUERIES, n), None)
    frame.loc[is_search, ["price", "item_id"]] = np.nan
    return conform(frame)
