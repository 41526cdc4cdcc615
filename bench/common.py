"""What more than one benchmark uses. Every script under bench/ imports this module (and `registry`,
`plugins`), never another script; each runs as a module from the repository root (bench/README.md).

- paths: the repository, bench/.work/ (each benchmark's workspaces, git-ignored) and the CDNOW file;
- the bench shop (`shop`, `settings_env`): a trained 3,000-user workspace, built once per profile and
  reused by the serving and training-set benchmarks;
- `events_for`: generator events of a given size, cached as parquet, for the feature-pipeline benchmarks;
- the purchase head's label (`purchase_label`, `purchase_labels`);
- the CDNOW protocol and its peers' pieces (`training_cutoffs`, `read_raw`, `scored_rows`, `rfm_features`,
  `bgnbd`, `bootstrap`), so the quality benchmark and the ceiling experiment score the same rows alike;
- the synthetic shop's variants and workspaces (`VARIANTS`, `workspace`, `segments`, `add_shop_arguments`,
  `interval`), so the quality benchmark and the sequence experiments run on the same shops.

`registry`, `plugins` and the peers' libraries are imported inside the functions that use them: the feature
benchmark's child processes import this module, and their peak RSS must stay the pipeline's own (importing
registry.flow alone loads torch and Feast, ~330 MiB).
"""

from __future__ import annotations

import argparse
import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from registry.features.training_set import LabelSpec
    from registry.settings import Settings

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK_ROOT = BENCH / ".work"  # each benchmark's workspaces, one folder each
CDNOW_DATA = REPO.parent / "shared" / "data" / "cdnow" / "CDNOW_master.txt"
EVENTS_CACHE = Path("/tmp/shopscore-bench")


def load_average() -> str:
    """The 1, 5 and 15-minute load averages as /proc/loadavg has them ("?" without it)."""
    loadavg = Path("/proc/loadavg")
    return " ".join(loadavg.read_text().split()[:3]) if loadavg.exists() else "?"


