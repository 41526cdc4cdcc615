"""CDNOW quality benchmark: shopscore's encoders against the classic peers, on the same customers and labels.

Protocol (../shared/data/README.md): for a cutoff T, score every customer with history up to T; the label
is at least one purchase in (T, T + H days]. Everything shopscore does goes through its real pipeline: the
`cdnow` importer -> the feature pipeline -> Feast (`get_historical_features` by FeatureService) ->
`registry.flow.train` (each built-in encoder family with the `purchase` head, registered in a model
registry under bench/.work/cdnow) -> the registered model, loaded back, scores every customer at T.

Training cutoffs step back from T - H every `--train-every` days while a customer base exists, so every
label window ends on or before T. Validation (early stopping, calibration) uses the held-out users
(`registry.modeling.training.held_out`) at those same cutoffs; the model that is reported as "best" is chosen by its
validation ROC-AUC, never by the test.

Peers, scored on exactly the rows and labels shopscore's test frame holds (checked, not assumed):
- BG/NBD (`lifetimes.BetaGeoFitter`) fitted on every customer's history up to T; its score is the
  probability of at least one purchase in (T, T + H]: P(alive | x, t_x, T) * (1 - ((a + T) / (a + T + H))
  ** (r + x)) (given alive, the purchase rate is Gamma(r + x, a + T) and dropout only follows a purchase,
  so no purchase in H has probability E[exp(-lambda H)]). lifetimes 0.11.3 has no conditional
  probability of n purchases for BetaGeoFitter, so the formula is written here.
- logistic regression and LightGBM (untuned) on recency / frequency / age / monetary value and purchase
  counts and spend in 30/90/180/365-day windows, trained on the same training cutoffs' rows and labels.
- the base rate: every customer gets the training rows' positive rate.

Metrics are registry/modeling/metrics.py's `binary_metrics`, each with a 95% percentile bootstrap interval over
customers (the same seeded resamples for every model), plus paired intervals of the best shopscore model
minus each peer on ROC-AUC and PR-AUC. The protocol's and the peers' pieces are in bench.common, shared with
bench.experiments.cdnow_ceiling, which scores the same rows.

    .venv/bin/python -m bench.quality.cdnow --cutoff 1997-09-30 --horizon 90 [--json] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import (
    CDNOW_DATA,
    CDNOW_METRICS,
    WORK_ROOT,
    ProtocolError,
    bgnbd,
    bootstrap,
    purchase_label,
    purchase_labels,
    read_raw,
    rfm_features,
    scored_rows,
    training_cutoffs,
)
from registry import flow as jobs
from registry.events.importers import import_events
from registry.events.schema import read_events
from registry.features import feast_store
from registry.features.build import build_all
from registry.features.training_set import as_utc, build_training_set, entity_rows
from registry.model_registry.store import ModelRegistry
from registry.modeling.shop_model import ShopModel
from registry.modeling.training import Splits, TrainConfig
from registry.settings import Settings

WORK = WORK_ROOT / "cdnow"
MARKER = ".quality_cdnow"  # marks a workspace this benchmark may wipe and rebuild


@dataclass(frozen=True)
class Family:
    """A built-in encoder family: the encoders `registry.flow.TrainSpec` combines and the service it reads."""

    encoders: tuple[str, ...]
    feature_service: str
    encoder_config: dict | None = None


# CDNOW histories are short (median 1 order; 20 cover 99% of customers), so a small sequence encoder
# over the last 20 orders: the default (50 events, 2 layers of width 64) costs ~4x the CPU time for them.
SMALL_SEQUENCE = {"max_len": 20, "d_model": 32, "n_heads": 2, "n_layers": 1}
FAMILIES = {
    "mlp": Family(("mlp",), "purchase_lifetime_v1"),
    "sequence": Family(("sequence",), "purchase_lifetime_seq_v1", SMALL_SEQUENCE),
    "mlp+sequence": Family(("mlp", "sequence"), "purchase_lifetime_seq_v1", {"sequence": SMALL_SEQUENCE}),
}


# ---- data ----------------------------------------------------------------------------------------------
def prepare(settings: Settings, source: Path) -> pd.DataFrame:
    """Import `source` with the `cdnow` importer, build every view, apply Feast and create the model registry."""
    summary = import_events(source, "cdnow", settings.events_dir)
    if summary.quarantined:
        raise RuntimeError(f"the cdnow importer quarantined rows of {source}: {summary.to_json()}")
    events = read_events(settings.events_dir)
    build_all(events, settings.features_dir)
    feast_store.apply(settings)
    ModelRegistry.open(settings=settings, upgrade=True).close()  # the registry the models go to
    return events


# ---- shopscore -----------------------------------------------------------------------------------------
def train_family(
    settings: Settings, name: str, splits: Splits, seed: int, epochs: int
) -> tuple[int, dict[str, float]]:
    """Train and register one family through `registry.flow.train`; returns (version, registered metrics)."""
    family = FAMILIES[name]
    spec = jobs.TrainSpec(
        model_name=f"cdnow_{name.replace('+', '_')}",
        encoder=list(family.encoders),
        feature_service=family.feature_service,
        horizon_days=splits.horizon_days,
        encoder_config=family.encoder_config,
        splits=splits,
        # lr and patience chosen on validation ROC-AUC among 4 mlp settings (hidden 64-32 or 128-64, lr
        # 3e-3 or 1e-3): 1e-3 won by 0.0003, a tie; the test set played no part.
        train=TrainConfig(
            epochs=epochs, batch_size=512, lr=1e-3, patience=8, seed=seed, device="cpu", progress=False
        ),
    )
    version = jobs.train(settings, spec)
    return version.version, version.metrics


def score_family(
    settings: Settings, name: str, version: int, events: pd.DataFrame, rows: pd.DataFrame, horizon: int
) -> np.ndarray:
    """The registered model, loaded back from the registry, scores every test row's Feast features."""
    model_name = f"cdnow_{name.replace('+', '_')}"
    with ModelRegistry.open(settings=settings) as registry:
        record, path = registry.fetch(model_name, version)
    model = ShopModel.from_pretrained(path)
    store = feast_store.open_store(settings)
    cutoff = rows["event_timestamp"].iloc[0]
    frame = build_training_set(
        store,
        events,
        service_name=record.feature_service,
        cutoffs=[cutoff],
        horizon_days=horizon,
        label=purchase_label(),
    )
    same = frame[["user_id", "label_purchase"]].to_numpy()
    if not np.array_equal(same, rows[["user_id", "label_purchase"]].to_numpy()):
        raise AssertionError(f"{name}: Feast's test frame is not the peers' rows and labels")
    return model.predict_frame(frame)


