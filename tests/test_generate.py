"""Tests for the synthetic event generator: shape, determinism, the funnel, and the planted signals."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from registry.events.generate import PATTERN_WINDOW_MINUTES, generate_events
from registry.events.schema import COLUMNS, EVENT_TYPES, conform

START = "2024-01-01"
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return generate_events(users=400, days=60, seed=7, start=START)


@pytest.fixture(scope="module")
def medium() -> pd.DataFrame:
    """Enough users for stable signal estimates, still about a second to generate."""
    return generate_events(users=1500, days=60, seed=11, start=START)


# ---- shape and schema -----------------------------------------------------------------------------------
def test_same_arguments_give_identical_frames() -> None:
    first = generate_events(users=200, days=30, seed=3)
    second = generate_events(users=200, days=30, seed=3)
    pd.testing.assert_frame_equal(first, second)


def test_different_seeds_give_different_frames() -> None:
    first = generate_events(users=200, days=30, seed=3)
    other = generate_events(users=200, days=30, seed=4)
    assert len(first) != len(other) or not first.equals(other)


def test_conforms_to_the_canonical_schema(small: pd.DataFrame) -> None:
    assert list(small.columns) == list(COLUMNS)
    assert {c: str(t) for c, t in small.dtypes.items()} == {c: str(conform(small)[c].dtype) for c in COLUMNS}
    assert str(small["event_time"].dtype) == "datetime64[ns, UTC]"
    assert set(small["event_type"].unique()) == set(EVENT_TYPES)
    assert small["event_time"].is_monotonic_increasing


def test_timestamps_lie_in_the_requested_window(small: pd.DataFrame) -> None:
    origin = pd.Timestamp(START, tz="UTC")
    assert small["event_time"].min() >= origin
    assert small["event_time"].max() < origin + 60 * DAY
    assert small["event_time"].min() < origin + DAY  # starts right away (warm-up is simulated, then dropped)
    assert small["event_time"].max() > origin + 59 * DAY


def test_columns_are_null_exactly_where_they_should_be(small: pd.DataFrame) -> None:
    search = small["event_type"] == "search"
    assert small.loc[search, "query"].notna().all()
    assert small.loc[~search, "query"].isna().all()
    assert small.loc[search, ["item_id", "brand", "price", "quantity"]].isna().all().all()
    assert small.loc[~search, ["item_id", "brand", "price", "category"]].notna().all().all()
    assert small["category"].notna().all()
    assert (small["price"].dropna() >= 0).all()
    with_qty = small["event_type"].isin(["cart", "remove_from_cart", "purchase"])
    assert (small.loc[with_qty, "quantity"] >= 1).all()
    assert small.loc[~with_qty, "quantity"].isna().all()
    assert small["session_id"].notna().all()


def test_catalog_looks_like_a_shop(small: pd.DataFrame) -> None:
    assert "electronics.smartphone" in set(small["category"])
    assert "apple" in set(small["brand"].dropna())
    # One item: one category, one brand, one price.
    per_item = small.dropna(subset=["item_id"]).groupby("item_id")[["category", "brand", "price"]].nunique()
    assert (per_item == 1).all().all()
    # Prices differ by category (lognormal around a category median).
    medians = small.dropna(subset=["price"]).groupby("category")["price"].median()
    assert medians["computers.notebook"] > 5 * medians["computers.peripherals.mouse"]


def test_sizes_used_elsewhere_are_fast_and_in_range() -> None:
    began = time.perf_counter()
    frame = generate_events(users=400, days=60, seed=1)
    elapsed = time.perf_counter() - began
    assert 20_000 <= len(frame) <= 80_000
    assert elapsed < 2.0  # ~0.3 s measured; generous because the machine's cores are shared


# ---- behaviour ------------------------------------------------------------------------------------------
def test_funnel_every_purchase_follows_a_view_and_a_cart_of_that_item_in_its_session(small: pd.DataFrame) -> None:
    """Rule: a purchase is preceded, in the same session, by a view and a cart of the same item by the same
    user; a remove_from_cart is preceded by a cart of the same item in the same session."""
    frame = small.reset_index(names="row")
    for later, earlier_types in (("purchase", ("view", "cart")), ("remove_from_cart", ("cart",))):
        targets = frame[frame["event_type"] == later]
        for earlier in earlier_types:
            before = frame[frame["event_type"] == earlier]
            pairs = targets.merge(before, on=["user_id", "session_id", "item_id"], suffixes=("", "_b"))
            ok = pairs[pairs["row_b"] < pairs["row"]]["row"].unique()
            assert set(ok) == set(targets["row"]), f"{later} without an earlier {earlier}"


def test_activity_is_heterogeneous_and_seasonal(medium: pd.DataFrame) -> None:
    per_user = medium.groupby("user_id").size()
    assert per_user.std() / per_user.mean() > 1.0  # heavy and light users
    starts = medium.groupby("session_id")["event_time"].min()
    weekend = starts.dt.dayofweek >= 5
    per_weekend_day = weekend.sum() / 2
    per_weekday = (~weekend).sum() / 5
    assert per_weekend_day > 1.15 * per_weekday
    hour = starts.dt.hour
    assert (hour.between(18, 22)).mean() / 5 > 3 * (hour.between(1, 5)).mean() / 5  # evening vs night


def test_queries_turn_specific_before_purchases(medium: pd.DataFrame) -> None:
    """A search within 3 days before the user's next purchase names a brand model far more often."""
    search = medium[medium["event_type"] == "search"][["user_id", "event_time", "query"]]
    buys = medium[medium["event_type"] == "purchase"][["user_id", "event_time"]].rename(
        columns={"event_time": "buy_time"}
    )
    nxt = pd.merge_asof(
        search.sort_values("event_time"),
        buys.sort_values("buy_time"),
        left_on="event_time",
        right_on="buy_time",
        by="user_id",
        direction="forward",
    )
    near = (nxt["buy_time"] - nxt["event_time"]) <= 3 * DAY
    specific = nxt["query"].str.startswith("buy ") | nxt["query"].str.endswith(" price")
    generic = ~nxt["query"].str.contains(" ")
    assert specific[near].mean() > 2 * specific[~near].mean()
    assert generic[near].mean() < generic[~near].mean()
    assert {"shoes", "nike shoes", "nike air max 90", "buy nike air max 90"} & set(medium["query"].dropna())


