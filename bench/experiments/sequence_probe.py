"""Can the sequence encoder see the planted search->cart order? Yes: docs/results/encoders_synthetic.md.

Can the sequence encoder see the planted search->cart pattern at all? A probe beside bench.quality.synthetic.
It can (with its pair bias), but trained on purchases it hardly uses it at 12,000 users (the page's "Why the
sequence gain stays small at 12,000 users").

    .venv/bin/python -m bench.experiments.sequence_probe     # 12,000 users, the quality shop (15 min)
    .venv/bin/python -m bench.experiments.sequence_probe --users 3000 --epochs 4   # quick look

bench.quality.synthetic finds that the sequence encoder adds little to the mlp on purchases, with the order
effect on or off. This probe asks why, on the same shop (the `full` variant: same users, seed, cutoffs and
encoder settings; generated in its own workspace, bench/.work/sequence_probe/, so both benchmarks can run at
once), by changing the label: each training row's target becomes "the user made a search->cart (a cart of
the searched category within 10 minutes, one session) in the 2 days before the cutoff", the flag
bench.common's `segments` computes from the events. The purchase head serves as a plain binary head
on that target. If the encoder reads event order, it should detect its own input's pattern nearly
perfectly; the mlp (the 1/7/30-day counts) is the reference that cannot see order, and `sequence_gru` (the
same inputs read by a GRU, defined here) a reader built for order. The same encoders are also trained on
purchases, and every model's mean score on the pattern rows tells how much of the
pattern it uses.

Rows come from Feast (`purchase_seq_v1`) at the cutoffs `jobs.train` uses, split as it splits them (weekly
training cutoffs, validation one week before the test cutoff, test on held-out users); training is
`registry.modeling.training.fit`, without registering anything. Seeded and deterministic on the CPU; prints a
markdown table with the runtime.
"""

from __future__ import annotations

import argparse
import os
import time

import pandas as pd
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import nn

from bench.common import (
    SEQUENCE,
    VARIANTS,
    WORK_ROOT,
    add_shop_arguments,
    purchase_label,
    segments,
    workspace,
)
from plugins.purchase import PurchaseConfig, PurchaseHead
from plugins.sequence import SequenceConfig, SequenceEncoder
from registry.events.schema import read_events
from registry.features import feast_store
from registry.features.training_set import build_training_set
from registry.modeling.shop_model import ShopModel
from registry.modeling.training import Splits, TrainConfig, evaluation_outputs, fit
from registry.plugin_host import default_host
from registry.settings import Settings

WORK = WORK_ROOT / "sequence_probe"
SERVICE = "purchase_seq_v1"
LABEL = "label_purchase"  # the purchase head's label column; the pattern target is written into it


class GruSequence(SequenceEncoder):
    """The sequence encoder's inputs read by a one-layer GRU instead of the Transformer, for this probe only
    (not a registered encoder): its state runs through the events oldest to newest, so "a search, then a
    cart" is something it can hold on to. The last state (the newest event is last) is the output; the
    Transformer layers it inherits are left unused."""

    name = "sequence_gru"

    def __init__(self, config: SequenceConfig) -> None:
        super().__init__(config)
        self.gru = nn.GRU(config.d_model, config.d_model, batch_first=True)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        _, last = self.gru(self.drop(self.embed(batch)))  # left padding embeds as zeros before the events
        return last[-1]  # (B, C)


ENCODER_OPTIONS = {"mlp": {}, "sequence": SEQUENCE, "sequence_gru": SEQUENCE}


