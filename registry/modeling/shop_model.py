"""A shopscore model: one encoder plugin + one head plugin, saved as config.json + model.safetensors.

`ShopModel` is also the boundary between core and plugin code: every call into a part goes through one of
its methods, which check what the part returns (the encoder's `(B, output_dim)` floating-point output, one
answer per row of the declared type) and turn any exception into a PluginError naming the plugin, its
package, the part and the method.

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

from registry.errors import UserError
from registry.modeling.parts import Encoder, Head, config_from_dict, config_to_dict
from registry.plugin_host import (
    PluginError,
    PluginHost,
    Registered,
    building_with,
    default_host,
    describe_plugin,
    disable_hint,
)
from registry.settings import plugin_selection_set

FORMAT = "shopscore-model/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class ModelFormatError(UserError, ValueError):
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
            with _building("encoder", encoder_name, enc, encoder_config):
                encoder = enc.cls(config_from_dict(enc.cls.config_class, encoder_config))
            with _building("head", head_name, hd, head_config):
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

    # ---- calls into the parts, each checked and blamed on its plugin -----------------------------------
    def _blame(self, part: str, method: str) -> _Blame:
        return _Blame(part, self.plugins[part], method)

    def featurize(self, frame: pd.DataFrame) -> dict[str, torch.Tensor]:
        with self._blame("encoder", "featurize"):
            batch = self.encoder.featurize(frame)
            if not isinstance(batch, dict) or not all(isinstance(v, torch.Tensor) for v in batch.values()):
                raise TypeError(f"featurize must return a dict of tensors, not {type(batch).__name__}")
            return batch

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The encoder's `(B, output_dim)` representation, checked (B: the batch's first dimension)."""
        with self._blame("encoder", "forward"):
            h = self.encoder(batch)
            rows = len(next(iter(batch.values()))) if batch else None
            if (
                not (isinstance(h, torch.Tensor) and h.is_floating_point())
                or h.dim() != 2
                or (h.shape[1] != self.encoder.output_dim or (rows is not None and h.shape[0] != rows))
            ):
                shape = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
                dtype = f" {h.dtype}" if isinstance(h, torch.Tensor) else ""
                raise TypeError(
                    f"forward returned {shape}{dtype}; an encoder must return a floating-point tensor of shape "
                    f"(batch rows, output_dim) = ({rows}, {self.encoder.output_dim})"
                )
            return h

    def forward(self, batch: dict[str, torch.Tensor], target: torch.Tensor | None = None):
        h = self.encode(batch)
        with self._blame("head", "forward"):
            return self.head(h, target)  # (raw outputs, loss | None)

    def labelled(self, frame: pd.DataFrame) -> pd.DataFrame:
        with self._blame("head", "labelled"):
            return self.head.labelled(frame)

    def target(self, frame: pd.DataFrame) -> torch.Tensor:
        with self._blame("head", "target"):
            return self.head.target(frame)

    def fit_encoder(self, frame: pd.DataFrame) -> None:
        with self._blame("encoder", "fit"):
            self.encoder.fit(frame)

    def calibrate(self, outputs: torch.Tensor, target: torch.Tensor) -> None:
        with self._blame("head", "calibrate"):
            self.head.calibrate(outputs, target)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        with self._blame("head", "predict"):
            return self.head.predict(outputs)

    def metrics(self, target: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
        with self._blame("head", "metrics"):
            return {k: float(v) for k, v in self.head.metrics(target, predictions).items()}

    def answers(self, predictions: np.ndarray, *, check: bool = False) -> list[Any]:
        """One answer per row; with `check`, each is checked against the head's declared answer type."""
        with self._blame("head", "answers"):
            answers = self.head.answers(predictions)
            if len(answers) != len(predictions):
                raise ValueError(f"answers returned {len(answers)} answers for {len(predictions)} rows")
            if check:
                answer = self.head.answer
                for value in answers:
                    if (problem := answer.type.problem(value)) is not None:
                        raise TypeError(
                            f"answer {answer.name!r} must be {answer.type.description}: {problem}"
                        )
            return answers

    def check_parts(self, batch: dict[str, torch.Tensor]) -> None:
        """Run one batch through both parts and check every output (first training batch, loading to serve)."""
        with torch.no_grad():
            outputs, _ = self(batch)
            self.answers(self.predict(outputs.float()).cpu().numpy(), check=True)

    def self_check(self) -> None:
        """Check the parts on two users the online store knows nothing about (every feature null), which any
        served model must answer: a model that fails is refused before it serves."""
        self.eval()
        probe = pd.DataFrame({name: [None, None] for name in self.features}, dtype=object)
        device = next(self.parameters()).device
        self.check_parts({k: v.to(device) for k, v in self.featurize(probe).items()})

    @torch.inference_mode()
    def predict_frame(self, frame: pd.DataFrame, *, batch_size: int = 4096) -> np.ndarray:
        """Predictions (e.g. probabilities) for each row of a feature frame, in order."""
        self.eval()
        device = next(self.parameters()).device
        out = []
        for start in range(0, len(frame), batch_size):
            batch = self.featurize(frame.iloc[start : start + batch_size])
            batch = {k: v.to(device) for k, v in batch.items()}
            logits, _ = self(batch)
            out.append(self.predict(logits).cpu().numpy())
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
        with self._blame("encoder", "featurize_values"):
            batch = {k: v.to(device) for k, v in featurize_values(names, values).items()}
        logits, _ = self(batch)
        return self.predict(logits).cpu().numpy()

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


def blame(registered: Registered, part: str, method: str) -> _Blame:
    """For core calling a part's class-level method (compute_label, config_from_data, select_features):
    an exception inside becomes a PluginError naming the plugin, the part and the method."""
    return _Blame(part, _provenance(registered, registered.cls.name), method)


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
            + (
                f", or take {saved.get('plugin')!r} out of SHOPSCORE_DISABLE_PLUGINS / add it to "
                f"SHOPSCORE_LOAD_PLUGINS"
                if plugin_selection_set()
                else ""
            )
        )
    now = table[saved["name"]].package_version
    if saved.get("version") and now and now != saved["version"]:
        warnings.warn(
            f"{part} {saved['name']!r} was saved with {saved.get('package')} {saved['version']}, "
            f"installed is {now}; predictions may differ. Install {saved.get('package')}=={saved['version']} "
            f"to reproduce them exactly, or retrain and register a new version",
            stacklevel=3,
        )


