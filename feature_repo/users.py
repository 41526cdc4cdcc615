"""Feast declarations for the `user` entity: declarations only, no logic beyond one request-time formula.

The batch sources are the parquet files that `shopscore features build` writes (registry/features/
pipeline.py); their paths are relative to the workspace ($SHOPSCORE_HOME), which shopscore passes to Feast
as the repo path. Ids in the sequence arrays (event type, hashed category, price bucket) are documented
in pipeline.py and never renumbered.
"""

from datetime import timedelta
from typing import Any

from feast import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    RequestSource,
    ValueType,
)
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Float64, Int64, String

from registry.features import lifetime

EVENT_TYPES = ("view", "cart", "remove_from_cart", "favorite", "purchase", "search")
WINDOWS_DAYS = (1, 7, 30)

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.INT64,
    description="A shopper, keyed by the shop's integer user id.",
)

user_snapshots = FileSource(
    name="user_daily_snapshots",
    path="features/user_features.parquet",
    timestamp_field="event_timestamp",
    description="Daily per-user snapshots; a row stamped T summarises events strictly before T.",
)

_count_fields = [
    Field(
        name=f"{etype}_count_{days}d",
        dtype=Int64,
        description=f"Number of {etype} events in the {days} day(s) before the snapshot time.",
    )
    for days in WINDOWS_DAYS
    for etype in EVENT_TYPES
]

user_activity = FeatureView(
    name="user_activity",
    entities=[user],
    # Snapshots are daily, so the freshest row is at most a day old; an older one means the user has been
    # inactive for longer than the snapshot tail and reads as missing, online and offline alike.
    ttl=timedelta(days=2),
    schema=_count_fields
    + [
        Field(
            name="spend_30d", dtype=Float64, description="Purchase value (price x quantity), last 30 days."
        ),
        Field(name="spend_total", dtype=Float64, description="Purchase value over the whole history."),
        Field(name="purchases_total", dtype=Int64, description="Purchase events over the whole history."),
        Field(name="active_days_30d", dtype=Int64, description="Days with any event in the last 30 days."),
        Field(
            name="view_to_cart_30d", dtype=Float64, description="Carts per view, last 30 days (0 if none)."
        ),
        Field(
            name="cart_to_purchase_30d",
            dtype=Float64,
            description="Purchases per cart, last 30 days (0 if none).",
        ),
        Field(name="hours_since_last_event", dtype=Float64, description="Hours from the last event to T."),
        Field(
            name="hours_since_last_cart",
            dtype=Float64,
            description="Hours from the last cart to T (null: never).",
        ),
        Field(
            name="hours_since_last_purchase",
            dtype=Float64,
            description="Hours from the last purchase to T (null: never).",
        ),
    ]
    + [
        Field(
            name=f"{etype}_count_1h",
            dtype=Int64,
            description=f"Number of {etype} events in the hour before T.",
        )
        for etype in EVENT_TYPES
    ]
    + [
        Field(
            name=f"distinct_{what}_{days}d",
            dtype=Int64,
            description=f"Distinct {what} in events of the {days} days before T (exact, not summed per day).",
        )
        for what in ("items", "categories")
        for days in (7, 30)
    ]
    + [
        Field(
            name="sessions_7d",
            dtype=Int64,
            description="Distinct sessions with an event in the 7 days before T.",
        ),
        Field(
            name="mean_view_price_30d",
            dtype=Float64,
            description="Mean price of viewed items, last 30 days (null: no priced view).",
        ),
    ],
    source=user_snapshots,
    online=True,
    description="Aggregate shopping activity per user at a daily grain.",
    tags={"owner": "shopscore", "grain": "daily"},
)

# One FeatureService per model input contract: a model version records the service it was trained on,
# and training and serving both fetch by it.
purchase_v1 = FeatureService(
    name="purchase_v1",
    features=[user_activity],
    description="Inputs of the aggregate (MLP) purchase models.",
)


user_sequences_source = FileSource(
    name="user_sequence_snapshots",
    path="features/user_sequences.parquet",
    timestamp_field="event_timestamp",
    description="Per-user event sequences; a row stamped T holds the last events strictly before T.",
)

_sequence_fields = [
    Field(
        name="seq_event_type",
        dtype=Array(Int64),
        description="Event type ids (view=1, cart=2, remove_from_cart=3, favorite=4, purchase=5, "
        "search=6) of the last 50 events before T, oldest first.",
    ),
    Field(
        name="seq_category",
        dtype=Array(Int64),
        description="Hashed category ids (0: none) of the last 50 events before T, oldest first.",
    ),
    Field(
        name="seq_price_bucket",
        dtype=Array(Int64),
        description="1 + floor(log2(1 + price)), at most 15 (0: no price), of the last 50 events.",
    ),
    Field(
        name="seq_seconds_since_prev",
        dtype=Array(Int64),
        description="Seconds from each of the last 50 events to the user's previous event (-1: none).",
    ),
    Field(
        name="last_queries",
        dtype=Array(String),
        description="Text of the last 5 search queries before T, oldest first.",
    ),
]

