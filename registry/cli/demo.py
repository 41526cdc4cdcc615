"""`shopscore demo`: the whole flow on embedded defaults."""

from __future__ import annotations

import click

from registry.cli.common import (
    load_settings,
)


@click.command("demo")
@click.option("--users", default=3000, show_default=True)
@click.option("--days", default=90, show_default=True)
@click.option("--seed", default=7, show_default=True)
def demo(users: int, days: int, seed: int) -> None:
    """Run the whole flow on embedded defaults: events -> features -> Feast -> train -> register -> promote -> score."""
    from registry.demo import run_demo

    run_demo(
        load_settings(),
        users=users,
        days=days,
        seed=seed,
        echo=click.echo,
        run_cli=lambda args: (
            click.get_current_context().find_root().command.main(args, standalone_mode=False)
        ),
    )
