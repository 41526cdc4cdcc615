"""`shopscore score`: score users with the version an alias points to."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from registry.cli.common import (
    echo_json,
    load_settings,
)

if TYPE_CHECKING:
    from registry.scoring import Score


@click.command("score")
@click.argument("user_ids", nargs=-1, required=True)
@click.option("--model", default="purchase", show_default=True)
@click.option("--alias", default="production", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per user.")
def score_command(user_ids: tuple[str, ...], model: str, alias: str, as_json: bool) -> None:
    """Score users with the model version ALIAS points to."""
    from registry.scoring import InvalidUserId, Scorer

    scorer = Scorer(load_settings())
    try:
        scores = scorer.score_many(list(user_ids), model=model, alias=alias)
    except InvalidUserId as exc:
        raise click.BadParameter(str(exc), param_hint="USER_IDS") from None
    for s in scores:
        if as_json:
            echo_json(s.to_dict())
        else:
            if s.feature_age_seconds is None:  # cold start: the scorer sets no age exactly then
                known = "unknown user (cold start)"
            else:
                known = f"features {s.feature_age_seconds / 3600:.1f}h old" + (", stale" if s.stale else "")
            click.echo(f"user {s.user_id}: {_answer_text(s)}  [{s.model} v{s.version} @{s.alias}, {known}]")


def _answer_text(s: Score) -> str:
    """E.g. `probability = 0.412`, `expected_spend = 35.20`, `top_categories shoes 0.41, bags 0.22`."""
    if isinstance(s.value, tuple):
        return f"{s.answer} " + ", ".join(f"{c.category} {c.probability:.2f}" for c in s.value)
    return f"{s.answer} = {s.value:.3f}" if abs(s.value) < 10 else f"{s.answer} = {s.value:,.2f}"
