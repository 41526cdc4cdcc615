"""Input checks, run before any transaction opens: a bad call is refused whole and nothing is written."""

from __future__ import annotations

import getpass
import json
import re
from datetime import date, datetime
from pathlib import PurePath
from typing import Any

from registry.model_registry.errors import InvalidInput
from registry.settings import actor_variable

# Model names become a directory in the artifact root, so they are restricted to path-safe characters.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Aliases start with a letter so they can never be mistaken for a version number on the CLI.
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")

# Lineage keys a version must record, and how each is checked.
REQUIRED_LINEAGE = (
    "feast_project",
    "feature_service",
    "feature_refs",
    "train_cutoffs",
    "test_cutoff",
    "horizon_days",
    "data_fingerprint",
    "encoder",
    "head",
    "plugins",
)
OPTIONAL_LINEAGE = ("valid_cutoff", "device", "code_version")
# Lineage keys stored as real (queried) columns, with their column lengths.
LINEAGE_COLUMNS = {"feast_project": 128, "feature_service": 128, "data_fingerprint": 128, "code_version": 64}


def model_name(name: object) -> str:
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
        raise InvalidInput(
            f"invalid model name {name!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a "
            f"letter or digit (it becomes a directory name in the artifact store)"
        )
    return name


def alias_name(alias: object) -> str:
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise InvalidInput(
            f"invalid alias {alias!r}: use 1-64 letters, digits, '_' or '-', starting with a letter "
            f"(e.g. 'production', 'staging', 'challenger')"
        )
    return alias


# Version numbers are stored as a signed 64-bit integer on every backend.
MAX_VERSION = 2**63 - 1


def version_number(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise InvalidInput(
            f"invalid version {version!r}: versions are whole numbers from 1 to {MAX_VERSION:,} "
            f"(`shopscore models show MODEL` lists them)"
        )
    return version


def reason_text(reason: object, *, what: str = "alias move") -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput(
            f"a {what} needs a non-empty reason (--reason / reason=); it goes into the audit log"
        )
    return reason.strip()


def default_actor() -> str:
    """Who is acting when no actor is given: $SHOPSCORE_ACTOR, else the login name."""
    try:
        return actor_variable() or getpass.getuser()
    except (KeyError, OSError):  # no login name, e.g. in a container running as an unnamed uid
        return "unknown"


def actor_name(actor: object | None) -> str:
    actor = default_actor() if actor is None else actor
    if not isinstance(actor, str) or not actor.strip() or len(actor) > 128:
        raise InvalidInput(f"invalid actor {actor!r}: pass a non-empty name of at most 128 characters")
    return actor.strip()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if hasattr(value, "tolist"):  # numpy arrays
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_document(value: object, what: str) -> dict[str, Any]:
    """`value` as a JSON-ready dict (dates as ISO strings), or InvalidInput naming the field."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a dict, not {type(value).__name__}")
    try:
        return json.loads(json.dumps(value, default=_json_default, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"{what} cannot be stored as JSON ({exc}); use strings, numbers, lists and dicts "
            f"(NaN and infinity are not allowed: store None instead)"
        ) from None


def metrics_document(metrics: object) -> dict[str, float | None]:
    document = json_document(metrics, "metrics")
    for name, value in document.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise InvalidInput(f"metric {name!r} is {value!r}; metrics must be numbers (or None)")
    return document


def lineage_document(lineage: object) -> dict[str, Any]:
    """Check the lineage keys every version must carry; returns it JSON-ready."""
    document = json_document(lineage, "lineage")
    missing = [key for key in REQUIRED_LINEAGE if document.get(key) in (None, "", [], {})]
    if missing:
        raise InvalidInput(
            f"lineage lacks {', '.join(missing)}; a version must record {', '.join(REQUIRED_LINEAGE)} "
            f"(optional: {', '.join(OPTIONAL_LINEAGE)})"
        )
    horizon = document["horizon_days"]
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise InvalidInput(f"lineage horizon_days must be a whole number of days >= 1, not {horizon!r}")
    refs = document["feature_refs"]
    if not isinstance(refs, list) or not all(isinstance(r, str) and r for r in refs):
        raise InvalidInput(f"lineage feature_refs must be a list of 'view:feature' strings, not {refs!r}")
    if not isinstance(document["train_cutoffs"], list):
        raise InvalidInput("lineage train_cutoffs must be a list of cutoff times")
    if not isinstance(document["plugins"], dict):
        raise InvalidInput("lineage plugins must map plugin name -> package version")
    for key, limit in LINEAGE_COLUMNS.items():
        value = document.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise InvalidInput(f"lineage {key} must be a string of at most {limit} characters, not {value!r}")
    return document
