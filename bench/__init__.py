"""Benchmarks (not shipped)."""
