"""Each arrow of the data flow as a function a user can call alone; the CLI and the demo call these.

events -> features -> Feast apply + materialize -> training set -> train -> register -> promote.
"""

from __future__ import annotations

import dataclasses
import getpass
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from registry import progress
from registry.errors import UserError
from registry.events.generate import generate_events
from registry.events.schema import read_events, write_events
from registry.features import feast_store
from registry.features.build import build_all
from registry.features.contract import ACTIVITY_VIEW, FILES, TIMESTAMP_FIELD
from registry.features.training_set import LabelSpec, build_training_set, fingerprint
from registry.model_registry.engine import database_exists
from registry.model_registry.store import ModelRegistry, ModelVersion
from registry.modeling.parts import Head, config_from_dict, config_to_dict
from registry.modeling.shop_model import ShopModel, blame
from registry.modeling.tasks import LabelWindow
from registry.modeling.training import (
    EVALUATION_FILE,
    Splits,
    TrainConfig,
    evaluation_outputs,
    fit,
    outputs_metrics,
)
from registry.modeling.training_plan import plan_training
from registry.plugin_host import Registered, default_host
from registry.settings import Settings, workspace_database_url

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
    return build_all(events, settings.features_dir, grain=grain)[ACTIVITY_VIEW]


def apply_features(settings: Settings) -> list[str]:
    declarations = feast_store.apply(settings)
    return sorted(getattr(o, "name", "?") for o in declarations.objects)


def materialize_features(settings: Settings, *, start: datetime | None = None) -> list[str]:
    """Load the online store: views whose snapshots were rebuilt are reloaded from `start` (default: the
    oldest snapshot), the others continue incrementally (features.feast_store.materialize). An explicit `start`
    reloads every view from then on. Returns the views reloaded."""
    with (
        progress.stage("materialize the newest feature values into the online store"),
        progress.quiet_unless_terminal(),
    ):
        if start is not None:
            return feast_store.materialize(settings, start=start, backfill=True)
        return feast_store.materialize(settings, start=_oldest_snapshot(settings))


def _oldest_snapshot(settings: Settings) -> datetime:
    stamps = [
        pd.read_parquet(settings.features_dir / name, columns=[TIMESTAMP_FIELD])[TIMESTAMP_FIELD].min()
        for name in FILES
        if (settings.features_dir / name).is_file()
    ]
    if not stamps:
        raise FileNotFoundError(
            f"no feature files in {settings.features_dir}; run `shopscore features build` first"
        )
    return min(stamps).to_pydatetime()


