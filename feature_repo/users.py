"""Feast declarations for the `user` entity: declarations only, no logic.

The batch source is the daily snapshot parquet that `shopscore features build` writes
(registry/features/pipeline.py); its path is relative to the workspace ($SHOPSCORE_HOME), which shopscore
passes to Feast as the repo path.
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

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
