"""Where do the sequence and text encoders beat the MLP on the synthetic shop, by how much, and why?

    .venv/bin/python -m bench.quality.synthetic --json           # docs/results/encoders_synthetic.md's table (20 min on 2 cores, one torch thread)
    .venv/bin/python -m bench.quality.synthetic --users 3000 --epochs 4 --variants full   # quick look

The generator (registry/events/generate.py) plants two signals the MLP's windowed counts cannot see: the
order of a search and a cart (search->cart triggers a purchase a few days later) and the wording of
search queries (model names and "buy ..." come from users whose episode will convert). Each variant
generates a shop with one signal switched off or none (`generate_events(order_effect=..., query_signal=...)`),
then runs the real pipeline in its own workspace under bench/.work/quality_synthetic/: features -> Feast ->
point-in-time training sets -> `jobs.train` -> registered versions. The models share the purchase head,
horizon, cutoffs, users and training settings:
- mlp on `purchase_v1` (the windowed aggregates),
- mlp+sequence: the mlp concatenated with a small Transformer over the last 30 events (with each event's
  age at the snapshot time), on `purchase_seq_v1`,
- mlp+text: the mlp concatenated with a tiny BERT over the last 10 events rendered as text and the last
  queries, on `purchase_seq_v1`.
What the sequence and text encoders add to the mlp is the question, so that is what is measured. Variants:
`full` (both signals), `no_order` (order effect off: the sequence's gain should go), `no_query` (query
signal off: the text's gain should go), and `neither` (both off; not in the default run, for time).

Scores are read back from each version's stored evaluation outputs (evaluation.parquet: the held-out test
users at the test cutoff, the rows its registered metrics were computed from). ROC-AUC and PR-AUC come with
95% bootstrap intervals over those users, and the gain over the MLP with a paired interval (the same
resampled users for both models).

bench.experiments.sequence_probe asks, on the same `full` shop, whether the sequence encoder can see the order
at all (the planted pattern as its label); bench.experiments.sequence_gain_sources, what it gains on the
`no_order` shop, where the order predicts nothing. The shops, variants and workspaces they share are in
bench.common.

Prints a markdown table, then (with --json) one JSON line last. Seeded and deterministic on the CPU (torch
uses one thread unless --threads says otherwise); the runtime and load average are printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from bench.common import (
    SEQUENCE,
    VARIANTS,
    WORK_ROOT,
    Variant,
    add_shop_arguments,
    interval,
    segments,
    workspace,
)
from registry import flow as jobs
from registry.events.schema import read_events
from registry.model_registry.store import ModelRegistry
from registry.modeling.metrics import RANKING_METRICS, bootstrap_samples
from registry.modeling.training import EVALUATION_FILE, TrainConfig
from registry.settings import Settings

WORK = WORK_ROOT / "quality_synthetic"


# name -> (encoders, feature service, options per encoder). The sequence and text encoders read only the
# last events (and queries), not the 30-day aggregates, so each is measured as what it adds to the mlp:
# concatenated with it, on the service that serves both (the mlp takes the scalar fields).
# The small configs (SEQUENCE in bench.common) train in a few minutes per model on one CPU thread (12,000
# users: ~37,000 rows).
TEXT = {"max_events": 10, "max_tokens": 64, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 64, "dropout": 0.1}  # fmt: skip
ENCODERS = {
    "mlp": (["mlp"], "purchase_v1", {}),
    "mlp+sequence": (["mlp", "sequence"], "purchase_seq_v1", {"sequence": SEQUENCE}),
    "mlp+text": (["mlp", "text"], "purchase_seq_v1", {"text": TEXT}),
}
METRICS = RANKING_METRICS


def stored_outputs(settings: Settings, encoder: str, args: argparse.Namespace) -> tuple[pd.DataFrame, float]:
    """Train one model through jobs.train; its valid and test rows (split, user_id, cutoff, label, score)
    from the registered artifact's evaluation outputs, and the training seconds."""
    parts, service, config = ENCODERS[encoder]
    model_name = encoder.replace("+", "_")
    spec = jobs.TrainSpec(
        model_name=model_name,
        encoder=parts[0] if len(parts) == 1 else parts,
        feature_service=service,
        horizon_days=args.horizon,
        encoder_config=config,
        train=TrainConfig(
            epochs=args.epochs,
            lr=args.lr,
            patience=args.patience,
            seed=args.seed,
            device="cpu",
            progress=False,
        ),
    )
    started = time.perf_counter()
    version = jobs.train(settings, spec)
    seconds = time.perf_counter() - started
    with ModelRegistry.open(settings=settings) as registry:
        _, directory = registry.fetch(model_name, version.version)
    outputs = pd.read_parquet(directory / EVALUATION_FILE).sort_values(
        ["split", "user_id"], ignore_index=True
    )
    test = outputs[outputs["split"] == "test"]
    # The stored rows are the ones the registered metric came from: check, so the table can be trusted.
    assert abs(roc_auc_score(test["label"], test["score"]) - version.metrics["test_roc_auc"]) < 1e-9
    return outputs, seconds