user_sequence = FeatureView(
    name="user_sequence",
    entities=[user],
    # A row is written only after a step with activity; the sequence stays valid over the quiet steps that
    # follow, for as long as user_activity keeps the user alive: its 30-day snapshot tail plus its 2-day TTL.
    ttl=timedelta(days=32),
    schema=_sequence_fields,
    source=user_sequences_source,
    online=True,
    description="The user's recent event sequence and search text, for sequence and text encoders.",
    tags={"owner": "shopscore", "grain": "daily"},
)

user_realtime_batch = FileSource(
    name="user_realtime_history",
    path="features/user_realtime.parquet",
    timestamp_field="event_timestamp",
    description="The real-time state after every past event (written by `shopscore features build`).",
)

user_realtime_push = PushSource(
    name="user_realtime_push",
    batch_source=user_realtime_batch,
    description="New events pushed as they happen (`shopscore events push`, registry.features.push_events).",
)

user_realtime = FeatureView(
    name="user_realtime",
    entities=[user],
    # `cart_count_today` means nothing the next day, so a day-old state expires.
    ttl=timedelta(days=1),
    schema=[
        Field(name="last_event_type", dtype=String, description="Type of the user's newest event."),
        Field(
            name="last_event_at", dtype=Float64, description="Time of the newest event, unix seconds (UTC)."
        ),
        Field(
            name="cart_count_today",
            dtype=Int64,
            description="Cart events so far on the newest event's UTC day.",
        ),
    ],
    source=user_realtime_push,
    online=True,
    description="State updated on every pushed event, readable online at once.",
    tags={"owner": "shopscore", "grain": "event"},
)

score_request = RequestSource(
    name="score_request",
    schema=[
        Field(
            name="request_ts",
            dtype=Float64,
            description="When the request is served (training: the row's cutoff), unix seconds (UTC).",
        )
    ],
    description="Data that only the caller knows at request time.",
)


@on_demand_feature_view(
    sources=[user_realtime, score_request],
    # Feast 0.67 compares declared output fields with the inferred ones *including* the description, so a
    # described output field fails `apply`; the description lives on the view (and in tags) instead.
    schema=[Field(name="hours_since_last_event_at_request", dtype=Float64)],
    mode="python",
    description="hours_since_last_event_at_request: hours from the newest event (user_realtime) to the "
    "request's request_ts (null: no event within the real-time TTL). Recency at request time, not at the "
    "last snapshot.",
    tags={"hours_since_last_event_at_request": "Hours from the newest event to the request (null: none)."},
)
def user_request_recency(inputs: dict[str, Any]) -> dict[str, Any]:
    # Python mode (faster online than pandas): columns arrive as lists, one entry per entity row.
    return {
        "hours_since_last_event_at_request": [
            None if last is None or now is None else (now - last) / 3600.0
            for last, now in zip(inputs["last_event_at"], inputs["request_ts"], strict=True)
        ]
    }


purchase_seq_v1 = FeatureService(
    name="purchase_seq_v1",
    features=[user_activity, user_sequence],
    description="Inputs of sequence and text purchase models: aggregates plus event sequence and queries.",
)

purchase_rt_v1 = FeatureService(
    name="purchase_rt_v1",
    features=[user_activity, user_realtime, user_request_recency],
    description="Aggregates plus real-time state and request-time recency (entity rows carry request_ts).",
)


# ---- lifetime state (registry/features/lifetime.py): for shops whose customers are quiet for months ------
user_lifetime_source = FileSource(
    name="user_lifetime_history",
    path="features/user_lifetime.parquet",
    timestamp_field="event_timestamp",
    description="Lifetime state after every (user, event time); a row stamped t sees the events at or before t.",
)

_unix = "unix seconds (UTC)"
_lifetime_fields = [
    Field(name="first_event_at", dtype=Float64, description=f"Time of the user's first event, {_unix}."),
    Field(name="last_event_at", dtype=Float64, description=f"Time of the user's newest event, {_unix}."),
    Field(
        name="first_purchase_at",
        dtype=Float64,
        description=f"Time of the first purchase, {_unix} (null: never purchased).",
    ),
    Field(
        name="last_purchase_at",
        dtype=Float64,
        description=f"Time of the newest purchase, {_unix} (null: never purchased).",
    ),
    Field(name="events_total", dtype=Int64, description="Events of any type over the whole history."),
    Field(name="active_days_total", dtype=Int64, description="Distinct UTC days with any event, ever."),
    Field(name="purchases_total", dtype=Int64, description="Purchase events over the whole history."),
    Field(
        name="purchase_days_total",
        dtype=Int64,
        description="Distinct UTC days with a purchase, ever (repeat purchases = this - 1).",
    ),
    Field(name="items_total", dtype=Float64, description="Units bought (quantity, 1 when unknown), ever."),
    Field(name="spend_total", dtype=Float64, description="Purchase value (price x quantity), ever."),
    Field(
        name="last_purchase_value",
        dtype=Float64,
        description="Value of the newest purchase (all purchases at that instant) (null: never purchased).",
    ),
]
user_lifetime = FeatureView(
    name="user_lifetime",
    entities=[user],
    # A row changes only when the user acts, so it stays true over any quiet spell: ten years.
    ttl=timedelta(days=3650),
    schema=_lifetime_fields,
    source=user_lifetime_source,
    online=True,
    description="Whole-history state per user (recency, frequency, age, spend), valid however long ago the "
    "user last acted.",
    tags={"owner": "shopscore", "grain": "event"},
)


