"""Benchmarks run side by side with the peers; `python -m bench [--quick]`, see bench/README.md."""
