"""`shopscore report`: an HTML page with curves drawn from the outputs stored with a version, training
curves, and metrics/lineage side by side with the alias holder; clear errors for unknown models/versions."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from registry import flow as jobs
from registry.cli import main
from registry.model_registry.store import ModelRegistry
from registry.modeling.metrics import top_k_accuracy
from registry.modeling.tasks import BINARY
from registry.modeling.training import EVALUATION_FILE, TrainConfig
from registry.report import binary_curves, environment, headlines, read_outputs, top_k_curve, write_report
from registry.settings import Settings

PNG = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """What a browser would show: the page's text nodes (entities decoded) and the tags it would build."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory):
    """A tiny workspace: v1 of `purchase` holds `production`, v2 is a candidate."""
    settings = Settings.from_env(home=tmp_path_factory.mktemp("report"))
    settings = settings.with_(database_url=f"sqlite:///{settings.home / 'registry.db'}", feast_profile="")
    jobs.generate(settings, users=500, days=30, seed=5, start="2024-01-01")
    jobs.build_features(settings)
    jobs.apply_features(settings)
    registry = ModelRegistry.open(settings=settings, upgrade=True, role="promoter")
    versions = [
        jobs.train(
            settings, jobs.TrainSpec(horizon_days=3, train=TrainConfig(epochs=4, progress=False, seed=s))
        )
        for s in (0, 1)
    ]
    registry.set_alias("purchase", "production", versions[0].version, reason="first", actor="test")
    yield settings, registry, versions
    registry.close()


def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str):
    monkeypatch.setenv("SHOPSCORE_HOME", str(settings.home))
    monkeypatch.setenv("SHOPSCORE_DATABASE_URL", settings.database_url)
    monkeypatch.delenv("SHOPSCORE_ARTIFACTS_DIR", raising=False)
    return CliRunner().invoke(main, ["report", *args])


