"""What a user is told when something they asked for cannot be done: one line naming the problem and the fix.

Core modules raise their own precise exceptions (`registry.model_registry.errors`, `PluginError`, `SplitError`, ...),
each a `UserError` with a message that already names the fix. `user_message` is the one place that turns
an exception into the one line a user reads; the CLI prints it as `Error: ...`. Anything it
does not recognise is a bug, reported as such (SHOPSCORE_DEBUG=1 shows the traceback).
"""

from __future__ import annotations


class UserError(Exception):
    """A request the user can fix (bad data, a missing step, an impossible option); the message says how."""


class TrainingGridTooLarge(UserError):
    """The (user, cutoff) grid of a training set would not fit in memory."""


def user_message(exc: BaseException) -> str | None:
    """The one-line message for an error the user can fix; None for anything else (a bug)."""
    # Imported here: this module is imported by the CLI's entry point, which must start fast.
    from feast.errors import FeastObjectNotFoundException

    if isinstance(exc, UserError):
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
