"""`import registry` exposes the documented API without importing torch until a model part is asked for."""

from __future__ import annotations

import subprocess
import sys

import registry


def test_every_exported_name_resolves():
    assert set(registry.__all__) == set(registry._LAZY) | {"hookimpl"}
    for name in registry.__all__:
        assert getattr(registry, name) is not None


def test_import_registry_does_not_load_torch():
    code = "import sys, registry; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
