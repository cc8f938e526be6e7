"""Benchmarks: run each as `python -m bench.NAME --help`; results in bench/RESULTS.md."""
