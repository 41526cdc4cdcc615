"""The `shopscore` command line: one module per command group, thin adapters over registry.flow, the model
registry and the scorer. `main` (registry.cli.main) is the entry point."""

from registry.cli.main import main

__all__ = ["main"]
