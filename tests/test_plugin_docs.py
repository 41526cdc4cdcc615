"""Meta-tests (after datasette's): every hook is documented in docs/plugins.md, every hook has a test that
registers an implementation, and the documentation's example plugin runs."""

from __future__ import annotations

import importlib.util
import inspect
import re
import tomllib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pluggy
import pytest

from registry import hookspecs
from registry.components import Encoder, Head
from registry.db.hooks import collect_vetoes
from registry.modeling import ShopModel
from registry.plugin_host import PluginHost, _collect

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

    import plugins.purchase

    pm = pluggy.PluginManager("shopscore")
    pm.add_hookspecs(hookspecs)
    pm.register(module, name="acme")
    pm.register(plugins.purchase, name="purchase")
    pm.check_pending()
    host = PluginHost(pm)
    _collect(host, "encoder", Encoder, host.encoders)
    _collect(host, "head", Head, host.heads)
    assert host.encoder("linear").plugin == "acme"

    model = ShopModel.build(
        "linear", {"features": ["a", "b"]}, "purchase", {}, feature_service="s", host=host
    )
    probabilities = model.predict_frame(pd.DataFrame({"a": [1.0, np.nan], "b": [0.0, 3.0]}))
    assert probabilities.shape == (2,) and ((0 < probabilities) & (probabilities < 1)).all()

    weak = SimpleNamespace(metrics={"test_roc_auc": 0.55})
    assert collect_vetoes(pm, weak, None) == [
        "plugin 'acme': test ROC-AUC 0.550 is below Acme's floor of 0.6"
    ]
    assert collect_vetoes(pm, SimpleNamespace(metrics={"test_roc_auc": 0.7}), None) == []

    pyproject = tomllib.loads(_code_blocks("toml")[0])
    assert pyproject["project"]["entry-points"]["shopscore"] == {"acme": "acme_shopscore"}
