"""Performance benchmarks: time, throughput and memory of shopscore's steps."""
