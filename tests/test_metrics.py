"""registry.modeling.metrics: the bootstrap that every quality benchmark's intervals come from."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from registry.modeling.metrics import BINARY_METRICS, binary_metrics, bootstrap_samples


def test_bootstrap_resamples_are_shared_by_every_scorer_and_metric() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.3).astype(float)
    good, noise = y + rng.normal(0, 0.8, 300), rng.random(300)
    samples = bootstrap_samples(y, {"good": good, "noise": noise}, BINARY_METRICS, n_boot=50, seed=3)
    # The same draws, recomputed by hand: resample b of every scorer uses the same rows.
    draw = np.random.default_rng(3)
    for b in range(50):
        rows = draw.integers(0, 300, 300)
        assert samples["good"]["roc_auc"][b] == roc_auc_score(y[rows], good[rows])
        assert samples["noise"]["roc_auc"][b] == roc_auc_score(y[rows], noise[rows])
    assert set(samples["good"]) == set(BINARY_METRICS)
    # Paired: a real signal beats noise on every resample, not only on average.
    assert (samples["good"]["roc_auc"] > samples["noise"]["roc_auc"]).all()


def test_binary_metrics_is_the_table_of_metric_functions() -> None:
    rng = np.random.default_rng(1)
    y, p = (rng.random(200) < 0.2).astype(float), rng.random(200)
    point = binary_metrics(y, p)
    assert {name: point[name] for name in BINARY_METRICS} == {n: f(y, p) for n, f in BINARY_METRICS.items()}
    one_class = binary_metrics(np.zeros(10), p[:10])
    assert np.isnan(one_class["roc_auc"]) and np.isfinite(one_class["log_loss"])
