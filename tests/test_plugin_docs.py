"""Meta-tests (after datasette's): every hook is documented in docs/plugins.md, every hook has a test that
registers an implementation, the documentation's example plugin runs, the field contract in the docs is the
feature repo's, and plugins (the built-in ones too) import nothing from core but registry.plugin_api."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import tomllib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from registry import hookspecs
from registry.features.fields import feature_fields, markdown
from registry.features.training_set import LabelSpec, compute_labels, entity_rows
from registry.modeling.shop_model import ShopModel
from registry.modeling.training import TrainConfig, evaluate, fit
from registry.plugin_host import PluginHost

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs" / "plugins.md"
HOOKS = sorted(name for name, obj in vars(hookspecs).items() if hasattr(obj, "shopscore_spec"))


def signature(hook: str) -> str:
    return f"{hook}({', '.join(inspect.signature(getattr(hookspecs, hook)).parameters)})"


def test_the_hooks_the_design_promises_exist():
    promised = {
        "register_encoders",
        "register_heads",
        "on_model_registered",
        "on_alias_changed",
        "check_promotion",
    }
    assert promised <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook: str):
    headings = re.findall(r"^#+ (\w+\(.*\))\s*$", DOCS.read_text(), flags=re.MULTILINE)
    assert signature(hook) in headings, (
        f"hook {hook} has no heading `### {signature(hook)}` in docs/plugins.md; document what it receives, "
        f"returns and when it fires"
    )


def _implemented_in_tests() -> set[str]:
    """Names of functions decorated with @hookimpl (possibly under other decorators) in test modules."""
    found: set[str] = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        if path.name == Path(__file__).name:
            continue
        found |= set(re.findall(r"@hookimpl[^\n]*\n(?:\s*@[^\n]*\n)*\s*def (\w+)\(", path.read_text()))
    return found


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook: str):
    assert hook in _implemented_in_tests(), (
        f"no test in tests/ registers an implementation of {hook}; add one that shows it is called"
    )


def _code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)


def test_example_plugin_in_the_docs_works(tmp_path: Path):
    module_file = tmp_path / "acme_shopscore.py"
    module_file.write_text(_code_blocks("python")[0])
    spec = importlib.util.spec_from_file_location("acme_shopscore", module_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    host = PluginHost()
    host.add(module, "acme", package="shopscore-acme", version="0.1.0")
    assert host.encoder("linear").plugin == "acme" and host.head("churn").plugin == "acme"

    # Its label: 1 for the users who buy nothing after the cutoff, within the horizon.
    from helpers import random_events

    events = random_events(n=3000, users=300, days=60)
    cutoffs = [pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(days=7 * k) for k in range(4)]
    rows = entity_rows(events, cutoffs)
    churn = module.ChurnHead
    rows["label_churn"] = compute_labels(events, rows, 7, LabelSpec(churn.label, churn.compute_label))
    for cutoff, group in rows.groupby("event_timestamp"):
        window = events[
            (events["event_time"] > cutoff) & (events["event_time"] <= cutoff + pd.Timedelta(days=7))
        ]
        buyers = set(window.loc[window["event_type"] == "purchase", "user_id"])
        assert (group["label_churn"] == (~group["user_id"].isin(buyers)).astype(float)).all()
    assert 0 < rows["label_churn"].mean() < 1

    # Trained on features that carry signal, it is evaluated on its own target.
    rng = np.random.default_rng(0)
    rows["a"] = rows["label_churn"] * 2 + rng.normal(size=len(rows))
    rows["b"] = rng.normal(size=len(rows)) ** 2
    model = ShopModel.build("linear", {"features": ["a", "b"]}, "churn", {}, feature_service="s", host=host)
    train, valid = rows[rows["event_timestamp"] < cutoffs[3]], rows[rows["event_timestamp"] == cutoffs[3]]
    fitted = fit(model, train, valid, TrainConfig(epochs=20, progress=False)).model
    metrics = evaluate(fitted, valid, "test")
    assert metrics["test_roc_auc"] > 0.7 and metrics["test_base_rate"] == pytest.approx(
        valid["label_churn"].mean()
    )
    answers = fitted.answers(fitted.predict_frame(valid.head(3)), check=True)
    assert all(0 < a < 1 for a in answers)

    weak = SimpleNamespace(metrics={"test_roc_auc": 0.55})
    assert host.check_promotion(weak, None) == [
        "plugin 'acme': test ROC-AUC 0.550 is below Acme's floor of 0.6"
    ]
    assert host.check_promotion(SimpleNamespace(metrics={"test_roc_auc": 0.7}), None) == []

    pyproject = tomllib.loads(_code_blocks("toml")[0])
    assert pyproject["project"]["entry-points"]["shopscore"] == {"acme": "acme_shopscore"}


def test_the_field_contract_in_the_docs_is_the_feature_repos():
    block = re.search(r"<!-- fields:start -->\n(.*?)<!-- fields:end -->", DOCS.read_text(), flags=re.DOTALL)
    assert block, "docs/plugins.md lost its <!-- fields:start --> ... <!-- fields:end --> block"
    assert block.group(1) == markdown(feature_fields(ROOT / "feature_repo")), (
        "the feature repo's fields changed: paste `shopscore features fields` into docs/plugins.md"
    )


def _core_imports(path: Path) -> set[str]:
    """Every module under `registry` that a file imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "registry":
            found.add(
                node.module
                if node.module != "registry"
                else "registry (" + ", ".join(a.name for a in node.names) + ")"
            )
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "registry"}
    return found


@pytest.mark.parametrize(
    "path",
    sorted([*(ROOT / "plugins").glob("*.py"), ROOT / "tests" / "outside_plugin" / "acme_shopscore.py"]),
    ids=lambda p: p.name,
)
def test_plugins_import_only_the_public_plugin_api(path: Path):
    imported = _core_imports(path) - {"registry.plugin_api"}
    assert not imported, (
        f"{path.relative_to(ROOT)} imports {sorted(imported)}; import from registry.plugin_api"
    )


def test_the_docs_document_only_the_public_plugin_api():
    text = DOCS.read_text()
    # registry.md is a document, not a module.
    public = r"plugin_api\b|modeling\.shop_model\.ShopModel\b|flow\.train\b|md\b"
    private = set(re.findall(rf"registry\.(?!{public})[a-z_.]+", text))
    assert not private, f"docs/plugins.md points plugin authors at non-public modules: {sorted(private)}"
    python = _code_blocks("python")[0]
    assert re.findall(r"^from registry[.\w]* import", python, flags=re.MULTILINE) == [
        "from registry.plugin_api import"
    ]
