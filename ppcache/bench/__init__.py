"""Benchmark harness: speed/quality tables, Pareto plots and peers side by side."""
