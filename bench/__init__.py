"""Benchmarks for Streamlet against the embedded local platform (``python -m bench.bench_core``)."""