user_lifetime_lags_source = {
    days: FileSource(
        name=f"user_lifetime_{days}d_ago_history",
        path="features/user_lifetime_lags.parquet",
        timestamp_field=f"visible_at_{days}d",
        description=f"user_lifetime's totals, each row visible {days} days after the events it counts.",
    )
    for days in lifetime.LAG_DAYS
}

# The totals as of `days` before the cutoff / request: user_lifetime_at_request subtracts them from today's
# totals for exact windowed counts (registry/features/lifetime.py, build_lifetime_lags).
user_lifetime_lags = [
    FeatureView(
        name=f"user_lifetime_{days}d_ago",
        entities=[user],
        ttl=timedelta(days=3650),
        schema=[
            Field(
                name=f"purchases_total_{days}d_ago",
                dtype=Int64,
                description=f"purchases_total {days} days ago.",
            ),
            Field(
                name=f"purchase_days_total_{days}d_ago",
                dtype=Int64,
                description=f"purchase_days_total {days} days ago.",
            ),
            Field(
                name=f"spend_total_{days}d_ago", dtype=Float64, description=f"spend_total {days} days ago."
            ),
        ],
        source=source,
        online=True,
        description=f"user_lifetime's totals as they were {days} days before the snapshot time.",
        tags={"owner": "shopscore", "grain": "event"},
    )
    for days, source in user_lifetime_lags_source.items()
]
# Feast (and `shopscore features apply`) collect a repo module's top-level objects, not lists: name each.
user_lifetime_30d_ago, user_lifetime_90d_ago, user_lifetime_180d_ago, user_lifetime_365d_ago = (
    user_lifetime_lags
)
_lag_sources = list(user_lifetime_lags_source.values())
(
    user_lifetime_30d_ago_src,
    user_lifetime_90d_ago_src,
    user_lifetime_180d_ago_src,
    user_lifetime_365d_ago_src,
) = _lag_sources


@on_demand_feature_view(
    sources=[user_lifetime, *user_lifetime_lags, score_request],
    # Outputs undescribed for the reason given at user_request_recency; they are described in tags.
    schema=[Field(name=name, dtype=Float64) for name in lifetime.request_columns()],
    mode="python",
    description="Recency, age, purchase rate and 30-365 day windows of user_lifetime as of the request_ts "
    "(training: the row's cutoff), so they are exact at any moment. Formulas: "
    "registry/features/lifetime.py (lifetime_at_request).",
    tags=lifetime.REQUEST_DESCRIPTIONS,
)
def user_lifetime_at_request(inputs: dict[str, Any]) -> dict[str, Any]:
    # Feast rebuilds a python-mode view from its source text alone (no module globals), so import here.
    from registry.features.lifetime import lifetime_at_request

    return lifetime_at_request(inputs, inputs["request_ts"])


purchase_lifetime_v1 = FeatureService(
    name="purchase_lifetime_v1",
    features=[user_lifetime, user_lifetime_at_request],
    description="Whole-history (buy-till-you-die) inputs for aggregate models: lifetime state plus its "
    "request-time recency, age and rate; all numeric, readable for users quiet for years.",
)

user_sequence_history = FeatureView(
    name="user_sequence_history",
    entities=[user],
    # The same rows as user_sequence, kept valid for ten years: a sequence stays the user's last events
    # however long the user has been away. For shops where dormancy is the norm.
    ttl=timedelta(days=3650),
    schema=_sequence_fields,
    source=user_sequences_source,
    online=True,
    description="user_sequence without its 32-day expiry: the last events before T for dormant users too.",
    tags={"owner": "shopscore", "grain": "daily"},
)

purchase_lifetime_seq_v1 = FeatureService(
    name="purchase_lifetime_seq_v1",
    features=[user_lifetime, user_lifetime_at_request, user_sequence_history],
    description="purchase_lifetime_v1 plus the user's last events as sequences (long TTL), for sequence "
    "encoders and their concat with the MLP.",
)
