"""Order off, what does the sequence encoder see? Recent events' detail: docs/results/encoders_synthetic.md.

With the order effect off, the sequence encoder still adds ROC-AUC to the mlp: what does it see? The recent
events' detail, which the windows sum away (the page's "What the order-free ROC-AUC gain is").

    .venv/bin/python -m bench.experiments.sequence_gain_sources --variant no_order     # 12,000 users
    .venv/bin/python -m bench.experiments.sequence_gain_sources --users 48000 --variant no_order \\
        --against bench/.work/quality_synthetic/no_order     # beside that run's mlp and mlp+sequence

The mlp reads `purchase_v1`: counts over 1 hour / 1 / 7 / 30 days, recency, ratios. The sequence encoder
reads the last events themselves, each with its type, category, price bucket and time, so it can also see
how intent moves within those windows. The generator's intent ramps up over days, and a session's size,
carts and searches grow with it (registry/events/generate.py). On the `no_order` shop, where the order of
events predicts nothing, this benchmark asks how much of that a model gets from inputs written by hand:
- `days`: counts per event type and sessions on each of the last 7 days (the windows only sum them);
- `sessions`: events, carts and searches of each of the last 5 sessions, and their age in hours;
- `recency`: hours since the last view, search, favourite and cart;
- `focus`: the most views and carts on one category, and on one item, in the last 7 days (and as a share);
- `last events`: the last 30 events themselves (type, hours ago, same category and same session as the
  newest), the sequence encoder's window laid out flat.

Each group is added to the `purchase_v1` values, as Feast serves them at each cutoff, and a LightGBM model is
fitted with and without it. The protocol is bench.quality.synthetic's: the same generated shop (`--variant`,
`--users`, `--seed`), weekly training cutoffs on the training users, and the held-out users at the test
cutoff (`Splits.default_for`). Each gain comes with a paired 95% bootstrap interval over the test users.

With `--against DIR` (a bench.quality.synthetic workspace of the same shop), the latest `mlp` and
`mlp_sequence` versions' stored test outputs join the table, on the same rows, checked label for label.

Prints a markdown table, then (with --json) one JSON line last. Seeded and deterministic for a given
number of LightGBM threads (`--threads`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import VARIANTS, interval, purchase_labels, workspace_settings
from registry.events.generate import generate_events
from registry.features.contract import feature_columns
from registry.features.snapshots import build_user_features
from registry.features.training_set import entity_rows
from registry.model_registry.store import ModelRegistry
from registry.modeling.metrics import RANKING_METRICS as METRICS
from registry.modeling.metrics import bootstrap_samples
from registry.modeling.training import EVALUATION_FILE, Splits, held_out

NS_PER_HOUR = 3_600 * 10**9
DAYS_BACK = 7  # the `days` group: one count per day over the last week
LAST_SESSIONS = 5  # the `sessions` group
LAST_EVENTS = 30  # the `last events` group: as many as the quality benchmark's sequence encoder reads
NO_EVENT_HOURS = 24.0 * 365  # "never" for the hours-since inputs (LightGBM only needs it far away)


def _ns(time: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch of a UTC time column, whatever unit it is stored in."""
    return time.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]").to_numpy().view("int64")


