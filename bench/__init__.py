"""Benchmarks for camnode: load generator, naive baseline server, runner (`python -m bench.run`)."""
