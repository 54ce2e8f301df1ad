"""Benchmarks that print numbers: each module is a small CLI (`python -m bench.<name> --help`) and importable."""
