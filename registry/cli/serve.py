"""`shopscore serve`: the HTTP API (FastAPI + uvicorn)."""

from __future__ import annotations

import click

from registry.settings import SERVING_CONFIG_VARIABLE


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1), help="uvicorn processes.")
@click.option(
    "--serving-config",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="YAML with per-model traffic split and shadow alias (default: $SHOPSCORE_SERVING_CONFIG).",
)
@click.option("--log-level", default="warning", show_default=True)
def serve(host: str, port: int, workers: int, serving_config: str | None, log_level: str) -> None:
    """Serve score(user_id), online features and alias moves over HTTP (FastAPI + uvicorn)."""
    import os

    import uvicorn

    if serving_config:
        os.environ[SERVING_CONFIG_VARIABLE] = serving_config  # read by each worker's app factory
    # The factory string (not an app object) lets uvicorn start several worker processes.
    uvicorn.run(
        "registry.serving.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
    )
