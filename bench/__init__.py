"""Benchmarks for login-exporter: `python3 -m bench.run [--quick]` prints one table (see README)."""
