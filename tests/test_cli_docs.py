"""The CLI and its documentation agree both ways, so a merge can never silently drop a command again."""

from __future__ import annotations

import re
from pathlib import Path

import click

from registry.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def command_paths(group: click.Group = main, prefix: tuple[str, ...] = ()) -> set[str]:
    """Every runnable command of `shopscore`, e.g. {'events import', 'models promote', 'train', ...}."""
    paths = set()
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            paths |= command_paths(command, (*prefix, name))
        else:
            paths.add(" ".join((*prefix, name)))
    return paths


def flow_table_commands() -> set[str]:
    """The command path of each `shopscore ...` in the README's flow table."""
    text = README.read_text()
    table = text[text.index("## The flow") :].split("\n## ", 1)[0]
    words = {tuple(m.split()) for m in re.findall(r"`shopscore ([a-z][a-z ]*[a-z])", table)}
    paths = command_paths()
    return {" ".join(w[:2]) if " ".join(w[:2]) in paths else w[0] for w in words}


def test_every_command_in_the_readme_flow_table_exists() -> None:
    named = flow_table_commands()
    assert {"events import", "events generate", "train", "score", "models promote"} <= named
    assert named - command_paths() == set()


def test_every_command_is_documented_in_the_readme_or_docs() -> None:
    docs = README.read_text() + "".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))
    undocumented = sorted(p for p in command_paths() if f"shopscore {p}" not in docs)
    assert undocumented == [], f"document these commands in README.md or docs/: {undocumented}"


def test_real_data_is_the_first_row_of_the_flow_table() -> None:
    text = README.read_text()
    first_row = text[text.index("## The flow") :].split("| --- |", 1)[1].splitlines()[1]
    assert "`shopscore events import" in first_row