# ---- the planted signals --------------------------------------------------------------------------------
def _aggregates(frame: pd.DataFrame, cutoff: pd.Timestamp) -> tuple[pd.DataFrame, pd.Series]:
    """Per-user counts per event type over the last 1/7/30 days, plus recency; label: purchase within 7 days."""
    past = frame[(frame["event_time"] <= cutoff) & (frame["event_time"] > cutoff - 30 * DAY)]
    features = {}
    for window in (1, 7, 30):
        recent = past[past["event_time"] > cutoff - window * DAY]
        counts = recent.groupby(["user_id", "event_type"]).size().unstack(fill_value=0)
        for event_type in EVENT_TYPES:
            features[f"{event_type}_{window}d"] = counts.get(event_type, pd.Series(dtype=float))
    x = pd.DataFrame(features).fillna(0.0)
    last = past.groupby("user_id")["event_time"].max()
    x["days_since_last"] = (cutoff - last).dt.total_seconds() / 86_400
    x = np.log1p(x)
    future = frame[(frame["event_time"] > cutoff) & (frame["event_time"] <= cutoff + 7 * DAY)]
    buyers = set(future.loc[future["event_type"] == "purchase", "user_id"])
    y = pd.Series(x.index.isin(list(buyers)).astype(int), index=x.index)
    return x, y


def _signal_check(frame: pd.DataFrame) -> tuple[float, float]:
    origin = pd.Timestamp(START, tz="UTC")
    xs, ys, users = [], [], []
    for day in (31, 38, 45, 52):
        x, y = _aggregates(frame, origin + day * DAY)
        xs.append(x), ys.append(y), users.append(x.index.to_numpy())
    x, y, user = pd.concat(xs), pd.concat(ys), np.concatenate(users)
    train = user % 2 == 0  # split by user so no user is on both sides
    model = LogisticRegression(max_iter=2000).fit(x[train], y[train])
    auc = roc_auc_score(y[~train], model.predict_proba(x[~train])[:, 1])
    return float(auc), float(y.mean())


def test_aggregates_predict_purchases_in_the_next_7_days(medium: pd.DataFrame) -> None:
    auc, base_rate = _signal_check(medium)
    print(f"signal: ROC-AUC={auc:.3f} base rate={base_rate:.3f}")
    assert 0.10 <= base_rate <= 0.30
    assert 0.65 < auc < 0.95  # learnable, not trivial


def _carts_with_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Each cart with flags: a same-category search in its session within the window before / after it,
    and whether the user buys in that category within 7 days after the cart's session."""
    window = pd.Timedelta(minutes=PATTERN_WINDOW_MINUTES)
    carts = frame[frame["event_type"] == "cart"][["user_id", "session_id", "category", "event_time"]]
    searches = frame[frame["event_type"] == "search"][["session_id", "category", "event_time"]]
    pairs = carts.reset_index(names="cart").merge(searches, on=["session_id", "category"], suffixes=("", "_s"))
    lag = pairs["event_time"] - pairs["event_time_s"]
    before = pairs[(lag > pd.Timedelta(0)) & (lag <= window)]["cart"].unique()
    after = pairs[(lag < pd.Timedelta(0)) & (-lag <= window)]["cart"].unique()
    out = carts.assign(search_before=carts.index.isin(before), search_after=carts.index.isin(after))
    session_end = frame.groupby("session_id")["event_time"].max()
    out["session_end"] = out["session_id"].map(session_end)
    buys = frame[frame["event_type"] == "purchase"][["user_id", "category", "event_time"]]
    joined = out.reset_index(names="cart").merge(buys, on=["user_id", "category"], suffixes=("", "_p"))
    bought = joined[
        (joined["event_time_p"] > joined["session_end"])
        & (joined["event_time_p"] <= joined["session_end"] + 7 * DAY)
    ]["cart"].unique()
    out["buys_later"] = out.index.isin(bought)
    # Carts near the end have no full 7-day horizon.
    return out[out["session_end"] < frame["event_time"].max() - 7 * DAY]


@pytest.mark.xfail(
    reason="generator WIP (branch gen is finishing it): fails on this branch's base e2c319e too; "
    "non-strict so the fixed generator passes it once merged",
    strict=False,
)
def test_search_then_cart_raises_purchases_but_cart_then_search_does_not(medium: pd.DataFrame) -> None:
    carts = _carts_with_order(medium)
    search_first = carts[carts["search_before"]]
    cart_first = carts[carts["search_after"] & ~carts["search_before"]]
    no_search = carts[~carts["search_before"] & ~carts["search_after"]]
    rates = {name: g["buys_later"].mean() for name, g in
             {"search_first": search_first, "cart_first": cart_first, "no_search": no_search}.items()}  # fmt: skip
    print(f"order effect: {rates} sizes {len(search_first)}/{len(cart_first)}/{len(no_search)}")
    assert len(search_first) >= 100 and len(cart_first) >= 100
    # Same counts (one search, one cart, same category, minutes apart), other order: a marked difference.
    assert rates["search_first"] > 1.5 * rates["cart_first"]
    assert rates["search_first"] > 1.5 * rates["no_search"]
