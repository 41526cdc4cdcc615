"""The feature contract: every name, window, file and stable id that the feature builders, the Feast
declarations (feature_repo/), materialize, push, serving and the plugins must agree on, declared once.

Pure constants and small functions (no Feast, no numpy-heavy compute), so anything may import it: the
builders (snapshots, sequences, realtime, lifetime, build), the feature repo, `registry.flow`, and plugins
through `registry.plugin_api`. The field listing that Feast serves (types, descriptions, TTLs) is read back
from the declarations built from these names: registry/features/fields.py.

Stable ids (the vocabulary that models embed; never renumber them, trained models depend on them):

* event type id: `1 + EVENT_TYPES.index(type)`, so view=1 ... search=6; 0 is padding.
* category id: `1 + blake2b-64(category) % (CATEGORY_BUCKETS - 1)`; 0 means no category. Hashing keeps the
  id of a category identical across datasets and runs without a vocabulary file to ship and keep in sync;
  with 2**20 buckets two of a few thousand categories collide with probability ~0.5%, which an embedding
  tolerates.
* price bucket: `1 + min(floor(log2(1 + price)), PRICE_BUCKETS - 2)`; 0 means no price (searches).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from registry.events.schema import EVENT_TYPES

# ---- the entity ----------------------------------------------------------------------------------------
ENTITY = "user"
JOIN_KEY = "user_id"  # the entity's join key: a column of every batch source and of every entity row
TIMESTAMP_FIELD = "event_timestamp"  # the time column of every batch source and of training entity rows
REQUEST_TS = "request_ts"  # the request source's field: when a request is served (training: the cutoff)

# ---- feature views (stored) ----------------------------------------------------------------------------
ACTIVITY_VIEW = "user_activity"
SEQUENCE_VIEW = "user_sequence"
SEQUENCE_HISTORY_VIEW = "user_sequence_history"  # user_sequence's rows with a long TTL
REALTIME_VIEW = "user_realtime"
LIFETIME_VIEW = "user_lifetime"


def lag_view(days: int) -> str:
    """The view of `user_lifetime`'s totals as of `days` before the snapshot time."""
    return f"{LIFETIME_VIEW}_{days}d_ago"


# ---- on-demand feature views ---------------------------------------------------------------------------
RECENCY_VIEW = "user_request_recency"
LIFETIME_REQUEST_VIEW = "user_lifetime_at_request"

# ---- data sources --------------------------------------------------------------------------------------
ACTIVITY_SOURCE = "user_daily_snapshots"
SEQUENCE_SOURCE = "user_sequence_snapshots"
REALTIME_SOURCE = "user_realtime_history"  # the batch side of the push source
REALTIME_PUSH_SOURCE = "user_realtime_push"
LIFETIME_SOURCE = "user_lifetime_history"
REQUEST_SOURCE = "score_request"


def lag_source(days: int) -> str:
    return f"{lag_view(days)}_history"


# ---- feature services (a model version records the one it was trained on) -----------------------------
PURCHASE_SERVICE = "purchase_v1"  # aggregates
PURCHASE_SEQ_SERVICE = "purchase_seq_v1"  # + event sequences and query text
PURCHASE_RT_SERVICE = "purchase_rt_v1"  # + real-time state and request-time recency
PURCHASE_LIFETIME_SERVICE = "purchase_lifetime_v1"  # whole-history state + its request-time features
PURCHASE_LIFETIME_SEQ_SERVICE = "purchase_lifetime_seq_v1"  # + the long-TTL sequences
SERVICES = (
    PURCHASE_SERVICE,
    PURCHASE_SEQ_SERVICE,
    PURCHASE_RT_SERVICE,
    PURCHASE_LIFETIME_SERVICE,
    PURCHASE_LIFETIME_SEQ_SERVICE,
)

