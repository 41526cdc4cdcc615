"""shopscore's benchmarks (perf/, quality/) and one-question experiments (experiments/), run as modules from
the repository root, e.g. `.venv/bin/python -m bench.perf.score`; bench/README.md lists every one."""