def _newest_before(user: pd.Series, time: pd.Series, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Over records sorted by (user, time): for each row, the index of its user's newest record strictly
    before the row's cutoff, and of its user's first record (the newest is below the first when there is
    none). Going back `k` records is `newest - k`, found while it is still >= first."""

    def key(user: pd.Series, time: pd.Series) -> np.ndarray:
        return user.to_numpy("int64") * 10**10 + _ns(time) // 10**9  # seconds fit below 10**10

    newest = np.searchsorted(key(user, time), key(rows["user_id"], rows["event_timestamp"])) - 1
    return newest, np.searchsorted(user.to_numpy(), rows["user_id"].to_numpy())


def daily_counts(events: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Events per type, and sessions, on each of the `DAYS_BACK` days before each row's cutoff."""
    day = events["event_time"].dt.floor("D")
    per_day = events.groupby(["user_id", day, "event_type"]).size().unstack(fill_value=0)
    per_day["sessions"] = events.groupby(["user_id", day])["session_id"].nunique()
    out = {}
    for back in range(1, DAYS_BACK + 1):
        key = pd.MultiIndex.from_arrays([rows["user_id"], rows["event_timestamp"] - pd.Timedelta(days=back)])
        found = per_day.reindex(key).fillna(0).to_numpy()
        out |= {f"day{back}_{column}": found[:, j] for j, column in enumerate(per_day.columns)}
    return pd.DataFrame(out, index=rows.index)


def last_sessions(events: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Size, carts, searches and age (hours) of each of the `LAST_SESSIONS` sessions ended before the cutoff."""
    counted = events[["user_id", "session_id", "event_time"]].assign(
        carts=events["event_type"].eq("cart"), searches=events["event_type"].eq("search")
    )
    sessions = (
        counted.groupby("session_id")
        .agg(
            user_id=("user_id", "first"),
            end=("event_time", "max"),
            size=("event_time", "size"),
            carts=("carts", "sum"),
            searches=("searches", "sum"),
        )
        .sort_values(["user_id", "end"], kind="stable", ignore_index=True)
    )

    last, first_of_user = _newest_before(sessions["user_id"], sessions["end"], rows)
    cutoff_ns, end_ns = _ns(rows["event_timestamp"]), _ns(sessions["end"])
    out = {}
    for back in range(LAST_SESSIONS):
        index = last - back
        found = index >= first_of_user
        index = np.clip(index, 0, len(sessions) - 1)
        for column in ("size", "carts", "searches"):
            out[f"session{back}_{column}"] = np.where(found, sessions[column].to_numpy()[index], 0)
        age = (cutoff_ns - end_ns[index]) / NS_PER_HOUR
        out[f"session{back}_hours_ago"] = np.where(found, age, NO_EVENT_HOURS)
    return pd.DataFrame(out, index=rows.index)


def hours_since(events: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Hours from the last view, search, favourite and cart to the cutoff."""
    cutoff_ns = _ns(rows["event_timestamp"])
    out = {}
    for event_type in ("view", "search", "favorite", "cart"):
        of_type = events.loc[events["event_type"] == event_type, ["user_id", "event_time"]]
        of_type = of_type.sort_values(["user_id", "event_time"], kind="stable", ignore_index=True)
        newest, first_of_user = _newest_before(of_type["user_id"], of_type["event_time"], rows)
        found = newest >= first_of_user
        event_ns = np.r_[_ns(of_type["event_time"]), 0]  # one spare entry: rows with none index nothing real
        hours = (cutoff_ns - event_ns[np.where(found, newest, -1)]) / NS_PER_HOUR
        out[f"hours_since_{event_type}"] = np.where(found, hours, NO_EVENT_HOURS)
    return pd.DataFrame(out, index=rows.index)


def focus(events: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """The most views and carts on one category, and on one item, in the 7 days before the cutoff, and that
    count as a share of all views and carts then."""
    browsed = events.loc[
        events["event_type"].isin(["view", "cart"]), ["user_id", "event_time", "category", "item_id"]
    ]
    window = rows[["user_id", "event_timestamp"]].reset_index().merge(browsed, on="user_id")
    window = window[
        (window["event_time"] < window["event_timestamp"])
        & (window["event_time"] >= window["event_timestamp"] - pd.Timedelta(days=7))
    ]
    total = window.groupby("index").size()
    out = {}
    for what in ("category", "item_id"):
        top = window.groupby(["index", what]).size().groupby(level=0).max()
        name = what.removesuffix("_id")
        out[f"top_{name}_7d"] = top
        out[f"top_{name}_share_7d"] = top / total
    return pd.DataFrame(out).reindex(rows.index).fillna(0.0)


def last_events(events: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """The last `LAST_EVENTS` events themselves, newest first: type, hours ago, and whether each shares the
    newest event's category and session (what the sequence encoder's pair bias reads, made explicit)."""
    ordered = events.sort_values(["user_id", "event_time"], kind="stable", ignore_index=True)
    last, first_of_user = _newest_before(ordered["user_id"], ordered["event_time"], rows)
    event_type = pd.Categorical(ordered["event_type"]).codes
    category = pd.Categorical(ordered["category"]).codes
    session = pd.Categorical(ordered["session_id"]).codes
    event_ns, cutoff_ns = _ns(ordered["event_time"]), _ns(rows["event_timestamp"])
    newest = np.clip(last, 0, None)
    out = {}
    for back in range(LAST_EVENTS):
        index = last - back
        found = index >= first_of_user
        index = np.clip(index, 0, None)
        out[f"event{back}_type"] = np.where(found, event_type[index], -1)
        out[f"event{back}_hours_ago"] = np.where(found, (cutoff_ns - event_ns[index]) / NS_PER_HOUR, np.nan)
        out[f"event{back}_same_category"] = np.where(found, category[index] == category[newest], np.nan)
        out[f"event{back}_same_session"] = np.where(found, session[index] == session[newest], np.nan)
    return pd.DataFrame(out, index=rows.index)


GROUPS = {
    "days": daily_counts,
    "sessions": last_sessions,
    "recency": hours_since,
    "focus": focus,
    "last events": last_events,
}


def booster_scores(x: pd.DataFrame, train: np.ndarray, y: np.ndarray, seed: int, threads: int) -> np.ndarray:
    """LightGBM, slow and wide enough for a few hundred inputs: many small steps, half the columns per tree
    (the 400-tree default gained half as much from the same inputs at 48,000 users)."""
    import lightgbm

    model = lightgbm.LGBMClassifier(
        n_estimators=1500, learning_rate=0.02, min_child_samples=100, subsample=0.8, subsample_freq=1,
        colsample_bytree=0.5, random_state=seed, deterministic=True, n_jobs=threads, verbose=-1,
    )  # fmt: skip
    return model.fit(x[train], y[train]).predict_proba(x[~train])[:, 1]


def stored_test_outputs(home: Path, test: pd.DataFrame) -> dict[str, np.ndarray]:
    """The latest mlp and mlp_sequence versions' test scores in the workspace, aligned with `test`'s rows."""
    out = {}
    with ModelRegistry.open(settings=workspace_settings(home)) as registry:
        for model in ("mlp", "mlp_sequence"):
            latest = max(v.version for v in registry.versions(model))
            _, directory = registry.fetch(model, latest)
            stored = pd.read_parquet(directory / EVALUATION_FILE).query("split == 'test'")
            joined = test[["user_id", "label_purchase"]].merge(stored, on="user_id", how="left")
            same_rows = len(stored) == len(test) and joined["score"].notna().all()
            if not same_rows or not (joined["label"] == joined["label_purchase"]).all():
                raise RuntimeError(f"{home}: {model}'s test rows are not this shop's; generate the same shop")
            out[model.replace("_", "+")] = joined["score"].to_numpy()
    return out


def protocol_rows(events: pd.DataFrame, horizon: int) -> tuple[pd.DataFrame, np.ndarray]:
    """bench.quality.synthetic's rows (jobs.train's default splits): the training users at the weekly training
    cutoffs, the held-out users at the test cutoff; with labels, and which rows train."""
    splits = Splits.default_for(events["event_time"].min(), events["event_time"].max(), horizon)
    rows = purchase_labels(events, entity_rows(events, [*splits.train_cutoffs, splits.test_cutoff]), horizon)
    rows = rows[["user_id", "event_timestamp", "label_purchase"]]
    is_test = (rows["event_timestamp"] == splits.test_cutoff).to_numpy()
    held = held_out(rows["user_id"])
    rows = rows[(is_test & held) | (~is_test & ~held)].reset_index(drop=True)
    return rows, (rows["event_timestamp"] != splits.test_cutoff).to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", default="no_order", choices=list(VARIANTS))
    parser.add_argument("--users", type=int, default=12_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--horizon", type=int, default=7)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1, help="LightGBM threads (same threads, same scores)")
    parser.add_argument("--against", type=Path, help="a bench.quality.synthetic workspace of this shop")
    parser.add_argument("--json", action="store_true", help="print one JSON line last")
    args = parser.parse_args()
    started = time.perf_counter()
    variant = VARIANTS[args.variant]
    events = generate_events(
        users=args.users, days=args.days, seed=args.seed, start="2024-01-01",
        order_effect=variant.order_effect, query_signal=variant.query_signal,
    )  # fmt: skip
    rows, train = protocol_rows(events, args.horizon)
    snapshots = build_user_features(events)  # what Feast serves for purchase_v1 at a cutoff
    base = rows[["user_id", "event_timestamp"]].merge(snapshots, how="left")[feature_columns()]
    extra = {name: build(events, rows) for name, build in GROUPS.items()}
    y = rows["label_purchase"].to_numpy()
    inputs = {"purchase_v1": base} | {f"+ {name}": base.join(extra[name]) for name in GROUPS}
    inputs["+ all five"] = base.join(pd.concat(extra.values(), axis=1))
    scores = {
        f"LightGBM {name}": booster_scores(x, train, y, args.seed, args.threads) for name, x in inputs.items()
    }
    test = rows[~train].reset_index(drop=True)
    if args.against:
        scores |= stored_test_outputs(args.against, test)
    y_test = y[~train]
    samples = bootstrap_samples(y_test, scores, METRICS, n_boot=args.boot, seed=args.seed)
    results = {}
    for name, score in scores.items():
        # Every LightGBM (and the mlp) against LightGBM on purchase_v1; mlp+sequence against the mlp.
        reference = "mlp" if name == "mlp+sequence" else "LightGBM purchase_v1"
        reference = None if name == reference else reference
        row = results[name] = {"reference": reference}
        for metric, fn in METRICS.items():
            row[metric] = round(float(fn(y_test, score)), 4)
            row[f"{metric}_ci"] = interval(samples[name][metric])
            if reference:
                row[f"{metric}_gain"] = round(row[metric] - float(fn(y_test, scores[reference])), 4)
                row[f"{metric}_gain_ci"] = interval(samples[name][metric] - samples[reference][metric])
    seconds = time.perf_counter() - started
    print("| model | ROC-AUC [95% CI] | gain [95% CI] | PR-AUC [95% CI] | gain [95% CI] | gain over |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, row in results.items():
        cells = []
        for metric in ("roc_auc", "pr_auc"):
            low, high = row[f"{metric}_ci"]
            cells.append(f"{row[metric]:.3f} [{low:.3f}, {high:.3f}]")
            if f"{metric}_gain" in row:
                low, high = row[f"{metric}_gain_ci"]
                cells.append(f"{row[f'{metric}_gain']:+.3f} [{low:+.3f}, {high:+.3f}]")
            else:
                cells.append("-")
        print(f"| {name} | {' | '.join(cells)} | {row['reference'] or '-'} |")
    print(
        f"\n{args.variant} shop, {args.users:,} users x {args.days} days, seed {args.seed}, horizon "
        f"{args.horizon}d; {len(y_test):,} test users, base rate {y_test.mean():.3f}; {seconds:.0f} s"
    )
    if args.json:
        config = {k: v for k, v in vars(args).items() if k != "json"}
        print(json.dumps({"config": config, "seconds": round(seconds, 1), "results": results}, default=str))


if __name__ == "__main__":
    main()
