"""Evaluation metrics per kind of head: binary (purchase), regression (spend), multiclass (next category).

Ranking metrics come from scikit-learn; the rest are short enough to state here exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score


def clip_probabilities(y_prob: np.ndarray) -> np.ndarray:
    """Probabilities kept inside (0, 1), so log loss stays finite; every binary metric and curve uses it."""
    return np.clip(np.asarray(y_prob, dtype="float64"), 1e-7, 1 - 1e-7)


def reliability_bins(
    y_true: np.ndarray, y_prob: np.ndarray, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width probability bin: (mean predicted probability, observed positive rate, row count).
    Empty bins hold NaN rates and count 0. The reliability diagram plots the first two."""
    y_true = np.asarray(y_true, dtype="float64")
    y_prob = np.asarray(y_prob, dtype="float64")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(y_prob, edges[1:-1]), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = np.bincount(which, weights=y_prob, minlength=bins) / count
        observed = np.bincount(which, weights=y_true, minlength=bins) / count
    return predicted, observed, count


def calibration_error(predicted: np.ndarray, observed: np.ndarray, count: np.ndarray) -> float:
    """ECE from `reliability_bins`: mean |observed rate - predicted probability|, weighted by bin size."""
    used = count > 0
    return float((count[used] / count.sum() * np.abs(observed[used] - predicted[used])).sum())


def expected_calibration_error(y_true: np.ndarray, y_prob: np.ndarray, bins: int = 10) -> float:
    """ECE over equal-width probability bins (`calibration_error` of `reliability_bins`)."""
    return calibration_error(*reliability_bins(y_true, y_prob, bins))


def bootstrap_samples(
    y_true: np.ndarray,
    scores: Mapping[str, np.ndarray],
    metrics: Mapping[str, Callable[[np.ndarray, np.ndarray], float]],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, np.ndarray]]:
    """scorer -> metric -> `metric(y, score)` on `n_boot` resamples (with replacement) of the rows. Every
    scorer and metric sees the same resamples, so differences between two scorers' samples are paired. A
    resample with one class only gives NaN (use np.nanpercentile for intervals)."""
    y_true = np.asarray(y_true)
    rng = np.random.default_rng(seed)
    out = {name: {m: np.full(n_boot, np.nan) for m in metrics} for name in scores}
    for b in range(n_boot):
        rows = rng.integers(0, len(y_true), len(y_true))
        y = y_true[rows]
        if y.min() == y.max():
            continue
        for name, score in scores.items():
            resampled = np.asarray(score)[rows]
            for m, metric in metrics.items():
                out[name][m][b] = metric(y, resampled)
    return out


def lift_at(y_true: np.ndarray, y_prob: np.ndarray, fraction: float = 0.1) -> float:
    """Positive rate among the top `fraction` of scores divided by the overall positive rate."""
    k = max(1, int(round(len(y_prob) * fraction)))
    top = np.argsort(-y_prob, kind="stable")[:k]
    base = y_true.mean()
    return float(y_true[top].mean() / base) if base > 0 else float("nan")


def f1_at(y_true: np.ndarray, y_prob: np.ndarray, threshold: float) -> float:
    """F1 of the decision `y_prob >= threshold` (0.0 when there is nothing to find or nothing is flagged)."""
    y_true = np.asarray(y_true, dtype=bool)
    flagged = np.asarray(y_prob) >= threshold
    tp = float((flagged & y_true).sum())
    denominator = float(flagged.sum() + y_true.sum())
    return 2 * tp / denominator if denominator > 0 else 0.0


def best_f1_threshold(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """The probability threshold with the highest F1 on these rows (choose it on validation, apply it to
    test: choosing on test would overstate F1). Ties go to the higher threshold (fewer users flagged)."""
    y_true = np.asarray(y_true, dtype="float64")
    y_prob = np.asarray(y_prob, dtype="float64")
    if len(y_prob) == 0 or y_true.sum() == 0:
        return 0.5
    order = np.argsort(-y_prob, kind="stable")
    sorted_prob, sorted_true = y_prob[order], y_true[order]
    tp = np.cumsum(sorted_true)  # flagging the top k+1 rows
    f1 = 2 * tp / (np.arange(1, len(y_prob) + 1) + y_true.sum())
    # Only thresholds at the last row of a run of equal scores are reachable with `>=`.
    last_of_run = np.r_[sorted_prob[1:] != sorted_prob[:-1], True]
    f1 = np.where(last_of_run, f1, -1.0)
    return float(sorted_prob[int(np.argmax(f1))])


def _log_loss(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    return float(log_loss(y_true, clip_probabilities(y_prob), labels=[0, 1]))


# The binary metrics that need both classes (ROC-AUC, PR-AUC) and those that do not, by name.
RANKING_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "roc_auc": lambda y, p: float(roc_auc_score(y, p)),
    "pr_auc": lambda y, p: float(average_precision_score(y, p)),
}
PROBABILITY_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "log_loss": _log_loss,
    "brier": lambda y, p: float(brier_score_loss(y, clip_probabilities(p))),
    "ece": lambda y, p: expected_calibration_error(y, clip_probabilities(p)),
    "lift_top10": lambda y, p: lift_at(np.asarray(y, dtype="float64"), clip_probabilities(p), 0.1),
}
BINARY_METRICS = {**RANKING_METRICS, **PROBABILITY_METRICS}


def binary_metrics(
    y_true: np.ndarray, y_prob: np.ndarray, threshold: float | None = None
) -> dict[str, float]:
    """Ranking (ROC-AUC, PR-AUC next to the base rate it should beat), probability quality (log loss, Brier,
    ECE), lift in the top 10%, and F1 at `threshold` when one is given (chosen on validation)."""
    y_true = np.asarray(y_true, dtype="float64")
    y_prob = clip_probabilities(y_prob)
    both_classes = 0 < y_true.sum() < len(y_true)
    metrics = {"n": float(len(y_true)), "base_rate": float(y_true.mean())}
    for name, metric in RANKING_METRICS.items():
        metrics[name] = metric(y_true, y_prob) if both_classes else float("nan")
    metrics |= {name: metric(y_true, y_prob) for name, metric in PROBABILITY_METRICS.items()}
    if threshold is not None:
        metrics["threshold"] = float(threshold)
        metrics["f1"] = f1_at(y_true, y_prob, threshold)
    return metrics


def _error(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    return np.asarray(y_pred, dtype="float64") - np.asarray(y_true, dtype="float64")


# The regression metrics by name, in the label's own unit (NaN on no rows).
ERROR_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "mae": lambda y, p: float(np.abs(_error(y, p)).mean()) if len(y) else float("nan"),
    "rmse": lambda y, p: float(np.sqrt((_error(y, p) ** 2).mean())) if len(y) else float("nan"),
}


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE and RMSE in the label's own unit, next to the mean label (a scale to read them against)."""
    y_true = np.asarray(y_true, dtype="float64")
    return {
        "n": float(len(y_true)),
        "mean_label": float(y_true.mean()) if len(y_true) else float("nan"),
        **{name: metric(y_true, y_pred) for name, metric in ERROR_METRICS.items()},
    }


def top_k_accuracy(y_index: np.ndarray, y_prob: np.ndarray, k: int) -> float:
    """Share of rows whose true class index is among the k most probable classes (-1: a class the model
    does not know, always a miss)."""
    y_index = np.asarray(y_index)
    if len(y_index) == 0:
        return float("nan")
    k = min(k, y_prob.shape[1])
    top = np.argsort(-y_prob, axis=1, kind="stable")[:, :k]  # (B, k)
    return float((top == y_index[:, None]).any(axis=1).mean())