class _Blame:
    """Turns an exception raised inside a part's method into one PluginError naming plugin, part and method
    (a plain class, not a generator: it runs on the serving hot path)."""

    __slots__ = ("part", "info", "method")

    def __init__(self, part: str, info: dict[str, Any], method: str) -> None:
        self.part, self.info, self.method = part, info, method

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None or isinstance(exc, PluginError) or not isinstance(exc, Exception):
            return
        plugin = self.info.get("plugin") or "?"
        who = describe_plugin(plugin, self.info.get("package"), self.info.get("version"))
        raise PluginError(
            f"{self.part} {self.info.get('name')!r} of {who} failed in {self.method}: {type(exc).__name__}: {exc}; "
            f"{disable_hint(plugin)}"
        ) from exc


@contextlib.contextmanager
def _building(kind: str, name: str, registered: Registered, config: dict[str, Any]) -> Iterator[None]:
    """A part that cannot be built from its config fails naming the part, its plugin and the option to fix."""
    try:
        yield
    except PluginError:
        raise
    except Exception as exc:
        package = f", package {registered.package}" if registered.package else ""
        raise PluginError(
            f"{kind} {name!r} (plugin {registered.plugin!r}{package}) could not be built from its config: "
            f"{type(exc).__name__}: {exc}; check --{kind}-config against the {kind}'s options "
            f"(`shopscore plugins`, docs/plugins.md). The config was {_shortened(config)}"
        ) from exc


def _shortened(config: dict[str, Any]) -> str:
    """The config as JSON, long lists (a service's feature names) cut to their first few entries."""
    short = {
        k: (v[:3] + [f"... {len(v) - 3} more"] if isinstance(v, list) and len(v) > 4 else v)
        for k, v in config.items()
    }
    return json.dumps(short, default=str)
