"""Each arrow of the data flow as a function a user can call alone; the CLI and the demo call these.

events -> features -> Feast apply + materialize -> training set -> train -> register -> promote.
"""

from __future__ import annotations

import getpass
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from registry.components import config_to_dict
from registry.db.store import ModelRegistry, ModelVersion
from registry.events.generate import generate_events
from registry.events.schema import read_events, write_events
from registry.features import pipeline
from registry.features import store as feast_store
from registry.features.lifetime import LAGS_FILE, LIFETIME_FILE
from registry.features.training_set import build_training_set, fingerprint
from registry.modeling import ShopModel
from registry.plugin_host import default_host
from registry.settings import Settings
from registry.training import (
    EVALUATION_FILE,
    Splits,
    TrainConfig,
    evaluation_outputs,
    fit,
    outputs_metrics,
)

# Name of the built-in encoder that combines several (plugins/concat.py), used when a spec names several.
CONCAT = "concat"


def generate(
    settings: Settings,
    *,
    users: int,
    days: int,
    seed: int,
    start: str | None = None,
    order_effect: bool = True,
    query_signal: bool = True,
) -> pd.DataFrame:
    """Write seeded synthetic events to the workspace (replacing earlier synthetic events).

    `start` defaults to `days` before today (UTC), so the demo shop's features are fresh when served.
    `order_effect` / `query_signal` switch planted signals off (registry.events.generate, "Ablations").
    """
    if start is None:
        start = (pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=days)).strftime("%Y-%m-%d")
    events = generate_events(
        users=users, days=days, seed=seed, start=start, order_effect=order_effect, query_signal=query_signal
    )
    for old in settings.events_dir.glob("date=*/synthetic.parquet"):
        old.unlink()
    write_events(events, settings.events_dir, part_name="synthetic")
    return events


def build_features(settings: Settings, *, grain: str = "1d") -> Path:
    """Build every batch source (aggregates, sequences, real-time history); returns the aggregates' path."""
    events = read_events(settings.events_dir)
    return pipeline.build_all(events, settings.features_dir, grain=grain)["user_activity"]


def apply_features(settings: Settings) -> list[str]:
    declarations = feast_store.apply(settings)
    return sorted(getattr(o, "name", "?") for o in declarations.objects)


def materialize_features(settings: Settings, *, start: datetime | None = None) -> None:
    """Incremental materialization; the first run starts at the oldest row. An explicit `start` backfills
    every view from then on."""
    if start is not None:
        feast_store.materialize(settings, start=start, backfill=True)
        return
    files = [
        pipeline.FEATURES_FILE,
        pipeline.SEQUENCES_FILE,
        pipeline.REALTIME_FILE,
        LIFETIME_FILE,
        LAGS_FILE,
    ]
    stamps = [
        pd.read_parquet(settings.features_dir / name, columns=["event_timestamp"])["event_timestamp"].min()
        for name in files
        if (settings.features_dir / name).is_file()
    ]
    if not stamps:
        raise FileNotFoundError(
            f"no feature files in {settings.features_dir}; run `shopscore features build` first"
        )
    feast_store.materialize(settings, start=min(stamps).to_pydatetime())