# ---- peers ---------------------------------------------------------------------------------------------
def bgnbd_scores(events: pd.DataFrame, rows: pd.DataFrame, horizon: int) -> np.ndarray:
    """P(at least one purchase in (T, T + H]) under BG/NBD fitted on every row's history up to T."""
    f = rfm_features(events, rows)
    age = f["age_days"].to_numpy("float64")
    x, t_x = f["frequency"].to_numpy("float64"), age - f["recency_days"].to_numpy("float64")
    return bgnbd(x, t_x, age, horizon)["p_purchase"]


def peer_scores(
    events: pd.DataFrame, train_rows: pd.DataFrame, rows: pd.DataFrame, horizon: int, seed: int
) -> dict[str, np.ndarray]:
    """Scores of every peer on `rows`; the supervised ones learn from `train_rows` (with labels)."""
    import lightgbm
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    x_train, x_test = rfm_features(events, train_rows), rfm_features(events, rows)
    y_train = train_rows["label_purchase"].to_numpy()
    logistic = make_pipeline(
        FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression(max_iter=2000)
    ).fit(x_train, y_train)
    booster = lightgbm.LGBMClassifier(random_state=seed, deterministic=True, n_jobs=1, verbose=-1)
    booster.fit(x_train, y_train)
    return {
        "BG/NBD": bgnbd_scores(events, rows, horizon),
        "logistic (RFM)": logistic.predict_proba(x_test)[:, 1],
        "LightGBM (RFM)": booster.predict_proba(x_test)[:, 1],
        "base rate": np.full(len(rows), y_train.mean()),
    }


