"""Feast declarations for the `user` entity: declarations only, no logic beyond one request-time formula.

Every name here (entity, join key, views, sources, services, columns, windows, files) comes from the
feature contract, registry/features/contract.py, which the builders, materialize, push and the plugins read
too; this file adds what only Feast needs: types, descriptions, TTLs and which views each service joins.
The batch sources are the parquet files that `shopscore features build` writes (registry/features/
build.py); their paths are relative to the workspace ($SHOPSCORE_HOME), which shopscore passes to Feast as
the repo path. Ids in the sequence arrays (event type, hashed category, price bucket) are documented in the
contract and never renumbered.
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

from registry.features import contract as c

user = Entity(
    name=c.ENTITY,
    join_keys=[c.JOIN_KEY],
    value_type=ValueType.INT64,
    description="A shopper, keyed by the shop's integer user id.",
)

user_snapshots = FileSource(
    name=c.ACTIVITY_SOURCE,
    path=c.source_path(c.FEATURES_FILE),
    timestamp_field=c.TIMESTAMP_FIELD,
    description="Daily per-user snapshots; a row stamped T summarises events strictly before T.",
)

_count_fields = [
    Field(
        name=f"{etype}_count_{days}d",
        dtype=Int64,
        description=f"Number of {etype} events in the {days} day(s) before the snapshot time.",
    )
    for days in c.WINDOWS_DAYS
    for etype in c.EVENT_TYPES
]

# Snapshots are daily, so the freshest row is at most a day old; an older one means the user has been
# inactive for longer than the snapshot tail and reads as missing, online and offline alike.
_ACTIVITY_TTL = timedelta(days=2)

user_activity = FeatureView(
    name=c.ACTIVITY_VIEW,
    entities=[user],
    ttl=_ACTIVITY_TTL,
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
        for etype in c.EVENT_TYPES
    ]
    + [
        Field(
            name=f"distinct_{what}_{days}d",
            dtype=Int64,
            description=f"Distinct {what} in events of the {days} days before T (exact, not summed per day).",
        )
        for what in ("items", "categories")
        for days in c.DISTINCT_WINDOWS_DAYS
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
    name=c.PURCHASE_SERVICE,
    features=[user_activity],
    description="Inputs of the aggregate (MLP) purchase models.",
)


user_sequences_source = FileSource(
    name=c.SEQUENCE_SOURCE,
    path=c.source_path(c.SEQUENCES_FILE),
    timestamp_field=c.TIMESTAMP_FIELD,
    description="Per-user event sequences; a row stamped T holds the last events strictly before T.",
)

_last_events = f"the last {c.SEQUENCE_LENGTH} events"
_sequence_fields = [
    Field(
        name=c.SEQ_EVENT_TYPE,
        dtype=Array(Int64),
        description=f"Event type ids ({', '.join(f'{t}={c.event_type_id(t)}' for t in c.EVENT_TYPES)}) "
        f"of {_last_events} before T, oldest first.",
    ),
    Field(
        name=c.SEQ_CATEGORY,
        dtype=Array(Int64),
        description=f"Hashed category ids (0: none) of {_last_events} before T, oldest first.",
    ),
    Field(
        name=c.SEQ_PRICE_BUCKET,
        dtype=Array(Int64),
        description=f"1 + floor(log2(1 + price)), at most {c.PRICE_BUCKETS - 1} (0: no price), of {_last_events}.",
    ),
    Field(
        name=c.SEQ_SECONDS_SINCE_PREV,
        dtype=Array(Int64),
        description=f"Seconds from each of {_last_events} to the user's previous event "
        f"({c.NO_PREVIOUS_EVENT}: none).",
    ),
    Field(
        name=c.LAST_QUERIES,
        dtype=Array(String),
        description=f"Text of the last {c.QUERY_COUNT} search queries before T, oldest first.",
    ),
]

user_sequence = FeatureView(
    name=c.SEQUENCE_VIEW,
    entities=[user],
    # A row is written only after a step with activity; the sequence stays valid over the quiet steps that
    # follow, for as long as user_activity keeps the user alive: its 30-day snapshot tail plus its 2-day TTL.
    ttl=timedelta(days=c.ACTIVE_TAIL_DAYS) + _ACTIVITY_TTL,
    schema=_sequence_fields,
    source=user_sequences_source,
    online=True,
    description="The user's recent event sequence and search text, for sequence and text encoders.",
    tags={"owner": "shopscore", "grain": "daily"},
)

user_realtime_batch = FileSource(
    name=c.REALTIME_SOURCE,
    path=c.source_path(c.REALTIME_FILE),
    timestamp_field=c.TIMESTAMP_FIELD,
    description="The real-time state after every past event (written by `shopscore features build`).",
)

user_realtime_push = PushSource(
    name=c.REALTIME_PUSH_SOURCE,
    batch_source=user_realtime_batch,
    description="New events pushed as they happen (`shopscore events push`, registry.features.push_events).",
)

user_realtime = FeatureView(
    name=c.REALTIME_VIEW,
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
    name=c.REQUEST_SOURCE,
    schema=[
        Field(
            name=c.REQUEST_TS,
            dtype=Float64,
            description="When the request is served (training: the row's cutoff), unix seconds (UTC).",
        )
    ],
    description="Data that only the caller knows at request time.",
)


@on_demand_feature_view(
    name=c.RECENCY_VIEW,
    sources=[user_realtime, score_request],
    # Feast 0.67 compares declared output fields with the inferred ones *including* the description, so a
    # described output field fails `apply`; the description lives on the view (and in tags) instead.
    schema=[Field(name=name, dtype=Float64) for name in c.recency_columns()],
    mode="python",
    description="hours_since_last_event_at_request: hours from the newest event (user_realtime) to the "
    "request's request_ts (null: no event within the real-time TTL). Recency at request time, not at the "
    "last snapshot.",
    tags={"hours_since_last_event_at_request": "Hours from the newest event to the request (null: none)."},
)
def user_request_recency(inputs: dict[str, Any]) -> dict[str, Any]:
    # Python mode (faster online than pandas): columns arrive as lists, one entry per entity row. Feast
    # rebuilds a python-mode view from its source text alone (no module globals), so import here.
    from registry.features.contract import REQUEST_TS, recency_columns

    (hours,) = recency_columns()
    return {
        hours: [
            None if last is None or now is None else (now - last) / 3600.0
            for last, now in zip(inputs["last_event_at"], inputs[REQUEST_TS], strict=True)
        ]
    }


purchase_seq_v1 = FeatureService(
    name=c.PURCHASE_SEQ_SERVICE,
    features=[user_activity, user_sequence],
    description="Inputs of sequence and text purchase models: aggregates plus event sequence and queries.",
)

purchase_rt_v1 = FeatureService(
    name=c.PURCHASE_RT_SERVICE,
    features=[user_activity, user_realtime, user_request_recency],
    description="Aggregates plus real-time state and request-time recency (entity rows carry request_ts).",
)


# ---- lifetime state (registry/features/lifetime.py): for shops whose customers are quiet for months ------
user_lifetime_source = FileSource(
    name=c.LIFETIME_SOURCE,
    path=c.source_path(c.LIFETIME_FILE),
    timestamp_field=c.TIMESTAMP_FIELD,
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
    name=c.LIFETIME_VIEW,
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
        name=c.lag_source(days),
        path=c.source_path(c.LAGS_FILE),
        timestamp_field=c.lag_visible_at(days),
        description=f"user_lifetime's totals, each row visible {days} days after the events it counts.",
    )
    for days in c.LAG_DAYS
}

_lifetime_types = {f.name: f.dtype for f in _lifetime_fields}
# The totals as of `days` before the cutoff / request: user_lifetime_at_request subtracts them from today's
# totals for exact windowed counts (registry/features/lifetime.py, build_lifetime_lags).
user_lifetime_lags = [
    FeatureView(
        name=c.lag_view(days),
        entities=[user],
        ttl=timedelta(days=3650),
        # Each lagged total has its total's type.
        schema=[
            Field(name=name, dtype=_lifetime_types[total], description=f"{total} {days} days ago.")
            for total, name in zip(c.LAGGED, c.lagged_columns(days), strict=True)
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
    name=c.LIFETIME_REQUEST_VIEW,
    sources=[user_lifetime, *user_lifetime_lags, score_request],
    # Outputs undescribed for the reason given at user_request_recency; they are described in tags.
    schema=[Field(name=name, dtype=Float64) for name in c.request_columns()],
    mode="python",
    description="Recency, age, purchase rate and 30-365 day windows of user_lifetime as of the request_ts "
    "(training: the row's cutoff), so they are exact at any moment. Formulas: "
    "registry/features/lifetime.py (lifetime_at_request).",
    tags=c.REQUEST_DESCRIPTIONS,
)
def user_lifetime_at_request(inputs: dict[str, Any]) -> dict[str, Any]:
    # Feast rebuilds a python-mode view from its source text alone (no module globals), so import here.
    from registry.features.contract import REQUEST_TS
    from registry.features.lifetime import lifetime_at_request

    return lifetime_at_request(inputs, inputs[REQUEST_TS])


purchase_lifetime_v1 = FeatureService(
    name=c.PURCHASE_LIFETIME_SERVICE,
    features=[user_lifetime, user_lifetime_at_request],
    description="Whole-history (buy-till-you-die) inputs for aggregate models: lifetime state plus its "
    "request-time recency, age and rate; all numeric, readable for users quiet for years.",
)

user_sequence_history = FeatureView(
    name=c.SEQUENCE_HISTORY_VIEW,
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
    name=c.PURCHASE_LIFETIME_SEQ_SERVICE,
    features=[user_lifetime, user_lifetime_at_request, user_sequence_history],
    description="purchase_lifetime_v1 plus the user's last events as sequences (long TTL), for sequence "
    "encoders and their concat with the MLP.",
)
