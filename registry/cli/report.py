"""`shopscore report`: the HTML report of one model version."""

from __future__ import annotations

from pathlib import Path

import click

from registry.cli.common import echo_json, load_settings, version_ref
from registry.model_registry.store import ModelRegistry


@click.command("report")
@click.argument("model")
@click.argument("version")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for index.html and its PNGs [default: $SHOPSCORE_HOME/reports/MODEL-vVERSION].",
)
@click.option("--alias", default="production", show_default=True, help="Compare with the version holding it.")
@click.option("--json", "as_json", is_flag=True, help="Print the written paths as JSON.")
def report_command(model: str, version: str, out: Path | None, alias: str, as_json: bool) -> None:
    """Write an HTML report on VERSION (a number or an alias) of MODEL: curves, training, lineage, metrics."""
    from registry.report import write_report

    settings = load_settings()
    with ModelRegistry.open(settings=settings) as registry:
        record = registry.get_version(model, version_ref(registry, model, version))
        target = out or settings.home / "reports" / f"{model}-v{record.version}"
        written = write_report(registry, record, target, alias=alias)
    if as_json:
        echo_json(
            {
                "html": str(written.html),
                "images": [str(p) for p in written.images],
                "notes": list(written.notes),
            }
        )
        return
    for note in written.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {written.html} ({len(written.images)} images)")
