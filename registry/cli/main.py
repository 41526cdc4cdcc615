"""The root `shopscore` group: every command group of registry/cli/ hangs from it, and every error a user
can fix ends a command with one `Error: ...` line."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from registry import progress
from registry.cli import db, demo, events, features, models, plugins, report, score, serve, train
from registry.errors import user_message
from registry.settings import debug_enabled


class ShopscoreGroup(click.Group):
    """The root group: every error a user can fix ends the command with one `Error: ...` line.

    Usage errors (a bad option or argument) exit with 2, everything else with 1. An exception that
    `registry.errors.user_message` does not know is a bug: it is named in one line too, and SHOPSCORE_DEBUG=1
    shows the full traceback for any error.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if debug_enabled():
                raise
            message = user_message(exc)
            if message is None:
                message = (
                    f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())} (a bug in shopscore or a "
                    f"plugin; rerun with SHOPSCORE_DEBUG=1 for the traceback and report it)"
                )
            raise click.ClickException(message) from exc

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **kwargs: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **kwargs)
        try:
            # Not standalone, click returns the exit code of ctx.exit() / --help instead of exiting.
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            if debug_enabled():
                raise
            where = exc.ctx.command_path if exc.ctx else self.name
            click.echo(f"Error: {exc.format_message().rstrip('.')}; see `{where} --help`", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Error: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=ShopscoreGroup, name="shopscore")
@click.version_option(package_name="shopscore")
def main() -> None:
    """shopscore: shop events -> Feast features -> PyTorch models in a SQL registry -> score(user_id).

    Errors print one line; set SHOPSCORE_DEBUG=1 to see the traceback.
    """
    progress.show_progress()


for command in (
    events.events,
    features.features,
    train.train,
    score.score_command,
    report.report_command,
    models.models_group,
    db.db_group,
    plugins.plugins_command,
    demo.demo,
    serve.serve,
):
    main.add_command(command)
