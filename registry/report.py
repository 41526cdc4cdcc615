"""`shopscore report MODEL VERSION`: one HTML page, plus the PNGs it embeds by relative path, about a version.

What the page holds:
- the version's metrics, lineage and params side by side with the version that holds an alias (default
  `production`), with deltas; or a plain sentence saying no version holds it, or that this one does;
- curves drawn from the per-row outputs stored with the version (evaluation.parquet, see
  `registry.modeling.training.evaluation_outputs`), for the validation and the test rows. What is drawn depends on the
  head, read from the metrics it recorded: a binary head (`roc_auc`) gets ROC, precision-recall with the
  base rate line, and a reliability diagram; a regression head (`mae`) predicted against actual; a
  multiclass head (`top1_accuracy`) top-k accuracy for k = 1..10. A version registered before outputs were
  stored gets a note saying so, and the rest of the page;
- training curves from the per-epoch history in the version's lineage: losses, and the validation metrics
  where they were recorded.

The numbers under the curves are computed from the curves themselves (area under the ROC curve, average
precision from the precision-recall steps, ECE from the reliability bins), so they can be checked against
the registered metrics: they agree because the stored rows are the ones the metrics came from.

Computing and rendering are apart: `write_report` computes the numbers and writes the PNGs, gathers them
in a `VersionPage` (plain dataclasses), and `registry/templates/report/version_report.html.j2` lays it out
(extending `base.html.j2`, the page chrome and stylesheet other pages share). Jinja2 renders it with
autoescape on, so everything printed into the HTML is escaped. Plots use matplotlib's Agg backend (no
display needed), from the `report` extra: `pip install 'shopscore[report]'`.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from sklearn.metrics import auc, precision_recall_curve, roc_curve

from registry.model_registry.errors import UnknownAlias
from registry.model_registry.records import FieldDiff, ModelVersion
from registry.model_registry.store import ModelRegistry
from registry.modeling.metrics import (
    bootstrap_samples,
    calibration_error,
    clip_probabilities,
    reliability_bins,
    top_k_accuracy,
)
from registry.modeling.tasks import EVALUATIONS, Evaluation
from registry.modeling.training import EVALUATION_FILE, stacked

REPORT_FILE = "index.html"
SPLITS = ("valid", "test")
MAX_K = 10  # top-k accuracy is drawn for k = 1..MAX_K (or the number of classes, if fewer)
BOOTSTRAP_SAMPLES = 300  # resamples of the test rows behind each 95% interval


@dataclass(frozen=True)
class Report:
    html: Path
    images: tuple[Path, ...]
    notes: tuple[str, ...]


# ---- curves (plain data, so tests can compare them with the registered metrics) -------------------------
@dataclass(frozen=True)
class BinaryCurves:
    fpr: np.ndarray
    tpr: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    base_rate: float
    bin_predicted: np.ndarray  # reliability diagram: mean predicted probability per bin
    bin_observed: np.ndarray  # ... and the observed positive rate
    bin_count: np.ndarray

    @property
    def roc_auc(self) -> float:
        return float(auc(self.fpr, self.tpr))

    @property
    def pr_auc(self) -> float:
        """Average precision: the precision-recall curve's step integral (what average_precision_score is)."""
        return float(-np.sum(np.diff(self.recall) * self.precision[:-1]))

    @property
    def ece(self) -> float:
        return calibration_error(self.bin_predicted, self.bin_observed, self.bin_count)


def binary_curves(y_true: np.ndarray, y_prob: np.ndarray) -> BinaryCurves:
    y_true = np.asarray(y_true, dtype="float64")
    y_prob = clip_probabilities(y_prob)  # as binary_metrics does, so ties match
    fpr, tpr, _ = roc_curve(y_true, y_prob)
    precision, recall, _ = precision_recall_curve(y_true, y_prob)
    predicted, observed, count = reliability_bins(y_true, y_prob)
    return BinaryCurves(fpr, tpr, precision, recall, float(y_true.mean()), predicted, observed, count)


