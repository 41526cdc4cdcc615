"""A shopscore model: one encoder plugin + one head plugin, saved as config.json + model.safetensors.

`save_pretrained(dir)` / `ShopModel.from_pretrained(dir)` follow Hugging Face's conventions: the config
names the plugins (and their package versions) and holds each part's config dataclass; the weights,
including fitted normalisation buffers, are a safetensors file. Nothing is pickled.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from registry.components import Encoder, Head, config_from_dict, config_to_dict
from registry.plugin_host import PluginError, PluginHost, Registered, building_with, default_host

FORMAT = "shopscore-model/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class ModelFormatError(ValueError):
    """A model directory is not a shopscore model, or was written by an incompatible version."""


class ShopModel(nn.Module):
    def __init__(
        self, encoder: Encoder, head: Head, *, feature_service: str, plugins: dict[str, Any]
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.feature_service = feature_service
        # {"encoder": {"name", "plugin", "package", "version"}, "head": {...}}: recorded for lineage.
        self.plugins = plugins

    @classmethod
    def build(
        cls,
        encoder_name: str,
        encoder_config: dict[str, Any],
        head_name: str,
        head_config: dict[str, Any],
        *,
        feature_service: str,
        host: PluginHost | None = None,
        seed: int = 0,
    ) -> ShopModel:
        """Build a fresh model from plugin names and config dicts; weights are initialised from `seed`."""
        host = host or default_host()
        enc, hd = host.encoder(encoder_name), host.head(head_name)
        with torch.random.fork_rng(devices=[]), building_with(host):
            torch.manual_seed(seed)
            with _blame("encoder", encoder_name, enc, encoder_config):
                encoder = enc.cls(config_from_dict(enc.cls.config_class, encoder_config))
            with _blame("head", head_name, hd, head_config):
                head = hd.cls(config_from_dict(hd.cls.config_class, head_config), encoder.output_dim)
        plugins: dict[str, Any] = {
            "encoder": _provenance(enc, encoder_name),
            "head": _provenance(hd, head_name),
        }
        parts = encoder.sub_encoders()
        if parts:
            plugins["encoder"]["parts"] = [_provenance(host.encoder(p.name), p.name) for p in parts]
        return cls(encoder, head, feature_service=feature_service, plugins=plugins)

    @property
    def features(self) -> list[str]:
        return self.encoder.features

    def forward(self, batch: dict[str, torch.Tensor], target: torch.Tensor | None = None):
        return self.head(self.encoder(batch), target)  # ((B,), loss | None)

    @torch.inference_mode()
    def predict_frame(self, frame: pd.DataFrame, *, batch_size: int = 4096) -> np.ndarray:
        """Predictions (e.g. probabilities) for each row of a feature frame, in order."""
        self.eval()
        device = next(self.parameters()).device
        out = []
        for start in range(0, len(frame), batch_size):
            batch = self.encoder.featurize(frame.iloc[start : start + batch_size])
            batch = {k: v.to(device) for k, v in batch.items()}
            logits, _ = self(batch)
            out.append(self.head.predict(logits).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    @torch.inference_mode()
    def predict_values(self, names: list[str], values: np.ndarray) -> np.ndarray:
        """Predictions for a (B, F) array whose columns are `names` (float, or object when list features are
        present): the serving hot path.

        Same answers as `predict_frame`, without building a pandas frame when the encoder offers
        `featurize_values(names, values)` (pandas costs more than the forward pass of a small model for one
        user); other encoders get a frame, so every plugin still works."""
        featurize_values = getattr(self.encoder, "featurize_values", None)
        if featurize_values is None or values.dtype == object:  # object: list features need the frame path
            return self.predict_frame(pd.DataFrame(values, columns=names, copy=False))
        device = next(self.parameters()).device
        batch = {k: v.to(device) for k, v in featurize_values(names, values).items()}
        logits, _ = self(batch)
        return self.head.predict(logits).cpu().numpy()

    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "format": FORMAT,
            "feature_service": self.feature_service,
            "encoder": {**self.plugins["encoder"], "config": config_to_dict(self.encoder.config)},
            "head": {**self.plugins["head"], "config": config_to_dict(self.head.config)},
        }
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": FORMAT})
        return directory

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, host: PluginHost | None = None, device: str | torch.device = "cpu"
    ) -> ShopModel:
        """Rebuild a saved model in eval mode. Refuses unknown formats and names a missing plugin package."""
        directory = Path(directory)
        config_path = directory / CONFIG_FILE
        if not config_path.is_file() or not (directory / WEIGHTS_FILE).is_file():
            raise ModelFormatError(
                f"{directory} is not a shopscore model (needs {CONFIG_FILE} and {WEIGHTS_FILE})"
            )
        config = json.loads(config_path.read_text())
        if config.get("format") != FORMAT:
            raise ModelFormatError(
                f"{config_path} has format {config.get('format')!r}; this shopscore reads {FORMAT!r}"
            )
        host = host or default_host()
        for part in ("encoder", "head"):
            _check_plugin(host, part, config[part])
        for saved_part in config["encoder"].get("parts", []):
            _check_plugin(host, "encoder", saved_part)
        model = cls.build(
            config["encoder"]["name"],
            config["encoder"]["config"],
            config["head"]["name"],
            config["head"]["config"],
            feature_service=config["feature_service"],
            host=host,
        )
        model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)), strict=True)
        return model.to(device).eval()


def _provenance(registered: Registered, name: str) -> dict[str, Any]:
    """What config.json records about a part's origin, checked again on load."""
    return {
        "name": name,
        "plugin": registered.plugin,
        "package": registered.package,
        "version": registered.package_version,
    }


def _check_plugin(host: PluginHost, part: str, saved: dict[str, Any]) -> None:
    table = host.encoders if part == "encoder" else host.heads
    if saved["name"] not in table:
        raise PluginError(
            f"this model needs {part} {saved['name']!r} from plugin {saved.get('plugin')!r} "
            f"(package {saved.get('package')!r} {saved.get('version') or ''}), which is not installed; "
            f"install that package (pip install {saved.get('package') or '<package>'}) to load it"
        )
    now = table[saved["name"]].package_version
    if saved.get("version") and now and now != saved["version"]:
        warnings.warn(
            f"{part} {saved['name']!r} was saved with {saved.get('package')} {saved['version']}, "
            f"installed is {now}; predictions may differ. Install {saved.get('package')}=={saved['version']} "
            f"to reproduce them exactly, or retrain and register a new version",
            stacklevel=3,
        )


@contextlib.contextmanager
def _blame(kind: str, name: str, registered: Registered, config: dict[str, Any]) -> Iterator[None]:
    """A part that cannot be built from its config fails naming the part, its plugin and the option to fix."""
    try:
        yield
    except PluginError:
        raise
    except Exception as exc:
        package = f", package {registered.package}" if registered.package else ""
        raise PluginError(
            f"{kind} {name!r} (plugin {registered.plugin!r}{package}) could not be built from its config "
            f"{json.dumps(config, default=str)[:200]}: {type(exc).__name__}: {exc}; check --{kind}-config "
            f"against the {kind}'s options (`shopscore plugins`, docs/plugins.md)"
        ) from exc
