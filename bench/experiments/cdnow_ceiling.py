"""Is CDNOW's ~0.778 ROC-AUC the models' limit or the data's? The data's: docs/results/quality_cdnow.md.

How much can any classifier get out of CDNOW at a cutoff? A check beside bench.quality.cdnow, which finds
shopscore's mlp level with the logistic regression on RFM inputs (ROC-AUC 0.7775 against 0.777 at
T = 1997-09-30, H = 90). This asks whether that is a limit of the models or of the data:
on exactly the benchmark's training and test rows (the `cdnow` importer's events, the same cutoffs and
labels), it fits the same logistic regression on the RFM inputs plus, one group at a time, inputs the
aggregates do not hold directly, and a tuned LightGBM:
- the gaps between a customer's purchase days (mean, last, shortest, longest, spread), "overdue" (recency
  over the mean gap) and the purchase rate (repeat purchases per day between the first and the last);
- the last order (its value and number of CDs) and the customer's cohort (first purchase, days after
  1997-01-01);
- BG/NBD fitted at each cutoff on that cutoff's rows: P(alive), expected purchases in the horizon and
  P(a purchase in the horizon), as inputs (stacking).
Intervals are the benchmark's paired bootstrap over customers, each model minus the plain logistic
regression.

    .venv/bin/python -m bench.experiments.cdnow_ceiling --cutoff 1997-09-30 --horizon 90     # ~1 min
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import (
    CDNOW_DATA,
    DAY,
    WORK_ROOT,
    bgnbd,
    bootstrap,
    purchase_labels,
    read_raw,
    rfm_features,
    scored_rows,
    training_cutoffs,
)
from registry.events.importers import import_events
from registry.events.schema import read_events
from registry.features.training_set import as_utc, entity_rows

WORK = WORK_ROOT / "cdnow_ceiling"
COHORT_START = pd.Timestamp("1997-01-01", tz="UTC")
GAPS = ["gap_mean", "gap_last", "gap_min", "gap_max", "gap_std", "overdue", "rate"]
LAST_ORDER = ["last_value", "last_cds", "cohort_day"]
BGNBD = ["bgnbd_alive", "bgnbd_expected", "bgnbd_p"]


def extra_features(events: pd.DataFrame, rows: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """RFM inputs (the peers' `rfm_features`) plus the gap, last-order and BG/NBD inputs, row for row."""
    base = rfm_features(events, rows)
    buys = events.loc[events["event_type"] == "purchase", ["user_id", "event_time", "price", "quantity"]]
    buys = buys.assign(value=buys["price"].fillna(0.0) * buys["quantity"].fillna(1).astype("float64"))
    first = buys.groupby("user_id")["event_time"].min()
    out = []
    for cutoff, group in rows.groupby("event_timestamp", sort=False):
        seen = buys[buys["event_time"] <= cutoff].sort_values(["user_id", "event_time"], kind="stable")
        days = seen.assign(day=seen["event_time"].dt.floor("D")).drop_duplicates(["user_id", "day"])
        gap = days.assign(gap=days.groupby("user_id")["day"].diff() / DAY).groupby("user_id")["gap"]
        last = seen.groupby("user_id").tail(1).set_index("user_id")
        f = pd.DataFrame(
            {
                "gap_mean": gap.mean(),
                "gap_last": gap.last(),
                "gap_min": gap.min(),
                "gap_max": gap.max(),
                "gap_std": gap.std(),
                "last_value": last["value"],
                "last_cds": last["quantity"].astype("float64"),
                "cohort_day": (first - COHORT_START) / DAY,
            }
        ).reindex(group["user_id"].to_numpy())
        f.index = group.index
        out.append(f)
    f = pd.concat(out).loc[rows.index].reset_index(drop=True)
    f = pd.concat([base, f], axis=1)
    f["overdue"] = f["recency_days"] / f["gap_mean"]
    f["rate"] = f["frequency"] / (f["age_days"] - f["recency_days"] + 1.0)
    for name, values in bgnbd_inputs(f, rows, horizon).items():
        f[name] = values
    return f


def bgnbd_inputs(f: pd.DataFrame, rows: pd.DataFrame, horizon: int) -> dict[str, np.ndarray]:
    """BG/NBD fitted per cutoff on that cutoff's rows: P(alive), E[purchases in H], P(a purchase in H)."""
    out = {name: np.zeros(len(f)) for name in ("bgnbd_alive", "bgnbd_expected", "bgnbd_p")}
    age, x = f["age_days"].to_numpy("float64"), f["frequency"].to_numpy("float64")
    t_x = age - f["recency_days"].to_numpy("float64")
    for _, index in rows.groupby("event_timestamp", sort=False).indices.items():
        fitted = bgnbd(x[index], t_x[index], age[index], horizon)
        out["bgnbd_alive"][index] = fitted["alive"]
        out["bgnbd_expected"][index] = fitted["expected"]
        out["bgnbd_p"][index] = fitted["p_purchase"]
    return out


def logistic(x_train: pd.DataFrame, y: np.ndarray, x_test: pd.DataFrame) -> np.ndarray:
    """The peers' logistic regression (signed log1p, standardised), with a 0/1 indicator per input that can
    be missing (a gap needs two purchase days)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def prepared(x: pd.DataFrame) -> np.ndarray:
        missing = x.columns[x_train.isna().any().to_numpy()]
        values = x.to_numpy("float64")
        values = np.sign(values) * np.log1p(np.abs(values))
        return np.hstack([np.nan_to_num(values), x[missing].isna().to_numpy("float64")])

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    return model.fit(prepared(x_train), y).predict_proba(prepared(x_test))[:, 1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cutoff", default="1997-09-30")
    parser.add_argument("--horizon", type=int, default=90)
    parser.add_argument("--train-every", type=int, default=14)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--data", type=Path, default=CDNOW_DATA)
    args = parser.parse_args()
    started = time.perf_counter()
    test_cutoff = as_utc(args.cutoff)
    dates = pd.to_datetime(read_raw(args.data, None)["date"], format="%Y%m%d", utc=True)
    cutoffs = training_cutoffs(dates.min(), dates.max(), test_cutoff, args.horizon, args.train_every)
    shutil.rmtree(WORK, ignore_errors=True)  # the benchmark's importer, into a fresh folder of its own
    import_events(args.data, "cdnow", WORK / "events")
    events = read_events(WORK / "events")
    train_rows = purchase_labels(events, entity_rows(events, cutoffs), args.horizon)
    rows = scored_rows(events, test_cutoff, args.horizon)
    x_train = extra_features(events, train_rows, args.horizon)
    x_test = extra_features(events, rows, args.horizon)
    y_train, y = train_rows["label_purchase"].to_numpy(), rows["label_purchase"].to_numpy()
    rfm = list(rfm_features(events, rows.head(1)).columns)
    inputs = {
        "logistic (RFM)": rfm,
        "logistic (RFM + gaps, rate)": rfm + GAPS,
        "logistic (RFM + last order, cohort)": rfm + LAST_ORDER,
        "logistic (RFM + BG/NBD)": rfm + BGNBD,
        "logistic (all)": rfm + GAPS + LAST_ORDER + BGNBD,
    }
    scores = {name: logistic(x_train[cols], y_train, x_test[cols]) for name, cols in inputs.items()}
    import lightgbm

    # Tuned by hand against the default's overfitting (0.761 in bench.quality.cdnow): fewer, slower, larger
    # leaves.
    booster = lightgbm.LGBMClassifier(
        n_estimators=400, learning_rate=0.02, num_leaves=15, min_child_samples=200, random_state=args.seed,
        deterministic=True, n_jobs=1, verbose=-1,
    )  # fmt: skip
    every = inputs["logistic (all)"]
    booster.fit(x_train[every], y_train)
    scores["LightGBM (all, tuned)"] = booster.predict_proba(x_test[every])[:, 1]
    results = bootstrap(y, scores, "logistic (RFM)", args.resamples, args.seed)
    print("| model | ROC-AUC [95% CI] | vs logistic (RFM) | PR-AUC [95% CI] | vs logistic (RFM) |")
    print("| --- | --- | --- | --- | --- |")
    for name in scores:
        r = results[name]
        print(
            f"| {name} | {cell(metric(r, 'roc_auc'))} | {gain(r, 'roc_auc')} | {cell(metric(r, 'pr_auc'))} "
            f"| {gain(r, 'pr_auc')} |"
        )
    print(
        f"\nCDNOW, T = {test_cutoff.date()}, H = {args.horizon}: {len(rows):,} customers (base rate {y.mean():.3f}); "
        f"{len(cutoffs)} training cutoffs, {len(train_rows):,} rows; {time.perf_counter() - started:.0f} s"
    )


def cell(interval_of: tuple[float, list[float]]) -> str:
    value, (lo, hi) = interval_of
    return f"{value:.4f} [{lo:.4f}, {hi:.4f}]"


def metric(r: dict, name: str) -> tuple[float, list[float]]:
    return r[name], r[f"{name}_ci"]


def gain(r: dict, name: str) -> str:
    """This model minus the plain logistic regression (the bootstrap gives the reverse), paired."""
    if f"{name}_best_minus_this" not in r:
        return "-"
    lo, hi = r[f"{name}_best_minus_this_ci"]
    return f"{-r[f'{name}_best_minus_this']:+.4f} [{-hi:+.4f}, {-lo:+.4f}]"


if __name__ == "__main__":
    main()