def markdown(results: dict[str, dict], shopscore: list[str], best: str) -> str:
    header = "| model | ROC-AUC | PR-AUC | log loss | Brier | ECE | lift@10% |"
    lines = [header, "|" + " --- |" * 7]
    for name, r in results.items():
        label = f"shopscore {name}" + (" (best on validation)" if name == best else "")
        label = label if name in shopscore else name
        cells = [f"{r[m]:.3f} [{r[f'{m}_ci'][0]:.3f}, {r[f'{m}_ci'][1]:.3f}]" for m in CDNOW_METRICS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---- the whole run -------------------------------------------------------------------------------------
def run(
    cutoff: str,
    horizon: int,
    *,
    seed: int = 0,
    families: Sequence[str] = tuple(FAMILIES),
    train_every: int = 14,
    epochs: int = 40,
    resamples: int = 200,
    data: Path = CDNOW_DATA,
    work: Path = WORK,
    customers: int | None = None,
) -> dict:
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ProtocolError(f"unknown encoder families {unknown}; choose from {list(FAMILIES)}")
    started = time.perf_counter()
    test_cutoff = as_utc(cutoff)
    raw = read_raw(Path(data), customers)
    dates = pd.to_datetime(raw["date"], format="%Y%m%d", utc=True)
    # Checked on the raw file first, so a bad cutoff fails before minutes of import and feature building.
    cutoffs = training_cutoffs(dates.min(), dates.max(), test_cutoff, horizon, train_every)
    settings = Settings.from_env(home=work).with_(
        feast_profile="", feature_repo=Settings.from_env().feature_repo
    )
    settings = settings.with_(
        database_url=f"sqlite:///{work / 'registry.db'}", artifacts_root=str(work / "artifacts")
    )
    if work.exists() and any(work.iterdir()):
        if not (work / MARKER).is_file():
            raise ProtocolError(
                f"--work {work} is not empty and not an earlier run's workspace; pass another"
            )
        shutil.rmtree(work)  # a fresh workspace: a run must not depend on an earlier one
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).touch()
    source = Path(data)
    if customers is not None:
        source = work / "cdnow_subset.txt"
        raw.to_csv(source, sep=" ", index=False)
    events = prepare(settings, source)
    splits = Splits(tuple(cutoffs), None, test_cutoff, horizon)
    rows = scored_rows(events, test_cutoff, horizon)
    y = rows["label_purchase"].to_numpy()

    scores: dict[str, np.ndarray] = {}
    valid_auc: dict[str, float] = {}
    versions: dict[str, int] = {}
    for name in families:
        versions[name], metrics = train_family(settings, name, splits, seed, epochs)
        valid_auc[name] = float(metrics["valid_roc_auc"])
        scores[name] = score_family(settings, name, versions[name], events, rows, horizon)
    best = max(valid_auc, key=valid_auc.__getitem__)
    train_rows = purchase_labels(events, entity_rows(events, cutoffs), horizon)
    peers = peer_scores(events, train_rows, rows, horizon, seed)
    results = bootstrap(y, {**scores, **peers}, best, resamples, seed)
    return {
        "results": results,
        "best": best,
        "families": list(families),
        "versions": versions,
        "valid_roc_auc": valid_auc,
        "protocol": {
            "cutoff": str(test_cutoff.date()),
            "horizon_days": horizon,
            "customers": len(rows),
            "base_rate": float(y.mean()),
            "train_cutoffs": [str(c.date()) for c in cutoffs],
            "train_rows": len(train_rows),
            "seed": seed,
            "resamples": resamples,
        },
        "seconds": time.perf_counter() - started,
        "registry": settings.database_url,
    }


def summary_json(report: dict) -> dict:
    """The `--json` line: the best shopscore model and every peer, metrics with their intervals."""
    results, best = report["results"], report["best"]
    shopscore = {"best": best, **results[best], "valid_roc_auc": report["valid_roc_auc"]}
    shopscore["families"] = {name: results[name] for name in report["families"]}
    peers = {name: r for name, r in results.items() if name not in report["families"]}
    return {"shopscore": shopscore, "peers": peers}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cutoff", default="1997-09-30", help="test cutoff T (history up to T, YYYY-MM-DD)")
    parser.add_argument("--horizon", type=int, default=90, help="label window H in days: (T, T + H]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on the last line")
    parser.add_argument("--families", default=",".join(FAMILIES), help=f"subset of {list(FAMILIES)}")
    parser.add_argument("--train-every", type=int, default=14, help="days between training cutoffs")
    parser.add_argument("--epochs", type=int, default=40, help="most epochs per model (early stopping)")
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples")
    parser.add_argument(
        "--customers", type=int, default=None, help="only customers with id <= N (quick runs)"
    )
    parser.add_argument("--data", type=Path, default=CDNOW_DATA)
    parser.add_argument("--work", type=Path, default=WORK)
    args = parser.parse_args(argv)
    try:
        report = run(
            args.cutoff,
            args.horizon,
            seed=args.seed,
            families=[f for f in args.families.split(",") if f],
            train_every=args.train_every,
            epochs=args.epochs,
            resamples=args.resamples,
            data=args.data,
            work=args.work,
            customers=args.customers,
        )
    except (ProtocolError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    p = report["protocol"]
    print(
        f"CDNOW, T = {p['cutoff']}, H = {p['horizon_days']} days: {p['customers']} customers, base rate "
        f"{p['base_rate']:.3f}; {len(p['train_cutoffs'])} training cutoffs {p['train_cutoffs'][0]} .. "
        f"{p['train_cutoffs'][-1]} ({p['train_rows']} rows); seed {p['seed']}, {p['resamples']} bootstrap "
        f"resamples; best shopscore family chosen on validation ROC-AUC {report['valid_roc_auc']}\n"
    )
    print(markdown(report["results"], report["families"], report["best"]))
    print()
    for name, r in report["results"].items():
        if name in report["families"]:
            continue
        lo_r, hi_r = r["roc_auc_best_minus_this_ci"]
        lo_p, hi_p = r["pr_auc_best_minus_this_ci"]
        print(
            f"best ({report['best']}) - {name}: ROC-AUC {r['roc_auc_best_minus_this']:+.4f} "
            f"[{lo_r:+.4f}, {hi_r:+.4f}], PR-AUC {r['pr_auc_best_minus_this']:+.4f} [{lo_p:+.4f}, {hi_p:+.4f}]"
        )
    print(
        f"\nruntime {report['seconds']:.0f} s, load average {os.getloadavg()[0]:.2f}; models registered in "
        f"{report['registry']} as "
        + ", ".join(f"cdnow_{n.replace('+', '_')} v{v}" for n, v in report["versions"].items())
    )
    if args.json:
        print(json.dumps(summary_json(report), allow_nan=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
