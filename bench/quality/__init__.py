"""Quality benchmarks: how well shopscore's models predict, against peers and ablations."""