# ---- windows and grains --------------------------------------------------------------------------------
WINDOWS_DAYS = (1, 7, 30)  # per-event-type counts of user_activity
DISTINCT_WINDOWS_DAYS = (7, 30)  # exact distinct items and categories of user_activity
ACTIVE_TAIL_DAYS = 30  # user_activity's snapshots continue this long after a user's last event
LAG_DAYS = (30, 90, 180, 365)  # windows of the request-time lifetime features
LAGGED = ("purchases_total", "purchase_days_total", "spend_total")  # totals whose window differences count
GRAINS = ("1d", "6h", "1h")  # snapshot steps `shopscore features build --grain` offers
DAY = pd.Timedelta(days=1)
HOUR = pd.Timedelta(hours=1)


def parse_grain(grain: str | pd.Timedelta) -> pd.Timedelta:
    """The snapshot step; it must divide a day (so day windows are whole steps) and be >= 1 hour."""
    step = pd.Timedelta(grain)
    if step < HOUR or DAY % step != pd.Timedelta(0):
        raise ValueError(f"grain {grain!r} must divide a day and be at least 1h; use one of {list(GRAINS)}")
    return step


def lag_visible_at(days: int) -> str:
    """The time column of the lag file from which a row counts as `days` old (its lag view's timestamp)."""
    return f"visible_at_{days}d"


# ---- files: the batch sources `shopscore features build` writes into the workspace's features/ ----------
FEATURES_FILE = "user_features.parquet"
SEQUENCES_FILE = "user_sequences.parquet"
REALTIME_FILE = "user_realtime.parquet"
LIFETIME_FILE = "user_lifetime.parquet"
LAGS_FILE = "user_lifetime_lags.parquet"
FILES = (FEATURES_FILE, SEQUENCES_FILE, REALTIME_FILE, LIFETIME_FILE, LAGS_FILE)
# Stored view -> the file its batch source reads.
VIEW_FILES = {
    ACTIVITY_VIEW: FEATURES_FILE,
    SEQUENCE_VIEW: SEQUENCES_FILE,
    SEQUENCE_HISTORY_VIEW: SEQUENCES_FILE,
    REALTIME_VIEW: REALTIME_FILE,
    LIFETIME_VIEW: LIFETIME_FILE,
    **{lag_view(days): LAGS_FILE for days in LAG_DAYS},
}


def source_path(file_name: str) -> str:
    """A batch source's path as the feature repo declares it: relative to the workspace ($SHOPSCORE_HOME),
    whose `features/` directory (Settings.features_dir) the builders write."""
    return f"features/{file_name}"


# ---- stable ids ----------------------------------------------------------------------------------------
SEQUENCE_LENGTH = 50  # events per user_sequence row
QUERY_COUNT = 5  # search queries per user_sequence row
CATEGORY_BUCKETS = 2**20
PRICE_BUCKETS = 16
NO_PREVIOUS_EVENT = -1  # seconds_since_prev of a user's very first event


def event_type_id(event_type: str) -> int:
    return 1 + EVENT_TYPES.index(event_type)


def category_id(category: str | None) -> int:
    """The hashed, dataset-independent id of a category (0 for none); see the module docstring."""
    if category is None or category is pd.NA or (isinstance(category, float) and np.isnan(category)):
        return 0
    digest = hashlib.blake2b(str(category).encode(), digest_size=8).digest()
    return 1 + int.from_bytes(digest, "little") % (CATEGORY_BUCKETS - 1)


def price_bucket(price: np.ndarray) -> np.ndarray:
    """Log2 price buckets 1..PRICE_BUCKETS-1; 0 where the price is missing."""
    price = np.asarray(price, dtype="float64")
    known = ~np.isnan(price)
    bucket = np.floor(np.log2(1.0 + np.where(known, np.maximum(price, 0.0), 0.0)))
    return np.where(known, 1 + np.minimum(bucket, PRICE_BUCKETS - 2), 0).astype("int64")


