"""Evaluation metrics for binary purchase predictions (scikit-learn for the ranking metrics)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score


def expected_calibration_error(y_true: np.ndarray, y_prob: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - predicted probability| over equal-width probability bins, weighted by bin size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(y_prob, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            error += in_bin.mean() * abs(y_true[in_bin].mean() - y_prob[in_bin].mean())
    return float(error)


def lift_at(y_true: np.ndarray, y_prob: np.ndarray, fraction: float = 0.1) -> float:
    """Positive rate among the top `fraction` of scores divided by the overall positive rate."""
    k = max(1, int(round(len(y_prob) * fraction)))
    top = np.argsort(-y_prob, kind="stable")[:k]
    base = y_true.mean()
    return float(y_true[top].mean() / base) if base > 0 else float("nan")


def binary_metrics(y_true: np.ndarray, y_prob: np.ndarray) -> dict[str, float]:
    y_true = np.asarray(y_true, dtype="float64")
    y_prob = np.clip(np.asarray(y_prob, dtype="float64"), 1e-7, 1 - 1e-7)
    both_classes = 0 < y_true.sum() < len(y_true)
    return {
        "n": float(len(y_true)),
        "base_rate": float(y_true.mean()),
        "roc_auc": float(roc_auc_score(y_true, y_prob)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(y_true, y_prob)) if both_classes else float("nan"),
        "log_loss": float(log_loss(y_true, y_prob, labels=[0, 1])),
        "brier": float(brier_score_loss(y_true, y_prob)),
        "ece": expected_calibration_error(y_true, y_prob),
        "lift_top10": lift_at(y_true, y_prob, 0.1),
    }