def top_k_curve(target: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Top-k accuracy for k = 1..min(MAX_K, classes); a target of -1 (a class the model does not know) is
    always a miss."""
    classes = probabilities.shape[1]
    return np.array([top_k_accuracy(target, probabilities, k) for k in range(1, min(MAX_K, classes) + 1)])


def evaluation_of(record: ModelVersion) -> Evaluation | None:
    """The evaluation the version's head declared (lineage `task`); for a version registered before heads
    declared one, guessed from the metrics it recorded."""
    declared = (record.lineage.get("task") or {}).get("evaluation")
    if declared is None:
        guesses = (("binary", "roc_auc"), ("regression", "mae"), ("categories", "top1_accuracy"))
        declared = next((kind for kind, metric in guesses if f"test_{metric}" in record.metrics), None)
    return EVALUATIONS.get(declared) if declared else None


def targets(outputs: pd.DataFrame, record: ModelVersion) -> np.ndarray:
    """What the metrics compared the scores with: the stored `target` column; versions registered before it
    was stored compared with the label itself (class names, for categories, mapped to their index here)."""
    if "target" in outputs:
        return outputs["target"].to_numpy()
    classes = record.params.get("head_config", {}).get("categories")
    if classes:
        index = {str(c): i for i, c in enumerate(classes)}
        return np.array([index.get(str(c), -1) for c in outputs["label"]], dtype="int64")
    return outputs["label"].to_numpy()


@dataclass(frozen=True)
class Headline:
    """A headline metric on the test rows: the model's and each baseline's value with a 95% interval."""

    metric: str
    values: dict[str, tuple[float, float, float]]  # scorer -> (value, 2.5th, 97.5th percentile)


def headlines(
    evaluation: Evaluation, outputs: pd.DataFrame, target: np.ndarray, *, n_boot: int = 0
) -> list[Headline]:
    """The evaluation's headline metrics on the test rows (validation when there are none) for the model and
    its baselines (fitted on the validation targets), with bootstrap intervals on the same resamples."""
    split = "test" if (outputs["split"] == "test").any() else "valid"
    rows = (outputs["split"] == split).to_numpy()
    y, score = target[rows], stacked(outputs.loc[rows, "score"])
    reference = target[(outputs["split"] == "valid").to_numpy()]
    scorers = {"model": score, **evaluation.baselines(reference, score)}
    samples = bootstrap_samples(y, scorers, evaluation.headline, n_boot=n_boot or BOOTSTRAP_SAMPLES)
    out = []
    for metric, fn in evaluation.headline.items():
        values = {}
        for name, predictions in scorers.items():
            with np.errstate(all="ignore"):
                point = fn(y, predictions) if len(y) else math.nan
            drawn = samples[name][metric]
            low, high = np.nanpercentile(drawn, [2.5, 97.5]) if np.isfinite(drawn).any() else (math.nan,) * 2
            values[name] = (float(point), float(low), float(high))
        out.append(Headline(f"{split}_{metric}", values))
    return out


def read_outputs(artifact_dir: Path) -> pd.DataFrame | None:
    path = Path(artifact_dir) / EVALUATION_FILE
    return pd.read_parquet(path) if path.is_file() else None


# ---- plots ----------------------------------------------------------------------------------------------
def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "shopscore report draws its plots with matplotlib, which is not installed; "
            "install it with `pip install 'shopscore[report]'`"
        ) from None
    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


@dataclass(frozen=True)
class Figure:
    """A written plot and its caption; the page shows it by its path relative to the page."""

    caption: str
    path: Path

    @property
    def src(self) -> str:
        return self.path.name


@dataclass
class _Figures:
    out_dir: Path
    written: list[Path] = field(default_factory=list)

    def save(self, fig: Any, name: str, caption: str) -> Figure:
        path = self.out_dir / name
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        _pyplot().close(fig)
        self.written.append(path)
        return Figure(caption, path)


def _split_rows(outputs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {s: outputs[outputs["split"] == s] for s in SPLITS if (outputs["split"] == s).any()}


def _binary_plots(figures: _Figures, outputs: pd.DataFrame) -> list[Figure]:
    plt = _pyplot()
    curves = {
        s: binary_curves(r["target"].to_numpy(), r["score"].to_numpy())
        for s, r in _split_rows(outputs).items()
    }
    roc, ax = plt.subplots(figsize=(5, 4.5))
    for split, c in curves.items():
        ax.plot(c.fpr, c.tpr, label=f"{split}: ROC-AUC {c.roc_auc:.3f}")
    ax.plot([0, 1], [0, 1], "k:", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(loc="lower right")
    pr, ax = plt.subplots(figsize=(5, 4.5))
    for split, c in curves.items():
        (line,) = ax.plot(
            c.recall, c.precision, drawstyle="steps-post", label=f"{split}: PR-AUC {c.pr_auc:.3f}"
        )
        ax.axhline(c.base_rate, color=line.get_color(), ls=":", label=f"{split}: base rate {c.base_rate:.3f}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall", ylim=(0, 1.02))
    ax.legend(loc="upper right")
    cal, ax = plt.subplots(figsize=(5, 4.5))
    for split, c in curves.items():
        used = c.bin_count > 0
        ax.plot(c.bin_predicted[used], c.bin_observed[used], "o-", label=f"{split}: ECE {c.ece:.3f}")
    ax.plot([0, 1], [0, 1], "k:", label="perfectly calibrated")
    ax.set(xlabel="mean predicted probability (10 bins)", ylabel="observed positive rate",
           title="Calibration (reliability)", xlim=(0, 1), ylim=(0, 1))  # fmt: skip
    ax.legend(loc="upper left")
    return [
        figures.save(roc, "roc.png", "ROC curve"),
        figures.save(
            pr, "pr.png", "Precision-recall curve (dotted: base rate, what a random ranking scores)"
        ),
        figures.save(cal, "calibration.png", "Reliability diagram"),
    ]


def _regression_plots(figures: _Figures, outputs: pd.DataFrame) -> list[Figure]:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    top = 1.0
    for split, rows in _split_rows(outputs).items():
        actual, predicted = rows["target"].to_numpy(float), rows["score"].to_numpy(float)
        ax.scatter(predicted, actual, s=6, alpha=0.4, label=f"{split} ({len(rows):,} rows)")
        top = max(top, float(np.nanmax(actual)), float(np.nanmax(predicted)))
    ax.plot([0, top], [0, top], "k:", label="predicted = actual")
    ax.set(xscale="symlog", yscale="symlog", xlabel="predicted", ylabel="actual", title="Predicted vs actual")
    ax.legend(loc="upper left")
    return [figures.save(fig, "predicted_vs_actual.png", "Predicted against actual (symmetric log axes)")]


def _categories_plots(figures: _Figures, outputs: pd.DataFrame) -> list[Figure]:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    classes = 0
    for split, rows in _split_rows(outputs).items():
        probabilities = stacked(rows["score"])
        classes = probabilities.shape[1]
        curve = top_k_curve(rows["target"].to_numpy(), probabilities)
        ax.plot(np.arange(1, len(curve) + 1), curve, "o-", label=f"{split}: top-1 {curve[0]:.3f}")
    ax.set(
        xlabel="k", ylabel="share of rows whose class is in the top k", title="Top-k accuracy", ylim=(0, 1)
    )
    ax.legend(loc="lower right")
    return [figures.save(fig, "top_k.png", f"Top-k accuracy over {classes} classes")]


PLOTS = {"binary": _binary_plots, "regression": _regression_plots, "categories": _categories_plots}


def _training_plots(
    figures: _Figures, history: list[dict[str, Any]], evaluation: Evaluation | None, best_epoch: float | None
) -> tuple[list[Figure], list[str]]:
    plt = _pyplot()
    frame = pd.DataFrame(history)
    plots: list[Figure] = []
    notes: list[str] = []
    fig, ax = plt.subplots(figsize=(5, 4))
    for column in ("train_loss", "valid_loss"):
        ax.plot(frame["epoch"], frame[column], "o-", ms=3, label=column.replace("_", " "))
    if best_epoch:
        ax.axvline(best_epoch, color="k", ls=":", label=f"kept: epoch {best_epoch:.0f}")
    ax.set(xlabel="epoch", ylabel="loss", title="Training and validation loss")
    ax.legend()
    plots.append(figures.save(fig, "loss.png", "Loss per epoch"))
    headline = evaluation.headline if evaluation else ()
    shown = [f"valid_{m}" for m in headline if f"valid_{m}" in frame]
    if shown:
        fig, ax = plt.subplots(figsize=(5, 4))
        for column in shown:
            ax.plot(frame["epoch"], frame[column].astype(float), "o-", ms=3, label=column.replace("_", " "))
        ax.set(xlabel="epoch", title="Validation metrics per epoch (before calibration)")
        ax.legend()
        plots.append(figures.save(fig, "valid_metrics.png", "Validation metrics per epoch"))
    else:
        notes.append(
            "Per-epoch validation metrics were not recorded for this version (it was trained before they "
            "were); only the loss curves are shown."
        )
    return plots, notes


# ---- the page: a plain context, rendered by registry/templates/report/version_report.html.j2 ---------------
TEMPLATE = "report/version_report.html.j2"


@dataclass(frozen=True)
class Summary:
    """The version's identity, at the top of the page."""

    head: Any  # the lineage's head name (a plugin's name)
    evaluation: str | None  # None: no evaluation this shopscore knows
    encoder: Any
    feature_service: str
    status: str
    aliases: tuple[str, ...]
    created_at: datetime
    created_by: str | None
    artifact_uri: str
    sha256: str


@dataclass(frozen=True)
class VersionPage:
    """Everything the page shows, computed: the template lays it out and formats the values, nothing more.

    `metrics`, `lineage` and `params` are FieldDiffs beside the alias holder's (`holder` is its version), or
    this version's own values when there is no holder to compare with (`holder` is None)."""

    model: str
    version: int
    alias: str
    holder: int | None
    summary: Summary
    notes: tuple[str, ...]
    headlines: tuple[Headline, ...]
    metrics: tuple[FieldDiff, ...] | dict[str, Any]
    lineage: tuple[FieldDiff, ...] | dict[str, Any]
    params: tuple[FieldDiff, ...] | dict[str, Any]
    curves: tuple[Figure, ...]
    training: tuple[Figure, ...]


def format_value(value: Any) -> str:
    """One table cell (the templates' `cell` filter): "-" for None and NaN, floats to 4 decimals, a list of
    strings joined with commas, other structures as sorted JSON. Escaping is the template's (autoescape)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4f}"
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    return json.dumps(value, sort_keys=True, default=str)


@functools.cache
def environment() -> jinja2.Environment:
    """The templates shipped in `registry/templates` (the report's, and what other pages share: the base
    layout and its stylesheet, the table macros). Autoescape is on for every template whatever its name, so
    a model's params, lineage, plugin names and notes are always escaped; an undefined name in a template
    is an error, never an empty string."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("registry", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["cell"] = format_value
    return env


def render_page(page: VersionPage) -> str:
    return environment().get_template(TEMPLATE).render(page=page)


def write_report(
    registry: ModelRegistry, record: ModelVersion, out_dir: str | Path, *, alias: str = "production"
) -> Report:
    """Write `out_dir/index.html` and its PNGs for `record` (a version of this registry)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = _Figures(out)
    _, artifact = registry.fetch(record.model, record.version)  # hash-verified, like every load
    notes: list[str] = []
    try:
        holder: ModelVersion | None = registry.resolve(record.model, alias)
    except UnknownAlias:
        holder = None
        notes.append(f"No version of {record.model} holds alias {alias!r}: nothing to compare with.")
    if holder is not None and holder.version == record.version:
        notes.append(f"This version holds alias {alias!r}: it is what is served, nothing to compare with.")
        holder = None
    evaluation = evaluation_of(record)
    outputs = read_outputs(artifact)
    curves: list[Figure] = []
    headline_rows: list[Headline] = []
    if outputs is None:
        notes.append(
            f"Curves are unavailable: version {record.version} was registered before shopscore stored "
            f"per-row evaluation outputs ({EVALUATION_FILE}) with its artifact. Train it again to get them; "
            "the metrics below are the registered ones."
        )
    elif evaluation is None:
        notes.append(
            f"Head {record.lineage.get('head')!r} declares no evaluation this shopscore knows, so no curves "
            "are drawn; its metrics are in the table."
        )
    else:
        outputs = outputs.assign(target=targets(outputs, record))
        curves = PLOTS[evaluation.name](figures, outputs)
        headline_rows = headlines(evaluation, outputs, outputs["target"].to_numpy())
    history = record.lineage.get("history") or []
    training: list[Figure] = []
    if history:
        training, more = _training_plots(figures, history, evaluation, record.metrics.get("best_epoch"))
        notes += more
    else:
        notes.append("No training history was recorded for this version.")

    metrics: tuple[FieldDiff, ...] | dict[str, Any]
    lineage: tuple[FieldDiff, ...] | dict[str, Any]
    params: tuple[FieldDiff, ...] | dict[str, Any]
    if holder is not None:
        comparison = registry.compare(record.model, holder.version, record.version)
        metrics, params = comparison.metrics, comparison.params
        lineage = tuple(d for d in comparison.lineage if d.name != "history")
    else:
        metrics, params = record.metrics, record.params
        lineage = {k: v for k, v in record.lineage.items() if k != "history"}
    page = VersionPage(
        model=record.model,
        version=record.version,
        alias=alias,
        holder=holder.version if holder is not None else None,
        summary=Summary(
            head=record.lineage.get("head"),
            evaluation=evaluation.name if evaluation else None,
            encoder=record.lineage.get("encoder"),
            feature_service=record.feature_service,
            status=record.status,
            aliases=record.aliases,
            created_at=record.created_at,
            created_by=record.created_by,
            artifact_uri=record.artifact_uri,
            sha256=record.sha256,
        ),
        notes=tuple(notes),
        headlines=tuple(headline_rows),
        metrics=metrics,
        lineage=lineage,
        params=params,
        curves=tuple(curves),
        training=tuple(training),
    )
    page_path = out / REPORT_FILE
    page_path.write_text(render_page(page), encoding="utf-8")
    return Report(html=page_path, images=tuple(figures.written), notes=tuple(notes))