def test_report_has_curves_training_and_the_alias_holder_side_by_side(shop, tmp_path, monkeypatch):
    settings, registry, (v1, v2) = shop
    result = cli(settings, monkeypatch, "purchase", str(v2.version), "--out", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    written = json.loads(result.output.strip().splitlines()[-1])
    page = Path(written["html"]).read_text()
    names = {Path(p).name for p in written["images"]}
    assert names == {"roc.png", "pr.png", "calibration.png", "loss.png", "valid_metrics.png"}
    for name in names:
        assert (tmp_path / name).read_bytes().startswith(PNG)
        assert f'src="{name}"' in page
    assert f"v{v2.version} against v{v1.version}, which holds alias 'production'" in page
    for version in (v1, v2):  # both versions' registered metrics are on the page
        assert (
            f"{version.metrics['test_roc_auc']:.4f}" in page
            and f"{version.metrics['test_pr_auc']:.4f}" in page
        )
    assert v2.lineage["data_fingerprint"] in page and "purchase_v1" in page


def test_curves_from_the_stored_outputs_give_the_registered_metrics(shop):
    _, registry, (_, v2) = shop
    _, artifact = registry.fetch("purchase", v2.version)
    outputs = read_outputs(artifact)
    assert set(outputs["split"]) == {"valid", "test"}
    assert list(outputs.columns) == ["split", "user_id", "cutoff", "label", "target", "score"]
    for split in ("valid", "test"):
        rows = outputs[outputs["split"] == split]
        assert len(rows) == v2.metrics[f"{split}_n"]
        curves = binary_curves(rows["target"].to_numpy(), rows["score"].to_numpy())
        assert curves.roc_auc == pytest.approx(v2.metrics[f"{split}_roc_auc"], abs=1e-9)
        assert curves.pr_auc == pytest.approx(v2.metrics[f"{split}_pr_auc"], abs=1e-9)
        assert curves.ece == pytest.approx(v2.metrics[f"{split}_ece"], abs=1e-9)
        assert curves.base_rate == pytest.approx(v2.metrics[f"{split}_base_rate"], abs=1e-12)
    # Test users are held out: none of them is among the validation (training-side) users.
    assert not set(outputs.loc[outputs["split"] == "test", "user_id"]) & set(
        outputs.loc[outputs["split"] == "valid", "user_id"]
    )
    # The per-epoch history records validation metrics next to the losses, for the training curves.
    epoch = v2.lineage["history"][0]
    assert {"train_loss", "valid_loss", "valid_roc_auc", "valid_pr_auc"} <= set(epoch)


def test_headline_metrics_carry_intervals_and_are_read_against_baselines(shop):
    _, registry, (_, v2) = shop
    _, artifact = registry.fetch("purchase", v2.version)
    outputs = read_outputs(artifact)
    rows = {h.metric: h.values for h in headlines(BINARY, outputs, outputs["target"].to_numpy(), n_boot=200)}
    assert set(rows) == {"test_roc_auc", "test_pr_auc", "test_log_loss"}
    for metric, values in rows.items():
        assert set(values) == {"model", "base rate"}
        model, low, high = values["model"]
        assert model == pytest.approx(v2.metrics[metric], abs=1e-9)  # the registered number
        assert low < model < high
    assert rows["test_roc_auc"]["base rate"][0] == pytest.approx(0.5)  # a constant ranks no one
    assert rows["test_pr_auc"]["base rate"][0] == pytest.approx(v2.metrics["test_base_rate"], abs=1e-9)
    assert rows["test_roc_auc"]["model"][1] > 0.5  # the whole interval beats the baseline on this shop


def test_the_alias_holder_itself_and_a_missing_alias_are_said_plainly(shop, tmp_path):
    _, registry, (v1, _) = shop
    own = write_report(registry, v1, tmp_path / "own")
    assert any("This version holds alias 'production'" in n for n in own.notes)
    assert f"v{v1.version} alone" in own.html.read_text()
    none = write_report(registry, v1, tmp_path / "none", alias="staging")
    assert any("No version of purchase holds alias 'staging'" in n for n in none.notes)


def test_a_version_without_stored_outputs_still_reports_and_everything_is_escaped(shop, tmp_path):
    _, registry, (v1, _) = shop
    _, artifact = registry.fetch("purchase", v1.version)
    old = tmp_path / "old-artifact"
    shutil.copytree(artifact, old)
    (old / EVALUATION_FILE).unlink()  # as a version registered before outputs were stored
    lineage = {**v1.lineage, "note": "<script>alert('x')</script>"}
    lineage["history"] = [
        {k: e[k] for k in ("epoch", "train_loss", "valid_loss")} for e in lineage["history"]
    ]
    old_version = registry.register_version(
        "purchase", old, lineage=lineage, metrics=v1.metrics, params=v1.params, created_by="<b>me</b>"
    )
    report = write_report(registry, old_version, tmp_path / "report")
    page = report.html.read_text()
    assert any("Curves are unavailable" in n and EVALUATION_FILE in n for n in report.notes)
    assert any("Per-epoch validation metrics were not recorded" in n for n in report.notes)
    assert [p.name for p in report.images] == ["loss.png"]
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<b>me</b>" not in page and "&lt;b&gt;me&lt;/b&gt;" in page


@pytest.mark.parametrize(
    ("head", "image"), [("spend", "predicted_vs_actual.png"), ("next_category", "top_k.png")]
)
def test_other_heads_get_their_own_curves(shop, tmp_path, head, image):
    settings, registry, _ = shop
    spec = jobs.TrainSpec(
        model_name=head, head=head, horizon_days=3, train=TrainConfig(epochs=2, progress=False)
    )
    version = jobs.train(settings, spec)
    report = write_report(registry, version, tmp_path)
    assert image in {p.name for p in report.images} and "loss.png" in {p.name for p in report.images}
    if head == "next_category":
        _, artifact = registry.fetch(head, version.version)
        test = read_outputs(artifact).query("split == 'test'")
        probabilities = np.stack(test["score"].to_numpy())
        classes = version.params["head_config"]["categories"]
        index = {c: i for i, c in enumerate(classes)}
        assert test["target"].tolist() == [index.get(c, -1) for c in test["label"]]  # the head's own target
        curve = top_k_curve(test["target"].to_numpy(), probabilities)
        assert curve[0] == pytest.approx(version.metrics["test_top1_accuracy"], abs=1e-12)
        assert curve[2] == pytest.approx(version.metrics["test_top3_accuracy"], abs=1e-12)
        assert np.all(np.diff(curve) >= 0)
        unknown = np.full(len(test), -1)  # a class the model does not know is a miss, whatever k is
        assert top_k_accuracy(unknown, probabilities, 5) == 0.0


def test_unknown_model_or_version_exits_1_with_a_clear_message(shop, monkeypatch):
    # Exit 1 as every other command does for a name the registry lacks (2 is for malformed usage).
    settings, _, (_, v2) = shop
    result = cli(settings, monkeypatch, "nosuch", "1")
    assert result.exit_code == 1
    assert "no registered model named 'nosuch'" in result.output and "shopscore models list" in result.output
    result = cli(settings, monkeypatch, "purchase", "99")
    assert result.exit_code == 1 and "has no version 99" in result.output
    result = cli(settings, monkeypatch, "purchase", "candidate")
    assert result.exit_code == 1 and "has no alias 'candidate'" in result.output


def test_report_accepts_an_alias_and_defaults_its_directory(shop, monkeypatch):
    settings, _, (v1, _) = shop
    result = cli(settings, monkeypatch, "purchase", "production")
    assert result.exit_code == 0, result.output
    page = settings.home / "reports" / f"purchase-v{v1.version}" / "index.html"
    assert page.is_file() and f"wrote {page}" in result.output


def test_strings_from_users_and_plugins_are_escaped_once(shop, tmp_path):
    """Params, a plugin's head/encoder names and task, the creator: shown as text, never as markup, and not
    escaped twice (the reader sees exactly the string that was registered)."""
    _, registry, (v1, _) = shop
    _, artifact = registry.fetch("purchase", v1.version)
    head = "<script>alert('head')</script>"
    description = '<script>alert("description")</script> & co'
    lineage = {
        **v1.lineage,
        "head": head,
        "encoder": {"name": "<img src=x onerror=alert(1)>"},
        "task": {"evaluation": "<b>no such evaluation</b>"},
    }
    params = {**v1.params, "description": description, "tags": ["<i>new</i>", "plain"]}
    hostile = registry.register_version(
        "purchase", artifact, lineage=lineage, metrics=v1.metrics, params=params, created_by="<u>me</u>"
    )
    for alias in ("production", "staging"):  # beside the holder's values, and alone
        report = write_report(registry, hostile, tmp_path / alias, alias=alias)
        raw = report.html.read_text()
        for markup in ("<script", "<img src=x", "<b>", "<i>", "<u>"):
            assert markup not in raw
        assert "&amp;lt;" not in raw  # escaped once, not twice
        page = _Page(raw)
        text = "".join(page.text)
        assert f"{head} (unknown evaluation)" in text
        assert any(f"Head {head!r} declares no evaluation" in n for n in report.notes)
        assert f"Head {head!r} declares no evaluation" in text
        assert description in page.text  # a cell of the params table, verbatim
        assert "<i>new</i>, plain" in page.text
        assert '{"name": "<img src=x onerror=alert(1)>"}' in page.text
        assert "by <u>me</u>" in text
        assert [tag for tag, _ in page.tags if tag in ("script", "b", "i", "u")] == []
        assert [a["src"] for tag, a in page.tags if tag == "img"] == ["loss.png"]


def test_the_base_layout_is_shared_by_other_pages():
    """A page other than the report (a console's, say) extends the same layout: its stylesheet, its title
    block, and autoescape whatever the template is called."""
    page = (
        environment()
        .from_string(
            '{% extends "report/base.html.j2" %}{% block title %}{{ name }}{% endblock %}'
            "{% block content %}<p>{{ name }}</p>{% endblock %}"
        )
        .render(name="<script>x</script>")
    )
    assert "<title>&lt;script&gt;x&lt;/script&gt;</title>" in page
    assert "<p>&lt;script&gt;x&lt;/script&gt;</p>" in page
    assert ".note { background: #fff6d5;" in page and "<script>" not in page
