"""`shopscore train`: build a training set, fit a model and register it as a new version."""

from __future__ import annotations

import json
from typing import Any

import click

from registry.cli.common import (
    echo_json,
    load_settings,
)


class JsonObject(click.ParamType):
    """A JSON object given on the command line, e.g. '{"hidden": [32]}'."""

    name = "JSON"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dict:
        if isinstance(value, dict):
            return value
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            self.fail(f"{value!r} is not valid JSON ({exc.msg}); quote it, e.g. '{{\"hidden\": [32]}}'")
        if not isinstance(parsed, dict):
            self.fail(f"{value!r} must be a JSON object ({{...}}), not {type(parsed).__name__}")
        return parsed


@click.command("train")
@click.option("--model", "model_name", default="purchase", show_default=True, help="Registered model name.")
@click.option(
    "--encoder",
    "encoders",
    multiple=True,
    default=("mlp",),
    show_default=True,
    help="Encoder plugin name; repeat it (--encoder mlp --encoder other) to concatenate several.",
)
@click.option(
    "--encoder-config",
    type=JsonObject(),
    default=None,
    help="Encoder options as JSON, e.g. '{\"hidden\": [32]}'; with several encoders, keyed by encoder "
    'name: \'{"sequence": {"d_model": 32}}\'.',
)
@click.option(
    "--head",
    default="purchase",
    show_default=True,
    help="Head plugin name (purchase, spend, next_category, or a plugin's).",
)
@click.option("--head-config", type=JsonObject(), default=None, help="Head options as JSON.")
@click.option(
    "--feature-service",
    default=None,
    help="Feast FeatureService the model reads [default: purchase_v1, or purchase_lifetime_v1 when the "
    "events are all purchases].",
)
@click.option(
    "--horizon-days",
    type=click.IntRange(min=1),
    default=None,
    help="The label looks this many days ahead [default: the shortest of 7/14/30/60/90 in which at least "
    "10% of users buy].",
)
@click.option(
    "--train-cutoffs",
    default=None,
    help="Comma-separated dates [default: up to 12, spread over the events' span].",
)
@click.option("--valid-cutoff", default=None, help="Date [default: one horizon before the test cutoff].")
@click.option("--test-cutoff", default=None, help="Date [default: one horizon before the last event].")
@click.option("--epochs", default=40, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Learning rate [default: 3e-3]."
)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Rows per step [default: 256].")
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many epochs without a better validation loss [default: 5].",
)
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the new version as one JSON object.")
def train(
    model_name: str,
    encoders: tuple[str, ...],
    encoder_config: dict | None,
    head: str,
    head_config: dict | None,
    feature_service: str | None,
    horizon_days: int | None,
    train_cutoffs: str | None,
    valid_cutoff: str | None,
    test_cutoff: str | None,
    epochs: int,
    lr: float | None,
    batch_size: int | None,
    patience: int | None,
    seed: int,
    as_json: bool,
) -> None:
    """Train on a point-in-time training set, evaluate on held-out users, register a new version.

    With no options, the feature service, horizon and cutoffs are chosen from the events (printed)."""
    from registry import flow as jobs
    from registry.modeling.training import Splits, TrainConfig

    settings = load_settings()
    options: dict[str, Any] = {"lr": lr, "batch_size": batch_size, "patience": patience}
    splits = None
    if train_cutoffs or test_cutoff or valid_cutoff:
        if not (train_cutoffs and test_cutoff):
            raise click.UsageError("--train-cutoffs and --test-cutoff go together (--valid-cutoff optional)")
        splits = Splits.of(
            [c.strip() for c in train_cutoffs.split(",")], valid_cutoff, test_cutoff, horizon_days or 7
        )
    spec = jobs.TrainSpec(
        model_name=model_name,
        encoder=encoders[0] if len(encoders) == 1 else list(encoders),
        encoder_config=encoder_config,
        head=head,
        head_config=head_config,
        feature_service=feature_service,
        horizon_days=horizon_days,
        splits=splits,
        train=TrainConfig(
            epochs=epochs,
            seed=seed,
            device=settings.device,
            **{k: v for k, v in options.items() if v is not None},
        ),
    )
    version = jobs.train(settings, spec)
    if as_json:
        echo_json(
            {
                "model": version.model,
                "version": version.version,
                "feature_service": version.feature_service,
                "horizon_days": version.horizon_days,
                "task": version.lineage.get("task"),
                "metrics": version.metrics,
                "artifact_uri": version.artifact_uri,
            }
        )
        return
    task = version.lineage.get("task") or {}
    click.echo(f"registered {version.model} v{version.version}: {_headline(version.metrics, task)}")
    click.echo(
        f"  answers {task.get('answer')} ({task.get('answer_type')}), reads {version.feature_service}, "
        f"predicts {version.horizon_days} days ahead"
    )
    click.echo(f"  artifact {version.artifact_uri}")
    click.echo(
        f"  next: shopscore models promote {version.model} {version.version} --alias production "
        f'--reason "..." --token $SHOPSCORE_PROMOTER_TOKEN'
    )


def _headline(metrics: dict[str, float | None], task: dict[str, Any]) -> str:
    """The test metrics a user reads first: the head's headline metrics, and the base rate of a binary one."""
    shown = [*task.get("headline", []), "base_rate"]
    values = [f"{k} {metrics[f'test_{k}']:.3f}" for k in shown if f"test_{k}" in metrics]
    return "test " + ", ".join(values) + " on held-out users" if values else "no test metrics"