@dataclass
class TrainSpec:
    """What to train. `encoder` may name several encoders: they are combined by the `concat` encoder.
    Fields left as None (feature service, horizon, splits) are derived from the events at training time.

    Each encoder reads the fields of `feature_service` it can (`Encoder.select_features`). `encoder_config`
    holds config overrides: for one encoder, that encoder's options (`{"hidden": [32]}`); for several,
    options per encoder name (`{"sequence": {"d_model": 32}, "mlp": {"hidden": [32]}}`)."""

    model_name: str = "purchase"
    encoder: str | Sequence[str] = "mlp"
    head: str = "purchase"
    # None: derived from the events (registry.modeling.training_plan), as are the splits.
    feature_service: str | None = None
    horizon_days: int | None = None
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
            # The keyed form ({"gru": {...}}) is accepted for one encoder too, as for several.
            keyed = set(overrides) == {names[0]} and isinstance(overrides[names[0]], dict)
            per_part = [overrides[names[0]] if keyed else overrides]
        else:
            unknown = sorted(set(overrides) - set(names))
            if unknown or not all(isinstance(v, dict) for v in overrides.values()):
                raise ValueError(
                    f"with several encoders {names}, encoder_config must map encoder names to their options, "
                    f'e.g. {{"{names[0]}": {{...}}}}; got keys {sorted(overrides)}'
                )
            per_part = [overrides.get(name, {}) for name in names]
        configs = []
        for name, options in zip(names, per_part, strict=True):
            registered = host.encoder(name)
            with blame(registered, "encoder", "select_features"):
                configs.append({"features": registered.cls.select_features(fields), **options})
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
    """Build point-in-time training sets from Feast, train, evaluate on held-out users, register.

    What the spec leaves as None (feature service, horizon, splits) is derived from the events
    (registry.modeling.training_plan); each choice is logged."""
    head = default_host().head(spec.head)
    head_overrides = dict(spec.head_config or {})
    events = read_events(settings.events_dir)
    plan = plan_training(
        events,
        feature_service=spec.feature_service,
        horizon_days=resolve_horizon(spec.horizon_days, head_overrides, spec.splits),
        splits=spec.splits,
    )
    _check_registry(settings)
    for line in plan.notes:
        progress.note(line)
    splits, horizon_days = plan.splits, plan.splits.horizon_days
    store = feast_store.open_store(settings)
    service = feast_store.feature_service(store, plan.feature_service)
    fields = {f.name: f.dtype for p in service.feature_view_projections for f in p.features}
    feature_refs = [f"{p.name}:{f.name}" for p in service.feature_view_projections for f in p.features]
    encoder_name, encoder_config = spec.encoder_plan(fields)  # before the (slow) training sets: fail fast
    # The horizon is one number: the labels' window, and the head config's `horizon_days` when it has one.
    if any(f.name == "horizon_days" for f in dataclasses.fields(head.cls.config_class)):
        head_overrides["horizon_days"] = horizon_days
    try:
        head_config = config_from_dict(head.cls.config_class, head_overrides)  # unknown options fail now
    except (TypeError, ValueError) as exc:
        raise UserError(
            f"head {spec.head!r}: {exc}; fix --head-config (`shopscore plugins` lists options)"
        ) from None
    label = LabelSpec(head.cls.label, _label_function(head), head_config)

    valid_cutoffs = [] if splits.valid_cutoff is None else [splits.valid_cutoff]
    with progress.stage(f"point-in-time training set from Feast ({plan.feature_service})"):
        rows = build_training_set(
            store,
            events,
            service_name=plan.feature_service,
            cutoffs=[*splits.train_cutoffs, *valid_cutoffs, splits.test_cutoff],
            horizon_days=horizon_days,
            label=label,
            memory_budget_bytes=_memory_budget(settings),
        )
        train_rows, valid_rows, test_rows = splits.split(rows)
        progress.note(f"{len(train_rows):,} train, {len(valid_rows):,} valid, {len(test_rows):,} test rows")

    config = spec.train or TrainConfig(device=settings.device)
    # Some heads size themselves from the training labels (a class vocabulary), so ask before building.
    with blame(head, "head", "config_from_data"):
        head_config_dict = head.cls.config_from_data(head_overrides, train_rows)
    model = ShopModel.build(
        encoder_name,
        encoder_config,
        spec.head,
        head_config_dict,
        feature_service=plan.feature_service,
        seed=config.seed,
    )
    with progress.stage(f"train {encoder_name} encoder + {spec.head} head (up to {config.epochs} epochs)"):
        result = fit(model, train_rows, valid_rows, config)
    with progress.stage("evaluate on validation and held-out test users"):
        valid_outputs = evaluation_outputs(result.model, valid_rows, "valid")
        test_outputs = evaluation_outputs(result.model, test_rows, "test")
        metrics = {
            **outputs_metrics(result.model, valid_outputs, "valid"),
            **outputs_metrics(result.model, test_outputs, "test"),
            "best_epoch": float(result.best_epoch),
        }
    lineage = {
        "feast_project": store.project,
        "feature_service": plan.feature_service,
        "feature_refs": feature_refs,
        **splits.to_lineage(),
        "data_fingerprint": fingerprint(pd.concat([train_rows, valid_rows, test_rows], ignore_index=True)),
        "rows": {"train": len(train_rows), "valid": len(valid_rows), "test": len(test_rows)},
        "encoder": encoder_name,
        "head": spec.head,
        "task": task_lineage(model.head),
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
    with (
        progress.stage(f"register a new version of {spec.model_name!r}"),
        ModelRegistry.open(settings=settings) as registry,
        tempfile.TemporaryDirectory(prefix="shopscore-model-") as tmp,
    ):
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


def task_lineage(head: Head) -> dict[str, Any]:
    """What a version records of its head's task: the report, the console and promotion read it."""
    evaluation = head.evaluation
    return {
        "label": head.label,
        "answer": head.answer.name,
        "answer_type": head.answer.type.name,
        "evaluation": evaluation.name,
        "headline": list(evaluation.headline),
        "promotion_metric": f"test_{evaluation.promotion_metric}",
        "greater_is_better": evaluation.greater_is_better,
    }


def resolve_horizon(
    horizon_days: int | None, head_config: dict[str, Any], splits: Splits | None
) -> int | None:
    """The horizon asked for, by --horizon-days, the head config's `horizon_days` or the splits; they must
    agree. None: derive it from the events."""
    asked = {
        source: int(value)
        for source, value in (
            ("--horizon-days", horizon_days),
            ("the head config's horizon_days", head_config.get("horizon_days")),
            ("the splits", None if splits is None else splits.horizon_days),
        )
        if value is not None
    }
    if len(set(asked.values())) > 1:
        given = ", ".join(f"{source} = {days}" for source, days in asked.items())
        raise UserError(f"the label horizon is given twice with different values ({given}); give it once")
    return next(iter(asked.values()), None)


def _label_function(head: Registered[Head]) -> Callable[[LabelWindow], list[Any]]:
    """The head's compute_label, checked (one label per user) and blamed on its plugin when it fails."""

    def compute(window: LabelWindow) -> list[Any]:
        with blame(head, "head", "compute_label"):
            values = list(head.cls.compute_label(window))
            if len(values) != len(window.users):
                raise ValueError(
                    f"returned {len(values)} labels for {len(window.users)} users; return one per user"
                )
            return values

    return compute


def _check_registry(settings: Settings) -> None:
    """Open the registry before training, so an unreachable database or an old schema fails now, not after.
    The workspace's own SQLite registry is created on first use; any other database must exist already."""
    create = settings.database_url == workspace_database_url(settings.home) and not database_exists(
        settings.database_url
    )
    ModelRegistry.open(settings=settings, upgrade=create).close()
    if create:
        progress.note(f"created the model registry {settings.database_url}")


def _memory_budget(settings: Settings) -> float:
    """Bytes a training set may take: SHOPSCORE_TRAIN_MEMORY_GB, else 80% of the memory available now."""
    if settings.train_memory_gb is not None:
        return settings.train_memory_gb * 2**30
    return 0.8 * psutil.virtual_memory().available