# ---- column names (the Feast views declare the same names in the same order) ---------------------------
def feature_columns() -> list[str]:
    """Names of every aggregate feature of `user_activity`, in a stable order."""
    counts = [f"{etype}_count_{w}d" for w in WINDOWS_DAYS for etype in EVENT_TYPES]
    return (
        counts
        + [
            "spend_30d",
            "spend_total",
            "purchases_total",
            "active_days_30d",
            "view_to_cart_30d",
            "cart_to_purchase_30d",
            "hours_since_last_event",
            "hours_since_last_cart",
            "hours_since_last_purchase",
        ]
        + [f"{etype}_count_1h" for etype in EVENT_TYPES]
        + [f"distinct_{what}_{w}d" for what in ("items", "categories") for w in DISTINCT_WINDOWS_DAYS]
        + ["sessions_7d", "mean_view_price_30d"]
    )


# The columns of `user_sequence` (and `user_sequence_history`), each a list, oldest first.
SEQ_EVENT_TYPE = "seq_event_type"  # event type ids
SEQ_CATEGORY = "seq_category"  # hashed category ids
SEQ_PRICE_BUCKET = "seq_price_bucket"  # price buckets
SEQ_SECONDS_SINCE_PREV = "seq_seconds_since_prev"  # seconds to the user's previous event
LAST_QUERIES = "last_queries"  # the text of the last QUERY_COUNT search queries


def sequence_columns() -> list[str]:
    """Names of the features of `user_sequence`, in a stable order."""
    return [SEQ_EVENT_TYPE, SEQ_CATEGORY, SEQ_PRICE_BUCKET, SEQ_SECONDS_SINCE_PREV, LAST_QUERIES]


def realtime_columns() -> list[str]:
    """Names of the features of `user_realtime`, in a stable order."""
    return ["last_event_type", "last_event_at", "cart_count_today"]


def recency_columns() -> list[str]:
    """Names of the outputs of the on-demand view `user_request_recency`."""
    return ["hours_since_last_event_at_request"]


def lifetime_columns() -> list[str]:
    """Names of the features of `user_lifetime`, in a stable order."""
    return [
        "first_event_at",
        "last_event_at",
        "first_purchase_at",
        "last_purchase_at",
        "events_total",
        "active_days_total",
        "purchases_total",
        "purchase_days_total",
        "items_total",
        "spend_total",
        "last_purchase_value",
    ]


def lagged_columns(days: int) -> list[str]:
    """Names of the features of `user_lifetime_<days>d_ago`."""
    return [f"{name}_{days}d_ago" for name in LAGGED]


# The outputs of the on-demand view `user_lifetime_at_request` and what each means (the feature repo puts
# these in the view's tags; registry/features/lifetime.py computes them).
REQUEST_DESCRIPTIONS = {
    "days_since_first_event": "Days from the first event to the request (customer age).",
    "days_since_last_event": "Days from the newest event to the request.",
    "days_since_first_purchase": "Days from the first purchase to the request (null: never purchased).",
    "days_since_last_purchase": "Days from the newest purchase to the request (recency; null: never).",
    "purchase_span_days": "Days from the first to the newest purchase (null: never purchased).",
    "mean_days_between_purchase_days": "purchase_span_days / (purchase days - 1) (null: under 2 days).",
    "purchase_days_per_30d": "Purchase days per 30 days of customer age (age at least 1 day).",
    "mean_purchase_value": "spend_total / purchases_total (null: never purchased).",
    "days_since_last_purchase_per_mean_gap": "days_since_last_purchase / mean_days_between_purchase_days: "
    "how overdue the next purchase is (null: under 2 purchase days).",
    **{
        f"{what}_last_{days}d": f"{text} in the {days} days before the request (exact: the lifetime total "
        f"now minus the total {days} days ago)."
        for days in LAG_DAYS
        for what, text in (
            ("purchases", "Purchases"),
            ("purchase_days", "Distinct purchase days"),
            ("spend", "Purchase value"),
        )
    },
}


def request_columns() -> list[str]:
    """Names of the outputs of `user_lifetime_at_request`, in a stable order."""
    return list(REQUEST_DESCRIPTIONS)
