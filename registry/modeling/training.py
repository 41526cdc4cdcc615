"""Training a ShopModel on point-in-time frames: splits in time order, early stopping, evaluation.

The training loop is plain PyTorch: the whole featurised training set fits in memory for the aggregate
models, so batches are slices of tensors already on the device. CUDA is used when present (bf16 autocast);
on CPU, runs are seeded and deterministic.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from registry import progress
from registry.errors import UserError
from registry.features.training_set import as_utc
from registry.modeling.shop_model import ShopModel

# Per-row validation and test outputs, saved next to the weights in a version's artifact.
EVALUATION_FILE = "evaluation.parquet"
# Default splits: a training cutoff needs this much history; more cutoffs than this add rows, not signal.
MIN_HISTORY_DAYS = 14
MAX_TRAIN_CUTOFFS = 12


class SplitError(UserError, ValueError):
    """Training cutoffs that would let labels leak into a later split."""


@dataclass(frozen=True)
class Splits:
    """Cutoffs in time order. Each split's label window must end at or before the next split's cutoff.

    `valid_cutoff=None` validates on the held-out users (`held_out`) of the training cutoffs instead of on a
    later cutoff: every label window then ends by the test cutoff, and training can use cutoffs up to one
    horizon before the test (a later validation cutoff would push them back by one more horizon, which
    short histories cannot spare: CDNOW at T=1997-09-30, H=90 would keep only Q1 1997).
    """

    train_cutoffs: tuple[pd.Timestamp, ...]
    valid_cutoff: pd.Timestamp | None
    test_cutoff: pd.Timestamp
    horizon_days: int

    def __post_init__(self) -> None:
        if not self.train_cutoffs:
            raise SplitError("at least one training cutoff is needed")
        horizon = pd.Timedelta(days=self.horizon_days)
        last_train = max(self.train_cutoffs)
        if self.valid_cutoff is None:
            if last_train + horizon > self.test_cutoff:
                raise SplitError(
                    f"training cutoff {last_train.date()} + horizon {self.horizon_days}d reaches past the test "
                    f"cutoff {self.test_cutoff.date()}: its labels would overlap the test window. Move the "
                    f"training cutoffs earlier"
                )
            return
        if last_train + horizon > self.valid_cutoff:
            raise SplitError(
                f"training cutoff {last_train.date()} + horizon {self.horizon_days}d reaches past the validation "
                f"cutoff {self.valid_cutoff.date()}: its labels would overlap validation. Move the training "
                f"cutoffs earlier or the validation cutoff later"
            )
        if self.valid_cutoff + horizon > self.test_cutoff:
            raise SplitError(
                f"validation cutoff {self.valid_cutoff.date()} + horizon {self.horizon_days}d reaches past the "
                f"test cutoff {self.test_cutoff.date()}; move the test cutoff later"
            )

    @classmethod
    def of(
        cls,
        train: Sequence[str | pd.Timestamp],
        valid: str | pd.Timestamp | None,
        test: str | pd.Timestamp,
        horizon: int,
    ) -> Splits:
        valid_cutoff = None if valid is None else as_utc(valid)
        return cls(tuple(sorted(as_utc(c) for c in train)), valid_cutoff, as_utc(test), horizon)

    @classmethod
    def default_for(cls, first_event: pd.Timestamp, last_event: pd.Timestamp, horizon_days: int) -> Splits:
        """Cutoffs spread over the events' own span. The test window ends on the last event's day and the
        validation cutoff is one horizon before the test; training cutoffs run from MIN_HISTORY_DAYS of
        history to one horizon before validation, every 7 days or wider, at most MAX_TRAIN_CUTOFFS of them.
        A span too short for a later validation cutoff validates on the held-out users at the training
        cutoffs instead (one horizon less); shorter still, SplitError names the horizons that fit."""
        if not cls.fits(first_event, last_event, horizon_days):
            longest = max(
                (d for d in range(1, horizon_days) if cls.fits(first_event, last_event, d)), default=None
            )
            fix = f"pass --horizon-days {longest} or less" if longest else "import a longer history of events"
            span = (last_event.floor("D") - first_event.floor("D")).days + 1
            raise SplitError(
                f"the events span {span} day{'s' * (span != 1)} ({first_event.date()} to {last_event.date()}), too short for a "
                f"{horizon_days}-day horizon: training needs {MIN_HISTORY_DAYS} days of history plus two "
                f"horizons ({MIN_HISTORY_DAYS + 2 * horizon_days} days); {fix}"
            )
        horizon = pd.Timedelta(days=horizon_days)
        test = last_event.floor("D") + pd.Timedelta(days=1) - horizon
        first_train = first_event.floor("D") + pd.Timedelta(days=MIN_HISTORY_DAYS)
        valid: pd.Timestamp | None = test - horizon
        if valid - horizon < first_train:
            valid = None
        last_train = (test if valid is None else valid) - horizon
        days = (last_train - first_train).days
        step = max(7, math.ceil(days / (MAX_TRAIN_CUTOFFS - 1)))
        train = pd.date_range(end=last_train, periods=days // step + 1, freq=f"{step}D")
        return cls(tuple(train), valid, test, horizon_days)

    @staticmethod
    def fits(first_event: pd.Timestamp, last_event: pd.Timestamp, horizon_days: int) -> bool:
        """Whether the events hold at least one training cutoff and a test window for this horizon."""
        span = last_event.floor("D") + pd.Timedelta(days=1) - first_event.floor("D")
        return span >= pd.Timedelta(days=MIN_HISTORY_DAYS + 2 * horizon_days)

    def describe(self) -> str:
        """E.g. '12 training 1997-01-15..1998-01-02, validation 1998-03-03, test 1998-05-02'."""
        first, last = self.train_cutoffs[0].date(), self.train_cutoffs[-1].date()
        train = f"{len(self.train_cutoffs)} training {first}" + (f"..{last}" if first != last else "")
        valid = "held-out users" if self.valid_cutoff is None else str(self.valid_cutoff.date())
        return f"{train}, validation {valid}, test {self.test_cutoff.date()}"

    def split(self, rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """Training-set rows (`event_timestamp` = cutoff) -> train, valid and test rows. Train on one set of
        users, test on users the model never saw (`held_out`), at the later test cutoff."""
        cutoff = rows["event_timestamp"]
        train = rows[cutoff.isin(self.train_cutoffs)].reset_index(drop=True)
        test = rows[cutoff == self.test_cutoff].reset_index(drop=True)
        if self.valid_cutoff is None:
            # Validate on the held-out users at the training cutoffs (their labels end by the test cutoff).
            valid = train[held_out(train["user_id"])]
        else:
            valid = rows[cutoff == self.valid_cutoff].reset_index(drop=True)
            valid = valid[~held_out(valid["user_id"])]
        return train[~held_out(train["user_id"])], valid, test[held_out(test["user_id"])]

    def to_lineage(self) -> dict[str, object]:
        return {
            "train_cutoffs": [c.isoformat() for c in self.train_cutoffs],
            "valid_cutoff": None if self.valid_cutoff is None else self.valid_cutoff.isoformat(),
            "test_cutoff": self.test_cutoff.isoformat(),
            "horizon_days": self.horizon_days,
        }


def held_out(user_ids: pd.Series, fraction: float = 0.2) -> np.ndarray:
    """Stable per-user split: True for the users kept out of training (a multiplicative hash of the id)."""
    ids = user_ids.to_numpy(dtype="int64").astype("uint64")
    hashed = (ids * np.uint64(2654435761)) % np.uint64(2**32)
    return hashed < np.uint64(int(fraction * 2**32))


@dataclass
class TrainConfig:
    epochs: int = 40
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 5
    seed: int = 0
    device: str = "auto"
    progress: bool = True


@dataclass
class TrainResult:
    model: ShopModel
    # Per epoch: train_loss, valid_loss and the head's metrics on the validation rows (`valid_roc_auc`, ...;
    # None where a metric is undefined), before post-hoc calibration.
    history: list[dict[str, float | None]] = field(default_factory=list)
    best_epoch: int = 0
    device: str = "cpu"


def resolve_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {setting!r} requested but torch sees no CUDA GPU; use SHOPSCORE_DEVICE=cpu"
        )
    return torch.device(setting)


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def fit(model: ShopModel, train: pd.DataFrame, valid: pd.DataFrame, config: TrainConfig) -> TrainResult:
    """Fit the encoder's data-dependent state on `train`, train with early stopping on `valid` loss, then let
    the head calibrate itself on `valid` (e.g. temperature scaling).

    The head decides which rows carry a label (`Head.labelled`) and what the target tensor is
    (`Head.target`), so binary, regression and multiclass heads share this loop.
    """
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    device = resolve_device(config.device)
    head = model.head
    train, valid = model.labelled(train), model.labelled(valid)
    if len(train) == 0 or len(valid) == 0:
        raise ValueError(
            f"head {head.name!r} found no labelled rows ({len(train)} train, {len(valid)} valid) in column "
            f"{head.label!r}; use more data or earlier training cutoffs"
        )
    model.fit_encoder(train)
    model.to(device)

    def tensors(frame: pd.DataFrame) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        batch = {k: v.to(device) for k, v in model.featurize(frame).items()}
        return batch, model.target(frame).to(device)

    x_train, y_train = tensors(train)
    x_valid, y_valid = tensors(valid)
    valid_target = y_valid.cpu().numpy()
    # The parts' contract, checked on the first training batch before any epoch is spent.
    model.eval()
    model.check_parts({k: v[: config.batch_size] for k, v in x_train.items()})
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    n = len(train)
    best_loss, best_state, best_epoch, stale = math.inf, None, 0, 0
    history: list[dict[str, float | None]] = []
    epochs = tqdm(
        range(config.epochs),
        desc="train",
        unit="epoch",
        disable=None if config.progress else True,
        leave=False,
    )
    for epoch in epochs:
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        total = 0.0
        for start in range(0, n, config.batch_size):
            idx = order[start : start + config.batch_size]
            with _autocast(device):
                _, loss = model({k: v[idx] for k, v in x_train.items()}, y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        with torch.no_grad(), _autocast(device):
            valid_outputs, valid_loss = model(x_valid, y_valid)
            valid_pred = model.predict(valid_outputs.float()).cpu().numpy()
        record: dict[str, float | None] = {
            "epoch": epoch + 1,
            "train_loss": total / n,
            "valid_loss": float(valid_loss),
            **{f"valid_{k}": _finite(v) for k, v in model.metrics(valid_target, valid_pred).items()},
        }
        history.append(record)
        epochs.set_postfix(train=f"{record['train_loss']:.4f}", valid=f"{record['valid_loss']:.4f}")
        if config.progress and not progress.on_terminal():  # no bar to draw: one line per epoch
            progress.note(
                f"epoch {epoch + 1}/{config.epochs}: train loss {record['train_loss']:.4f}, "
                f"valid loss {record['valid_loss']:.4f}"
            )
        if float(valid_loss) < best_loss - 1e-5:
            best_loss, best_epoch, stale = float(valid_loss), epoch + 1, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        valid_outputs, _ = model(x_valid)
    # Calibrate in float32 on the best weights: post-hoc state must match what is saved and served.
    model.calibrate(valid_outputs.float().detach(), y_valid)
    return TrainResult(model=model, history=history, best_epoch=best_epoch, device=str(device))


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def evaluation_outputs(model: ShopModel, frame: pd.DataFrame, split: str) -> pd.DataFrame:
    """The model's output on each of the frame's labelled rows: split, user_id, cutoff, label, target, score.

    `label` is the head's label column, `target` what `Head.target` makes of it (what the metrics compare
    with), `score` what the head predicts (a probability, an amount), or a list of class probabilities for a
    multiclass head. Registered with the version (EVALUATION_FILE), these rows are what its metrics were
    computed from, so reports can draw curves and intervals that agree with them exactly.
    """
    labelled = model.labelled(frame)
    y_pred = model.predict_frame(labelled)
    return pd.DataFrame(
        {
            "split": split,
            "user_id": labelled["user_id"].to_numpy(),
            "cutoff": labelled["event_timestamp"].to_numpy(),
            "label": labelled[model.head.label].to_numpy(),
            "target": model.target(labelled).cpu().numpy(),
            "score": list(y_pred) if y_pred.ndim > 1 else y_pred,
        }
    )


def stacked(column: pd.Series) -> np.ndarray:
    """A column of per-row arrays (class probabilities) as one 2-D array; other columns as they are."""
    values = column.to_numpy()
    return np.stack(values) if values.dtype == object else values


def outputs_metrics(model: ShopModel, outputs: pd.DataFrame, prefix: str) -> dict[str, float]:
    """The head's metrics on `evaluation_outputs` rows, each name prefixed (`test_roc_auc`)."""
    metrics = model.metrics(outputs["target"].to_numpy(), stacked(outputs["score"]))
    return {f"{prefix}_{k}": v for k, v in metrics.items()}


def evaluate(model: ShopModel, frame: pd.DataFrame, prefix: str) -> dict[str, float]:
    """The head's metrics on the frame's labelled rows, each name prefixed (`test_roc_auc`)."""
    labelled = model.labelled(frame)
    metrics = model.metrics(model.target(labelled).cpu().numpy(), model.predict_frame(labelled))
    return {f"{prefix}_{k}": v for k, v in metrics.items()}
