"""What a user is told when something they asked for cannot be done: one line naming the problem and the fix.

Core modules raise their own precise exceptions (`registry.db.errors`, `PluginError`, `SplitError`, ...),
each with a message that already names the fix. `user_message` is the one place that decides which
exceptions are the user's to fix and says so in one line; the CLI prints it as `Error: ...`. Anything it
does not recognise is a bug, reported as such (SHOPSCORE_DEBUG=1 shows the traceback).
"""

from __future__ import annotations

import os


class UserError(Exception):
    """A request the user can fix (bad data, a missing step, an impossible option); the message says how."""


class TrainingGridTooLarge(UserError):
    """The (user, cutoff) grid of a training set would not fit in memory."""


def debug_enabled() -> bool:
    """SHOPSCORE_DEBUG=1 (or any value but 0/empty) shows tracebacks instead of one-line errors."""
    return os.environ.get("SHOPSCORE_DEBUG", "").strip() not in ("", "0")


def user_message(exc: BaseException) -> str | None:
    """The one-line message for an error the user can fix; None for anything else (a bug)."""
    # Imported here: this module is imported by the CLI's entry point, which must start fast.
    from feast.errors import FeastObjectNotFoundException

    from registry.db.errors import RegistryError
    from registry.events.importers import ImportFormatError
    from registry.events.schema import EventSchemaError
    from registry.features.store import FeatureRepoError
    from registry.modeling import ModelFormatError
    from registry.plugin_host import PluginError
    from registry.scoring import InvalidUserId
    from registry.serving.config import ServingConfigError
    from registry.training import SplitError

    ours = (
        UserError,
        RegistryError,
        PluginError,
        SplitError,
        FeatureRepoError,
        EventSchemaError,
        ImportFormatError,
        ModelFormatError,
        InvalidUserId,
        ServingConfigError,
    )
    if isinstance(exc, ours):
        return _one_line(str(exc))
    if isinstance(exc, FeastObjectNotFoundException):
        return _one_line(
            f"{exc}; run `shopscore features apply` after `shopscore features build`, and check the name "
            f"(`shopscore train --help` lists the feature services)"
        )
    if _is_redis_unreachable(exc):
        return _one_line(
            f"cannot reach the Redis online store ({exc}); start Redis or fix the address in the "
            f"`redis` Feast profile (SHOPSCORE_FEAST_PROFILE), or unset SHOPSCORE_FEAST_PROFILE for SQLite"
        )
    if isinstance(exc, FileNotFoundError):
        return _one_line(f"{exc}; check the path, or run the step that writes it first")
    if isinstance(exc, MemoryError):
        return "out of memory; use fewer training cutoffs (--train-cutoffs) or fewer users"
    return None


def _is_redis_unreachable(exc: BaseException) -> bool:
    # redis is an optional dependency (the `redis` extra), so its classes are matched by name.
    names = {f"{c.__module__}.{c.__name__}" for c in type(exc).__mro__}
    return bool(names & {"redis.exceptions.ConnectionError", "redis.exceptions.TimeoutError"})


def _one_line(text: str) -> str:
    return " ".join(text.split())