def split_rows(settings: Settings, horizon: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Train, valid and test rows of purchase_seq_v1 (`Splits.split`, as jobs.train), each with a `pattern` flag,
    and the service's fields (name -> Feast dtype)."""
    events = read_events(settings.events_dir)
    splits = Splits.default_for(events["event_time"].min(), events["event_time"].max(), horizon)
    store = feast_store.open_store(settings)
    rows = build_training_set(
        store,
        events,
        service_name=SERVICE,
        cutoffs=[*splits.train_cutoffs, splits.valid_cutoff, splits.test_cutoff],
        horizon_days=horizon,
        label=purchase_label(),
    )
    rows["pattern"] = segments(events, rows.rename(columns={"event_timestamp": "cutoff"}))["search_then_cart"]
    fields = {
        f.name: f.dtype
        for p in store.get_feature_service(SERVICE).feature_view_projections
        for f in p.features
    }
    train, valid, test = splits.split(rows)
    return train, valid, test, fields


def probe(encoder: str, target: str, rows: tuple, args: argparse.Namespace) -> dict:
    train, valid, test, fields = rows
    if target == "pattern":
        train, valid, test = (f.assign(**{LABEL: f["pattern"].astype(float)}) for f in (train, valid, test))
    head = {"horizon_days": args.horizon}
    if encoder == GruSequence.name:
        torch.manual_seed(args.seed)  # weights from the seed, as ShopModel.build does for registered parts
        config = SequenceConfig(**ENCODER_OPTIONS[encoder], features=SequenceEncoder.select_features(fields))
        gru = GruSequence(config)
        # Not a registered plugin: the parts are named for ShopModel's error messages only.
        plugins = {"encoder": {"name": GruSequence.name}, "head": {"name": "purchase"}}
        model = ShopModel(
            gru,
            PurchaseHead(PurchaseConfig(**head), gru.output_dim),
            feature_service=SERVICE,
            plugins=plugins,
        )
    else:
        config = {
            "features": default_host().encoder(encoder).cls.select_features(fields),
            **ENCODER_OPTIONS[encoder],
        }
        model = ShopModel.build(encoder, config, "purchase", head, feature_service=SERVICE, seed=args.seed)
    started = time.perf_counter()
    result = fit(
        model,
        train,
        valid,
        TrainConfig(epochs=args.epochs, lr=args.lr, patience=args.patience, seed=args.seed, device="cpu",
                    progress=False),
    )  # fmt: skip
    seconds = time.perf_counter() - started
    outputs = evaluation_outputs(result.model, test, "test")  # the labelled test rows, in order
    pattern = result.model.head.labelled(test)["pattern"].to_numpy()
    y, score = outputs["label"].to_numpy(), outputs["score"].to_numpy()
    return {
        "target": target,
        "encoder": encoder,
        "roc_auc": roc_auc_score(y, score),
        "pr_auc": average_precision_score(y, score),
        "base_rate": y.mean(),
        "pattern_score": score[pattern].mean(),
        "other_score": score[~pattern].mean(),
        "best_epoch": result.best_epoch,
        "epochs": len(result.history),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_shop_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    rows = split_rows(workspace(VARIANTS["full"], args, root=WORK), args.horizon)
    train, _, test, _ = rows
    results = [probe(e, t, rows, args) for t in ("pattern", "purchase") for e in ENCODER_OPTIONS]
    load = os.getloadavg()
    print(
        "| target | encoder | test ROC-AUC | test PR-AUC | base rate | mean score, pattern rows "
        "| mean score, other rows | best epoch / run | train s |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r['target']} | {r['encoder']} | {r['roc_auc']:.3f} | {r['pr_auc']:.3f} | {r['base_rate']:.3f} "
            f"| {r['pattern_score']:.3f} | {r['other_score']:.3f} | {r['best_epoch']} / {r['epochs']} "
            f"| {r['seconds']:.0f} |"
        )
    pattern = test["pattern"].to_numpy()
    print(
        f"\n{args.users:,} users x {args.days} days, seed {args.seed}: {len(train):,} training rows "
        f"({train['pattern'].mean():.1%} with the pattern, {train.loc[train['pattern'], LABEL].mean():.1%} of "
        f"those buy), {len(test):,} test rows ({int(pattern.sum())} with the pattern, "
        f"{test.loc[pattern, LABEL].mean():.1%} of those buy); {time.perf_counter() - started:.0f} s on "
        f"{torch.get_num_threads()} torch thread(s), load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )


if __name__ == "__main__":
    main()