@dataclass
class TrainSpec:
    """What to train. `encoder` may name several encoders: they are combined by the `concat` encoder.

    Each encoder reads the fields of `feature_service` it can (`Encoder.select_features`). `encoder_config`
    holds config overrides: for one encoder, that encoder's options (`{"hidden": [32]}`); for several,
    options per encoder name (`{"sequence": {"d_model": 32}, "mlp": {"hidden": [32]}}`)."""

    model_name: str = "purchase"
    encoder: str | Sequence[str] = "mlp"
    head: str = "purchase"
    feature_service: str = "purchase_v1"
    horizon_days: int = 7
    encoder_config: dict[str, Any] | None = None
    head_config: dict[str, Any] | None = None
    splits: Splits | None = None
    train: TrainConfig | None = None

    def encoder_plan(self, fields: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The encoder name and config dict to build from the service's fields (name -> Feast dtype): one
        encoder, or a `concat` of several."""
        names = [self.encoder] if isinstance(self.encoder, str) else list(self.encoder)
        if not names:
            raise ValueError("TrainSpec.encoder is empty; name at least one encoder (e.g. 'mlp')")
        host = default_host()
        overrides = self.encoder_config or {}
        if len(names) == 1:
            per_part = [overrides]
        else:
            unknown = sorted(set(overrides) - set(names))
            if unknown or not all(isinstance(v, dict) for v in overrides.values()):
                raise ValueError(
                    f"with several encoders {names}, encoder_config must map encoder names to their options, "
                    f'e.g. {{"{names[0]}": {{...}}}}; got keys {sorted(overrides)}'
                )
            per_part = [overrides.get(name, {}) for name in names]
        configs = [
            {"features": host.encoder(name).cls.select_features(fields), **options}
            for name, options in zip(names, per_part, strict=True)
        ]
        if len(names) == 1:
            return names[0], configs[0]
        return CONCAT, {"parts": [{"name": n, "config": c} for n, c in zip(names, configs, strict=True)]}


def _code_version() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def train(settings: Settings, spec: TrainSpec) -> ModelVersion:
    """Build point-in-time training sets from Feast, train, evaluate on held-out users, register."""
    events = read_events(settings.events_dir)
    splits = spec.splits or Splits.default_for(
        events["event_time"].min(), events["event_time"].max(), spec.horizon_days
    )
    if splits.horizon_days != spec.horizon_days:
        raise ValueError(f"splits use horizon {splits.horizon_days}d but the spec says {spec.horizon_days}d")
    store = feast_store.open_store(settings)
    service = store.get_feature_service(spec.feature_service)
    fields = {f.name: f.dtype for p in service.feature_view_projections for f in p.features}
    feature_refs = [f"{p.name}:{f.name}" for p in service.feature_view_projections for f in p.features]
    encoder_name, encoder_config = spec.encoder_plan(fields)  # before the (slow) training sets: fail fast

    # One retrieval for every cutoff: Feast's file offline store reads (and dask tokenizes) the whole
    # feature source on each call, whatever the number of entity rows, so three calls cost three times one.
    valid_cutoffs = [] if splits.valid_cutoff is None else [splits.valid_cutoff]
    rows = build_training_set(
        store,
        events,
        service_name=spec.feature_service,
        cutoffs=[*splits.train_cutoffs, *valid_cutoffs, splits.test_cutoff],
        horizon_days=spec.horizon_days,
    )
    train_rows, valid_rows, test_rows = splits.split(rows)

    config = spec.train or TrainConfig(device=settings.device)
    # Some heads size themselves from the training labels (a class vocabulary), so ask before building.
    head_cls = default_host().head(spec.head).cls
    head_config = {"horizon_days": spec.horizon_days, **(spec.head_config or {})}
    head_config = head_cls.config_from_data(head_config, train_rows)
    model = ShopModel.build(
        encoder_name,
        encoder_config,
        spec.head,
        head_config,
        feature_service=spec.feature_service,
        seed=config.seed,
    )
    result = fit(model, train_rows, valid_rows, config)
    valid_outputs = evaluation_outputs(result.model, valid_rows, "valid")
    test_outputs = evaluation_outputs(result.model, test_rows, "test")
    metrics = {
        **outputs_metrics(result.model, valid_outputs, "valid"),
        **outputs_metrics(result.model, test_outputs, "test"),
        "best_epoch": float(result.best_epoch),
    }
    lineage = {
        "feast_project": store.project,
        "feature_service": spec.feature_service,
        "feature_refs": feature_refs,
        **splits.to_lineage(),
        "data_fingerprint": fingerprint(pd.concat([train_rows, valid_rows, test_rows], ignore_index=True)),
        "rows": {"train": len(train_rows), "valid": len(valid_rows), "test": len(test_rows)},
        "encoder": encoder_name,
        "head": spec.head,
        "plugins": {part: info for part, info in model.plugins.items()},
        "device": result.device,
        "code_version": _code_version(),
        "history": result.history,
    }
    params = {
        "encoder_config": model.encoder.params(),
        "head_config": config_to_dict(model.head.config),
        "train": config.__dict__,
    }
    registry = ModelRegistry.open(settings=settings)
    with tempfile.TemporaryDirectory(prefix="shopscore-model-") as tmp:
        result.model.save_pretrained(tmp)
        # Stored with the weights, so they are hashed and published with the version (`shopscore report`).
        outputs = pd.concat([valid_outputs, test_outputs], ignore_index=True)
        outputs.to_parquet(Path(tmp) / EVALUATION_FILE, index=False)
        return registry.register_version(
            spec.model_name,
            Path(tmp),
            lineage=lineage,
            metrics=metrics,
            params=params,
            created_by=getpass.getuser(),
        )
