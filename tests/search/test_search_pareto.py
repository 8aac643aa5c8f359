"""The vectorised Pareto front against the O(n^2) definition of dominance."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from twofold.search.pareto import pareto_front


def _brute_force(cost: list[float], gain: list[float]) -> set[int]:
    """i is on the front iff no j has cost_j <= cost_i and gain_j >= gain_i, one of them strict."""
    n = len(cost)
    return {
        i
        for i in range(n)
        if not any(
            cost[j] <= cost[i] and gain[j] >= gain[i] and (cost[j] < cost[i] or gain[j] > gain[i])
            for j in range(n)
        )
    }


# Few distinct values so that ties in cost, in gain and in both are common.
values = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=0, max_size=40)


@settings(max_examples=200, deadline=None)
@given(values)
def test_front_equals_pairwise_definition(points: list[tuple[int, int]]) -> None:
    cost = [float(c) for c, _ in points]
    gain = [float(g) for _, g in points]
    front = pareto_front(np.asarray(cost), np.asarray(gain))
    assert set(front.tolist()) == _brute_force(cost, gain)
    assert len(front) == len(set(front.tolist()))
    assert np.all(np.diff(np.asarray(cost)[front]) >= 0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1e3), st.floats(0, 1e6)), min_size=1, max_size=60))
def test_front_on_continuous_values(points: list[tuple[float, float]]) -> None:
    cost = [c for c, _ in points]
    gain = [g for _, g in points]
    assert set(pareto_front(np.asarray(cost), np.asarray(gain)).tolist()) == _brute_force(cost, gain)


def test_hand_example() -> None:
    # (memory, throughput): (1, 1) and (3, 5) and (2, 4) are optimal; (2, 1) is beaten by (2, 4),
    # (4, 5) by (3, 5), (5, 0) by everything.
    cost = np.array([1, 2, 3, 4, 5, 2], dtype=float)
    gain = np.array([1, 1, 5, 5, 0, 4], dtype=float)
    assert pareto_front(cost, gain).tolist() == [0, 5, 2]
