"""Sufficient statistics as values: the loop adds the statistics of chunks and online EM scales
them, field by field, without knowing what a model's statistics hold."""

from __future__ import annotations

from typing import Any


def add_statistics(a: Any, b: Any) -> Any:
    """Add two sufficient statistics: tuples (and NamedTuples) and dicts field by field,
    anything else with ``+``."""
    if isinstance(a, tuple):
        return type(a)(*map(add_statistics, a, b)) if hasattr(a, "_fields") else tuple(
            map(add_statistics, a, b))
    if isinstance(a, dict):
        return {key: add_statistics(a[key], b[key]) for key in a}
    return a + b


def scale_statistics(stats: Any, factor: float) -> Any:
    """Statistics with every row weight multiplied by ``factor``: tuples (and NamedTuples) and
    dicts field by field, objects with a ``scaled(factor)`` method by it, anything else with
    ``*`` (used by online EM to average statistics)."""
    if hasattr(stats, "scaled"):
        return stats.scaled(factor)
    if isinstance(stats, tuple):
        scaled = [scale_statistics(value, factor) for value in stats]
        return type(stats)(*scaled) if hasattr(stats, "_fields") else tuple(scaled)
    if isinstance(stats, dict):
        return {key: scale_statistics(value, factor) for key, value in stats.items()}
    return stats * factor


__all__ = ["add_statistics", "scale_statistics"]
