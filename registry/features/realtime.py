"""`user_realtime.parquet` (the batch side of the `user_realtime_push` push source, view `user_realtime`):
one row per event stamped at the event's own time, with the state a push of that event produces. The push
(registry/features/push.py) computes the same rows from new events, continuing the counts held online.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from registry.features.contract import JOIN_KEY, TIMESTAMP_FIELD
from registry.features.ordering import event_times_ns


def realtime_rows(events: pd.DataFrame, *, carts_before: pd.Series | None = None) -> pd.DataFrame:
    """The `user_realtime` state after each event: last event type and time, carts so far that UTC day.

    One row per (user, event time), the last event winning ties, so Feast's point-in-time join is exact.
    `carts_before` (user_id -> carts already counted on the first event's day) lets a push continue the
    count held online.
    """
    ordered = events.sort_values(["user_id", "event_time"], kind="stable").reset_index(drop=True)
    day = ordered["event_time"].dt.floor("D")
    is_cart = (ordered["event_type"] == "cart").astype("int64")
    carts = is_cart.groupby([ordered["user_id"], day]).cumsum()
    if carts_before is not None:
        first_day = day.groupby(ordered["user_id"]).transform("min")
        carry = ordered["user_id"].map(carts_before).fillna(0).astype("int64")
        carts = carts + np.where(day == first_day, carry, 0)
    out = pd.DataFrame(
        {
            JOIN_KEY: ordered["user_id"].astype("int64"),
            TIMESTAMP_FIELD: ordered["event_time"],
            "last_event_type": ordered["event_type"].astype("object"),
            "last_event_at": event_times_ns(ordered) / 1e9,
            "cart_count_today": carts.astype("int64"),
        }
    )
    return out.drop_duplicates([JOIN_KEY, TIMESTAMP_FIELD], keep="last").reset_index(drop=True)