def run_variant(variant: Variant, args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    settings = workspace(variant, args, root=WORK)
    outputs, train_seconds = {}, {}
    chosen = {"mlp", *args.encoders.split(",")}  # the mlp is every gain's reference
    for encoder in (e for e in variant.encoders if e in chosen):
        outputs[encoder], train_seconds[encoder] = stored_outputs(settings, encoder, args)
    reference = outputs["mlp"]
    keys = ["split", "user_id", "cutoff", "label"]
    for encoder, rows in outputs.items():
        if not rows[keys].equals(reference[keys]):
            raise RuntimeError(
                f"{encoder} was evaluated on other rows than mlp; the comparison would be unpaired"
            )
    test = (reference["split"] == "test").to_numpy()
    y = reference.loc[test, "label"].to_numpy()
    by_model = {e: rows.loc[test, "score"].to_numpy() for e, rows in outputs.items()}
    result: dict = {"users": len(y), "base_rate": round(float(y.mean()), 4), "models": {}}
    samples = bootstrap_samples(y, by_model, METRICS, n_boot=args.boot, seed=args.seed)
    for metric, fn in METRICS.items():
        for encoder, by_metric in samples.items():
            row = result["models"].setdefault(encoder, {"train_s": round(train_seconds[encoder], 1)})
            row[metric] = round(float(fn(y, by_model[encoder])), 4)
            row[f"{metric}_ci"] = interval(by_metric[metric])
            if encoder != "mlp":
                row[f"{metric}_gain"] = round(row[metric] - result["models"]["mlp"][metric], 4)
                row[f"{metric}_gain_ci"] = interval(by_metric[metric] - samples["mlp"][metric])
    # Where the gain comes from: rows (validation and test pooled, for numbers) holding a planted signal.
    events = read_events(settings.events_dir)
    result["segments"] = {}
    for segment, mask in segments(events, reference).items():
        result["segments"][segment] = {
            "rows": int(mask.sum()),
            "buy_rate": round(float(reference.loc[mask, "label"].mean()), 3) if mask.any() else None,
            "mean_score": {e: round(float(r.loc[mask, "score"].mean()), 3) if mask.any() else None
                           for e, r in outputs.items()},
        }  # fmt: skip
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def table(results: dict[str, dict]) -> str:
    lines = [
        "| shop | order effect | query signal | encoder | ROC-AUC [95% CI] | gain vs mlp [95% CI] "
        "| PR-AUC [95% CI] | gain vs mlp [95% CI] | base rate | test users | train s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | ---: | ---: | ---: |",
    ]

    def ci(row: dict, key: str) -> str:
        low, high = row[f"{key}_ci"]
        return (
            f"{row[key]:+.3f} [{low:+.3f}, {high:+.3f}]"
            if "gain" in key
            else f"{row[key]:.3f} [{low:.3f}, {high:.3f}]"
        )

    for name, result in results.items():
        variant = VARIANTS[name]
        for encoder, row in result["models"].items():
            gains = ["-", "-"] if encoder == "mlp" else [ci(row, "roc_auc_gain"), ci(row, "pr_auc_gain")]
            lines.append(
                f"| {name} | {'on' if variant.order_effect else 'off'} | {'on' if variant.query_signal else 'off'} "
                f"| {encoder} | {ci(row, 'roc_auc')} | {gains[0]} | {ci(row, 'pr_auc')} | {gains[1]} "
                f"| {result['base_rate']:.3f} | {result['users']:,} | {row['train_s']:.0f} |"
            )
    return "\n".join(lines)


def segment_table(results: dict[str, dict]) -> str:
    models = list(ENCODERS)
    lines = [
        "| shop | rows with, in the 2 days before the cutoff | rows | bought | "
        + " | ".join(f"mean score {m}" for m in models)
        + " |",
        "| --- | --- | ---: | ---: | " + " | ".join("---:" for _ in models) + " |",
    ]
    for name, result in results.items():
        for segment, row in result["segments"].items():
            scores = [row["mean_score"].get(m) for m in models]
            cells = " | ".join("-" if v is None else f"{v:.3f}" for v in scores)
            bought = "-" if row["buy_rate"] is None else f"{row['buy_rate']:.3f}"
            lines.append(f"| {name} | {segment.replace('_', ' ')} | {row['rows']:,} | {bought} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_shop_arguments(parser)
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument(
        "--variants", default="full,no_order,no_query", help=f"comma-separated, of {list(VARIANTS)}"
    )
    parser.add_argument(
        "--encoders",
        default=",".join(ENCODERS),
        help=f"comma-separated, of {list(ENCODERS)}: each variant trains those of its own (mlp always)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line last")
    args = parser.parse_args()
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    unknown = [e for e in args.encoders.split(",") if e not in ENCODERS]
    if unknown:
        parser.error(f"unknown encoder(s) {unknown}; choose from {list(ENCODERS)}")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    results = {name: run_variant(VARIANTS[name], args) for name in args.variants.split(",")}
    seconds = time.perf_counter() - started
    load = os.getloadavg()
    print(table(results))
    print()
    print(segment_table(results))
    print(
        f"\n{args.users:,} users x {args.days} days, seed {args.seed}, horizon {args.horizon}d, "
        f"<= {args.epochs} epochs, {args.boot} bootstrap resamples; {seconds:.0f} s in all on "
        f"{torch.get_num_threads()} torch thread(s), load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    if args.json:
        config = {k: v for k, v in vars(args).items() if k != "json"}
        print(json.dumps({"config": config, "seconds": round(seconds, 1), "variants": results}))


if __name__ == "__main__":
    main()
