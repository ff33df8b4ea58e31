"""Benchmarks and evaluations of `monitor`, run as ``python -m benchmarks.<name>``."""
