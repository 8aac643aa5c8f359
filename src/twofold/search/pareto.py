"""Pareto front of two objectives over arrays, vectorised (one sort, no pairwise loop)."""

from __future__ import annotations

import numpy as np

__all__ = ["pareto_front"]


def pareto_front(cost: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Indices of the points no other point dominates, ordered by ascending cost.

    Point j dominates i when cost_j <= cost_i and gain_j >= gain_i with at least one strict (here:
    lower memory per chip is better, higher throughput is better). Points with equal cost and gain
    are all kept. Derivation of the single pass: sort by cost ascending, gain descending; within a
    group of equal cost only the group's best gain survives, and it survives only if it beats the
    best gain of every strictly cheaper group, which is the running maximum at the group's start.
    O(n log n) instead of the O(n^2) pairwise definition; a test checks it against that definition.
    """
    cost = np.asarray(cost, dtype=float)
    gain = np.asarray(gain, dtype=float)
    if cost.shape != gain.shape or cost.ndim != 1:
        raise ValueError("cost and gain must be 1-D arrays of the same length")
    if cost.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((-gain, cost))
    c, g = cost[order], gain[order]
    starts = np.r_[True, c[1:] != c[:-1]]
    group = np.cumsum(starts) - 1
    start_idx = np.flatnonzero(starts)
    running = np.maximum.accumulate(g)
    best_cheaper = np.where(start_idx > 0, running[np.maximum(start_idx - 1, 0)], -np.inf)[group]
    group_best = g[start_idx][group]
    keep = (g == group_best) & (g > best_cheaper)
    return np.asarray(order[keep].astype(np.int64))
