"""What every `shopscore` command shares: settings, output (text, tables, JSON) and the registry options.

One convention for all commands: `--json` prints one compact JSON document per line (pipe it to `jq` to
read it), errors are raised and turned into one `Error: ...` line by the root group (registry.cli.main).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from registry.model_registry.store import ModelRegistry
from registry.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def load_settings() -> Settings:
    return Settings.from_env()


def echo_json(payload: Any) -> None:
    click.echo(json.dumps(payload, default=str))


def emit(as_json: bool, payload: Any, text: str | Callable[[], str]) -> None:
    """`payload` as JSON with --json, else `text` (a callable is only called when text is printed)."""
    if as_json:
        echo_json(payload)
    else:
        click.echo(text() if callable(text) else text)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def database_options(func: F) -> F:
    """--database-url and --json on every command of the model registry."""
    func = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(func)
    func = click.option(
        "--database-url",
        "url",
        envvar="SHOPSCORE_DATABASE_URL",
        default=None,
        help="Registry database URL [default: $SHOPSCORE_DATABASE_URL, else $SHOPSCORE_HOME/registry.db].",
    )(func)
    return func


def resolve_url(url: str | None) -> str:
    return url or Settings.from_env().database_url


@contextmanager
def open_registry(url: str | None = None, **kwargs: Any) -> Iterator[ModelRegistry]:
    registry = ModelRegistry.open(resolve_url(url), **kwargs)
    try:
        yield registry
    finally:
        registry.close()


def version_ref(registry: ModelRegistry, model: str, ref: str) -> int:
    """A version number, or the number an alias points at (`show m production`, `promote m staging ...`)."""
    return int(ref) if ref.isdigit() else registry.resolve(model, ref).version
