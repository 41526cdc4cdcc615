"""`shopscore plugins`: the loaded plugins, their parts and options."""

from __future__ import annotations

from typing import Any

import click

from registry.cli.common import (
    echo_json,
)


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True)
def plugins_command(as_json: bool) -> None:
    """List loaded plugins, their packages, hooks, and the encoders and heads they registered."""
    from registry.plugin_host import Registered, load_plugins

    host = load_plugins()
    parts: dict[str, Registered[Any]] = {**host.encoders, **host.heads}
    listing: list[dict[str, Any]] = []
    for name, plugin in host.pm.list_name_plugin():
        package, version = host.packages.get(name, (None, None))
        listing.append(
            {
                "name": name,
                "package": package,
                "version": version,
                "hooks": sorted(h.name for h in host.pm.get_hookcallers(plugin) or []),
                "encoders": sorted(k for k, r in host.encoders.items() if r.plugin == name),
                "heads": sorted(k for k, r in host.heads.items() if r.plugin == name),
                "options": {
                    k: _options(r.cls.config_class) for k, r in sorted(parts.items()) if r.plugin == name
                },
            }
        )
    if as_json:
        echo_json(listing)
    else:
        for p in listing:
            click.echo(
                f"{p['name']} ({p['package']} {p['version']}): encoders={p['encoders']} heads={p['heads']}"
            )
            for part, options in p["options"].items():
                click.echo(f"  {part} options: " + (", ".join(f"{k}={v}" for k, v in options.items()) or "-"))


def _options(config_class: type) -> dict[str, Any]:
    """A part's config fields and their defaults (None: required, or set by training)."""
    from dataclasses import MISSING, fields

    def default(f: Any) -> Any:
        if f.default is not MISSING:
            return f.default
        return f.default_factory() if f.default_factory is not MISSING else None

    return {f.name: default(f) for f in fields(config_class) if not f.metadata.get("artifact_only")}
