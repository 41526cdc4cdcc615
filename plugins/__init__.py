"""First-party shopscore plugins. Core finds them through the `shopscore` entry-point group only."""
