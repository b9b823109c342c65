"""Pareto fronts of a sweep: the points that no other point beats on both accuracy and cost."""

from __future__ import annotations

from collections.abc import Sequence


def pareto_front(costs: Sequence[float], accuracies: Sequence[float]) -> list[int]:
    """Indices of the points not dominated by any other (lower or equal cost and higher or equal accuracy, one of
    them strictly), ordered by cost. Of points with equal cost and accuracy, the first is kept."""
    if len(costs) != len(accuracies):
        raise ValueError("costs and accuracies differ in length")
    order = sorted(range(len(costs)), key=lambda i: (costs[i], -accuracies[i], i))
    front: list[int] = []
    best = float("-inf")
    for i in order:
        if accuracies[i] > best:
            front.append(i)
            best = accuracies[i]
    return front
