"""Benchmarks: each asserts its answer and sits in a group beside its baseline."""
