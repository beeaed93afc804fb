"""Benchmarks that print figures. `python -m bench` measures the dashboard read (bench/RESULTS.md)."""
