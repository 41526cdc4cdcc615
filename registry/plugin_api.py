"""The public plugin API: everything a plugin package (the built-in ones included) imports from shopscore.

    from registry.plugin_api import Encoder, Head, hookimpl, Answer, PROBABILITY, BINARY, LabelWindow

Nothing else in `registry` is part of the contract with plugins; docs/plugins.md documents exactly this
module. Parts are checked where core calls them (registry.modeling.shop_model): a plugin that breaks the contract, or
raises, is reported by a PluginError naming the plugin, its package, the part and the method.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.events.schema import COLUMNS as EVENT_COLUMNS
from registry.events.schema import EVENT_TYPES
from registry.features.contract import (
    CATEGORY_BUCKETS,
    LAST_QUERIES,
    NO_PREVIOUS_EVENT,
    PRICE_BUCKETS,
    PURCHASE_SEQ_SERVICE,
    QUERY_COUNT,
    SEQ_CATEGORY,
    SEQ_EVENT_TYPE,
    SEQ_PRICE_BUCKET,
    SEQ_SECONDS_SINCE_PREV,
    SEQUENCE_LENGTH,
    SEQUENCE_VIEW,
    event_type_id,
    sequence_columns,
)
from registry.features.fields import FeatureField, feature_fields
from registry.hookspecs import hookimpl
from registry.modeling.metrics import (
    best_f1_threshold,
    binary_metrics,
    regression_metrics,
    top_k_accuracy,
)
from registry.modeling.parts import Encoder, Head, config_from_dict, config_to_dict
from registry.modeling.tasks import (
    AMOUNT,
    BINARY,
    CATEGORIES,
    NUMBER,
    PROBABILITY,
    RANKED_CATEGORIES,
    REGRESSION,
    Answer,
    AnswerType,
    CategoryProbability,
    Evaluation,
    LabelWindow,
)
from registry.plugin_host import PluginError, active_host

if TYPE_CHECKING:  # what the lifecycle and promotion hooks receive
    from registry.model_registry.records import AliasEvent, ModelVersion

__all__ = [
    "AMOUNT",
    "BINARY",
    "CATEGORIES",
    "CATEGORY_BUCKETS",
    "EVENT_COLUMNS",
    "EVENT_TYPES",
    "LAST_QUERIES",
    "NO_PREVIOUS_EVENT",
    "NUMBER",
    "PRICE_BUCKETS",
    "PROBABILITY",
    "PURCHASE_SEQ_SERVICE",
    "QUERY_COUNT",
    "RANKED_CATEGORIES",
    "REGRESSION",
    "SEQUENCE_LENGTH",
    "SEQUENCE_VIEW",
    "SEQ_CATEGORY",
    "SEQ_EVENT_TYPE",
    "SEQ_PRICE_BUCKET",
    "SEQ_SECONDS_SINCE_PREV",
    "AliasEvent",
    "Answer",
    "AnswerType",
    "CategoryProbability",
    "Encoder",
    "Evaluation",
    "FeatureField",
    "Head",
    "LabelWindow",
    "ModelVersion",
    "PluginError",
    "best_f1_threshold",
    "binary_metrics",
    "build_encoder",
    "config_from_dict",
    "config_to_dict",
    "event_type_id",
    "feature_fields",
    "hookimpl",
    "regression_metrics",
    "sequence_columns",
    "top_k_accuracy",
]


def build_encoder(name: str, config: dict[str, Any]) -> Encoder:
    """An encoder registered by any plugin, built from its config dict: for encoders made of other encoders
    (the built-in `concat`). Uses the plugins of the model being built."""
    registered = active_host().encoder(name)
    return registered.cls(config_from_dict(registered.cls.config_class, config))


def __getattr__(name: str) -> Any:
    if name in ("AliasEvent", "ModelVersion"):  # records of the SQL registry: imported only when asked for
        from registry.model_registry import records

        return getattr(records, name)
    raise AttributeError(f"module 'registry.plugin_api' has no attribute {name!r}")