# ---- the bench shop ------------------------------------------------------------------------------------
# A trained shop workspace for the serving and training-set benchmarks: built once per profile under
# bench/.work/ and reused. Profiles: "" (embedded: SQLite online store, file Feast registry) and "redis"
# (Redis online store, Feast SQL registry on PostgreSQL). The redis profile uses Redis database 5 and
# PostgreSQL database shopscore_bench_feast so a benchmark never overwrites what tests or a demo keep in
# the defaults.
POSTGRES = os.environ.get("SHOPSCORE_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
FEAST_DB = "shopscore_bench_feast"


def profile_env(profile: str) -> dict[str, str]:
    """Environment variables the profile's feature_store yaml needs (also passed to server subprocesses)."""
    if profile != "redis":
        return {}
    return {
        "SHOPSCORE_REDIS": os.environ.get("SHOPSCORE_REDIS", "127.0.0.1:6379,db=5"),
        "SHOPSCORE_FEAST_REGISTRY_URL": f"{POSTGRES}/{FEAST_DB}",
    }


def _create_feast_database() -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": FEAST_DB}).first():
            conn.execute(sa.text(f'CREATE DATABASE "{FEAST_DB}"'))
    engine.dispose()


def shop(profile: str = "", *, users: int = 3000, days: int = 60) -> tuple[Settings, list[int]]:
    """(settings, user ids with online features) of a workspace whose `production` alias is trained."""
    from registry import flow as jobs
    from registry.events.schema import read_events
    from registry.model_registry.store import ModelRegistry
    from registry.modeling.training import TrainConfig
    from registry.settings import Settings

    os.environ.update(profile_env(profile))
    home = WORK_ROOT / (profile or "embedded")
    settings = Settings.from_env(home=home).with_(
        database_url=f"sqlite:///{home / 'registry.db'}",
        feast_profile=profile,
        artifacts_root=str(home / "artifacts"),
    )
    if not (home / "ready").exists():
        home.mkdir(parents=True, exist_ok=True)
        if profile == "redis":
            _create_feast_database()
        jobs.generate(settings, users=users, days=days, seed=3)
        jobs.build_features(settings)
        jobs.apply_features(settings)
        jobs.materialize_features(settings)
        registry = ModelRegistry.open(settings=settings, upgrade=True, role="promoter")
        version = jobs.train(
            settings, jobs.TrainSpec(train=TrainConfig(epochs=5, progress=False, device="cpu"))
        )
        registry.set_alias("purchase", "production", version.version, reason="bench", actor="bench")
        registry.close()
        (home / "ready").touch()
    events = read_events(settings.events_dir)
    recent = events[events["event_time"] > events["event_time"].max() - pd.Timedelta(days=1)]
    return settings, sorted(int(u) for u in recent["user_id"].unique())


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a subprocess needs to see the same workspace."""
    return {
        **profile_env(settings.feast_profile),
        "SHOPSCORE_HOME": str(settings.home),
        "SHOPSCORE_DATABASE_URL": settings.database_url,
        "SHOPSCORE_ARTIFACTS_DIR": settings.artifacts_root,
        "SHOPSCORE_FEAST_PROFILE": settings.feast_profile,
        "SHOPSCORE_DEVICE": settings.device,
    }


# ---- generated events, cached --------------------------------------------------------------------------
# Roughly 450k events per 2,500 users over 90 days with the generator's defaults (measured, not exact).
EVENTS_PER_USER_90D = 180


def events_for(size: int, cache: Path) -> Path:
    """`size` generator events (blocks of users with distinct ids), streamed to one parquet file."""
    path = cache / f"events_{size}.parquet"
    if path.is_file():
        return path
    import pyarrow as pa
    import pyarrow.parquet as pq

    from registry.events.generate import generate_events
    from registry.events.schema import ARROW_SCHEMA

    cache.mkdir(parents=True, exist_ok=True)
    users = max(1, size // EVENTS_PER_USER_90D)
    tmp = path.with_suffix(".tmp")
    total, seed = 0, 0
    with pq.ParquetWriter(tmp, ARROW_SCHEMA) as writer:
        while total < size:  # blocks of users keep memory bounded
            block = generate_events(users=min(users, 5000), days=90, seed=seed, start="2024-01-01")
            block = block.iloc[: size - total]
            block["user_id"] += seed * 1_000_000
            writer.write_table(pa.Table.from_pandas(block, schema=ARROW_SCHEMA, preserve_index=False))
            total += len(block)
            seed += 1
    tmp.replace(path)
    return path


# ---- the purchase label --------------------------------------------------------------------------------
def purchase_label() -> LabelSpec:
    """The purchase head's own label, as jobs.train computes it for that head."""
    from plugins.purchase import PurchaseHead
    from registry.features.training_set import LabelSpec

    return LabelSpec(PurchaseHead.label, PurchaseHead.compute_label)


def purchase_labels(events: pd.DataFrame, rows: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """`rows` (user_id, event_timestamp) with the purchase head's label column, label_purchase."""
    from registry.features.training_set import compute_labels

    return rows.assign(label_purchase=compute_labels(events, rows, horizon, purchase_label()).to_numpy())


# ---- the CDNOW protocol and peers ----------------------------------------------------------------------
DAY = pd.Timedelta(days=1)
MIN_HISTORY_DAYS = 28  # a training cutoff needs this much history after the data start
WINDOWS_DAYS = (30, 90, 180, 365)
CDNOW_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top10")


class ProtocolError(ValueError):
    """A cutoff or horizon the data cannot support."""


def training_cutoffs(
    first_day: pd.Timestamp, last_day: pd.Timestamp, cutoff: pd.Timestamp, horizon: int, every: int
) -> list[pd.Timestamp]:
    """Training cutoffs T - H, T - H - every, ... back to the data start + MIN_HISTORY_DAYS, oldest first.

    Raises ProtocolError, naming the fix, when the horizon is not positive, the test window runs past the
    data end or no training cutoff fits before T.
    """
    if horizon < 1 or every < 1:
        raise ProtocolError(f"--horizon ({horizon}) and --train-every ({every}) must be at least 1 day")
    if cutoff + horizon * DAY > last_day:
        raise ProtocolError(
            f"cutoff {cutoff.date()} + horizon {horizon}d = {(cutoff + horizon * DAY).date()} is past the data "
            f"end {last_day.date()}: labels would be missing. Choose a cutoff on or before "
            f"{(last_day - horizon * DAY).date()} or a shorter horizon"
        )
    earliest = first_day + MIN_HISTORY_DAYS * DAY
    latest = cutoff - horizon * DAY
    if latest < earliest:
        raise ProtocolError(
            f"cutoff {cutoff.date()} leaves no training cutoff: one needs {MIN_HISTORY_DAYS} days of history "
            f"after the data start {first_day.date()} and a label window ending by the cutoff. Choose a "
            f"cutoff on or after {(earliest + horizon * DAY).date()} or a shorter horizon"
        )
    count = (latest - earliest).days // every + 1
    return sorted(latest - i * every * DAY for i in range(count))


def read_raw(data: Path, customers: int | None) -> pd.DataFrame:
    """The raw CDNOW rows as text, optionally only the customers with id <= `customers` (quick runs)."""
    if not data.is_file():
        raise FileNotFoundError(f"CDNOW data {data} not found; pass --data PATH to CDNOW_master.txt")
    raw = pd.read_csv(data, sep=r"\s+", dtype=str)
    return raw if customers is None else raw[raw["customer_id"].astype("int64") <= customers]


def scored_rows(events: pd.DataFrame, cutoff: pd.Timestamp, horizon: int) -> pd.DataFrame:
    """Every customer with history before the cutoff, with the label (the rows every model is scored on)."""
    from registry.features.training_set import entity_rows

    rows = entity_rows(events, [cutoff])
    return purchase_labels(events, rows, horizon)[["user_id", "event_timestamp", "label_purchase"]]


def rfm_features(events: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Recency, frequency, age, monetary value and windowed counts/spend per (user_id, event_timestamp) row,
    from the purchases at or before the row's cutoff (the lifetime view's convention)."""
    buys = events.loc[events["event_type"] == "purchase", ["user_id", "event_time", "price", "quantity"]]
    buys = buys.assign(value=buys["price"].fillna(0.0) * buys["quantity"].fillna(1).astype("float64"))
    out = []
    for cutoff, group in rows.groupby("event_timestamp", sort=True):
        seen = buys[buys["event_time"] <= cutoff]
        days = (cutoff - seen["event_time"]) / DAY
        by_user = seen.assign(age=days, day=seen["event_time"].dt.floor("D")).groupby("user_id")
        f = pd.DataFrame(
            {
                "recency_days": by_user["age"].min(),
                "age_days": by_user["age"].max(),
                "frequency": by_user["day"].nunique() - 1,
                "purchases": by_user.size(),
                "spend": by_user["value"].sum(),
            }
        )
        f["monetary"] = f["spend"] / f["purchases"]
        for window in WINDOWS_DAYS:
            inside = seen[days < window].groupby("user_id")
            f[f"purchases_{window}d"] = inside.size()
            f[f"spend_{window}d"] = inside["value"].sum()
        f = f.reindex(group["user_id"].to_numpy())
        out.append(f.fillna({c: 0.0 for c in f.columns if c.startswith(("purchases", "spend"))}))
    frame = pd.concat(out, ignore_index=True)
    keys = rows.sort_values("event_timestamp", kind="stable")[["user_id", "event_timestamp"]]
    frame.index = pd.MultiIndex.from_frame(keys)
    return frame.loc[pd.MultiIndex.from_frame(rows[["user_id", "event_timestamp"]])].reset_index(drop=True)


def bgnbd(x: np.ndarray, t_x: np.ndarray, age: np.ndarray, horizon: int) -> dict[str, np.ndarray]:
    """BG/NBD fitted on these customers (x repeat purchases, the last at t_x, observed for `age` days):
    P(alive), E[purchases in the next `horizon` days] and P(at least one purchase in them)."""
    from lifetimes import BetaGeoFitter

    fitter = BetaGeoFitter(penalizer_coef=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifetimes' autograd and pandas deprecation chatter
        fitter.fit(x, t_x, age)
        alive = np.asarray(fitter.conditional_probability_alive(x, t_x, age), dtype="float64")
        expected = np.asarray(
            fitter.conditional_expected_number_of_purchases_up_to_time(horizon, x, t_x, age), dtype="float64"
        )
    # Alive, no purchase in H has probability ((alpha + age) / (alpha + age + H)) ** (r + x) (Fader et al.)
    r, alpha = fitter.params_["r"], fitter.params_["alpha"]
    quiet = ((alpha + age) / (alpha + age + horizon)) ** (r + x)
    return {"alive": alive, "expected": expected, "p_purchase": alive * (1.0 - quiet)}


def bootstrap(
    y: np.ndarray, scores: dict[str, np.ndarray], best: str, resamples: int, seed: int
) -> dict[str, dict[str, float | list[float]]]:
    """Point metrics and 95% percentile intervals over customers; the same resamples for every model, and
    paired intervals of `best` minus each other model on ROC-AUC and PR-AUC."""
    from registry.modeling.metrics import BINARY_METRICS, binary_metrics, bootstrap_samples

    samples = bootstrap_samples(
        y, scores, {m: BINARY_METRICS[m] for m in CDNOW_METRICS}, n_boot=resamples, seed=seed
    )
    points = {name: binary_metrics(y, p) for name, p in scores.items()}
    out: dict[str, dict[str, float | list[float]]] = {}
    for name, point in points.items():
        entry: dict[str, float | list[float]] = {"base_rate": point["base_rate"], "n": point["n"]}
        for m in CDNOW_METRICS:
            entry[m] = point[m]
            entry[f"{m}_ci"] = _interval(samples[name][m])
        if name != best:
            for m in ("roc_auc", "pr_auc"):
                entry[f"{m}_best_minus_this"] = points[best][m] - point[m]
                entry[f"{m}_best_minus_this_ci"] = _interval(np.subtract(samples[best][m], samples[name][m]))
        out[name] = entry
    return out


def _interval(values: Sequence[float]) -> list[float]:
    lo, hi = np.nanpercentile(np.asarray(values, dtype="float64"), [2.5, 97.5])
    return [float(lo), float(hi)]


# ---- the synthetic shop's variants ---------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    name: str
    order_effect: bool
    query_signal: bool
    encoders: tuple[str, ...]


VARIANTS = {
    v.name: v
    for v in (
        Variant("full", True, True, ("mlp", "mlp+sequence", "mlp+text")),
        Variant("no_order", False, True, ("mlp", "mlp+sequence")),
        Variant("no_query", True, False, ("mlp", "mlp+text")),
        Variant("neither", False, False, ("mlp", "mlp+sequence", "mlp+text")),
    )
}
# The sequence encoder's small config (bench.quality.synthetic's mlp+sequence; bench.experiments.
# sequence_probe trains it too): a few minutes per model on one CPU thread at 12,000 users (~37,000 rows).
SEQUENCE = {
    "max_len": 30,
    "d_model": 64,
    "n_heads": 4,
    "n_layers": 1,
    "dropout": 0.1,
    "category_buckets": 256,
}


def workspace_settings(home: Path) -> Settings:
    """The settings of a benchmark workspace: its own SQLite registry and artifacts, the CPU."""
    from registry.settings import Settings

    return Settings.from_env(home=home).with_(
        database_url=f"sqlite:///{home / 'registry.db'}",
        feast_profile="",
        artifacts_root=str(home / "artifacts"),
        device="cpu",
    )


def workspace(variant: Variant, args: argparse.Namespace, root: Path) -> Settings:
    """A fresh workspace for the variant's shop under `root`; each benchmark passes its own root, so two of
    them running at once never re-create each other's files."""
    from registry import flow as jobs
    from registry.model_registry.store import ModelRegistry

    home = root / variant.name
    shutil.rmtree(home, ignore_errors=True)  # every run starts from the seed, never from a previous run
    settings = workspace_settings(home)
    jobs.generate(
        settings,
        users=args.users,
        days=args.days,
        seed=args.seed,
        start="2024-01-01",
        order_effect=variant.order_effect,
        query_signal=variant.query_signal,
    )
    jobs.build_features(settings)
    jobs.apply_features(settings)
    ModelRegistry.open(settings=settings, upgrade=True).close()
    return settings


def segments(events: pd.DataFrame, rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """Which rows hold each planted signal in the 2 days before their cutoff: a search->cart of one category
    within 10 minutes in one session (`search_then_cart`), a 'buy ...' / '... price' query (`buying_query`)."""
    window = pd.Timedelta(days=2)
    carts = events.loc[events["event_type"] == "cart", ["user_id", "session_id", "category", "event_time"]]
    searches = events.loc[events["event_type"] == "search", ["session_id", "category", "event_time", "query"]]
    pairs = carts.merge(searches, on=["session_id", "category"], suffixes=("", "_search"))
    lag = pairs["event_time"] - pairs["event_time_search"]
    pattern = pairs.loc[
        (lag > pd.Timedelta(0)) & (lag <= pd.Timedelta(minutes=10)), ["user_id", "event_time"]
    ]
    query = searches["query"].fillna("")
    buying = events.loc[searches.index[query.str.startswith("buy ") | query.str.endswith(" price")]]

    def had(found: pd.DataFrame) -> np.ndarray:
        joined = (
            rows[["user_id", "cutoff"]].reset_index().merge(found[["user_id", "event_time"]], on="user_id")
        )
        recent = (joined["event_time"] <= joined["cutoff"]) & (
            joined["event_time"] > joined["cutoff"] - window
        )
        return rows.index.isin(joined.loc[recent, "index"])

    return {"search_then_cart": had(pattern), "buying_query": had(buying)}


def interval(samples: np.ndarray) -> list[float]:
    """The 95% percentile interval of bootstrap samples, rounded to 4 digits."""
    low, high = np.nanpercentile(samples, [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def add_shop_arguments(parser: argparse.ArgumentParser) -> None:
    """The shop and training options of bench.quality.synthetic; bench.experiments.sequence_probe takes the
    same ones, so it probes that benchmark's shop."""
    parser.add_argument("--users", type=int, default=12_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--horizon", type=int, default=7, help="label: purchase within this many days")
    parser.add_argument("--epochs", type=int, default=12, help="at most; early stopping on validation loss")
    parser.add_argument("--patience", type=int, default=4, help="epochs without a better validation loss")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate, every model")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
