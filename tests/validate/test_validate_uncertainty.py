"""The builder of `estimate/uncertainty.yaml` (`validate.uncertainty`): the conformal quantile against
a hand computation (Angelopoulos & Bates, arXiv 2107.07511, eq. 1), monotone levels, determinism."""

from __future__ import annotations

import pytest

from twofold.validate import validate
from twofold.validate.uncertainty import (
    LEVELS,
    TAILS,
    conformal_quantile,
    level_residuals,
    uncertainty_document,
)


def test_conformal_quantile_by_hand() -> None:
    values = [0.5, -0.3, 0.1, 0.9, -0.7, 0.0, 0.2, -0.1, 0.4]  # n = 9
    ordered = sorted(values)  # -0.7 -0.3 -0.1 0.0 0.1 0.2 0.4 0.5 0.9
    # Upper: rank ceil((9 + 1) * 0.9) = 9 -> the largest; lower: rank 10 - ceil(10 * 0.9) = 1.
    assert conformal_quantile(values, 0.9) == ordered[8] == 0.9
    assert conformal_quantile(values, 0.1) == ordered[0] == -0.7
    # n = 19: upper rank ceil(20 * 0.9) = 18, lower rank 20 - 18 = 2.
    nineteen = [float(i) for i in range(19)]
    assert conformal_quantile(nineteen, 0.9) == 17.0
    assert conformal_quantile(nineteen, 0.1) == 1.0
    # n = 3: rank ceil(4 * 0.9) = 4 > n is clamped to the largest value.
    assert conformal_quantile([3.0, 1.0, 2.0], 0.9) == 3.0
    with pytest.raises(ValueError):
        conformal_quantile([], 0.9)


@pytest.fixture(scope="module")
def held_out():  # noqa: ANN201
    return validate(loso=True, lofo=True, loco=True)


def test_levels_are_monotone_and_cover_their_residuals(held_out) -> None:  # noqa: ANN001
    doc = uncertainty_document(held_out)
    levels = [doc["training"][name] for name in LEVELS]
    for more, less in zip(levels, levels[1:], strict=False):
        assert less["log_low"] <= more["log_low"] and more["log_high"] <= less["log_high"]
    residuals = level_residuals(held_out)
    assert levels[0]["residuals"] == len(residuals["measured"]) == sum(r.throughput for r in held_out.rows)
    for name in LEVELS:
        assert doc["training"][name]["empirical_coverage"] >= 0.8 - 1e-9, name


def test_builder_is_deterministic(held_out) -> None:  # noqa: ANN001
    assert uncertainty_document(held_out) == uncertainty_document(validate(loso=True, lofo=True, loco=True))


def test_stack_held_out_coverage_by_hand() -> None:
    """Each stack's residuals against the interval of the other stacks' (n = 9 -> the extremes)."""
    from twofold.validate.uncertainty import stack_held_out_coverage

    tagged = [(float(x), "a") for x in range(9)] + [(100.0, "b")]
    # Without "b": interval [0, 8] -> 100 is outside; without "a": one residual [100, 100] -> all of
    # "a" outside. Covered: 0 of 10.
    assert stack_held_out_coverage(tagged) == 0.0
    tagged = [(float(x), "a") for x in range(9)] + [(4.0, "b")] + [(float(x), "c") for x in range(9)]
    # Without "a": [0, 8] from b and c covers every a; likewise for c; b's 4 is inside: all 19.
    assert stack_held_out_coverage(tagged) == 1.0
    assert stack_held_out_coverage([(0.1, "a"), (0.2, "a")]) is None


def test_grouped_tail_by_hand() -> None:
    """The narrowest tail whose stack-held-out coverage reaches 80% (hand-built residuals)."""
    from twofold.validate.uncertainty import grouped_tail, stack_held_out_coverage

    # Three stacks of 19 residuals 0..18; each left-out stack is scored against the other two (38
    # values): tail 0.10 -> ranks 4 and 36 of 38 -> values 1 and 17: 17 of 19 covered (89%) -> 0.10.
    tagged = [(float(x), g) for g in "abc" for x in range(19)]
    assert stack_held_out_coverage(tagged, 0.10) == pytest.approx(17 / 19)
    assert grouped_tail(tagged) == 0.10
    # A fourth stack far off: the other three stacks' interval never reaches it, so at 0.10 the
    # coverage is 3 * 17 / 76 = 67%, and no tail reaches 80% (at most 57 of 76 rows, 75%): the
    # widest tail tried.
    far = tagged + [(100.0 + x, "d") for x in range(19)]
    assert stack_held_out_coverage(far, 0.10) == pytest.approx(51 / 76)
    assert grouped_tail(far) == TAILS[-1]


def test_shipped_levels_cover_a_left_out_stack(held_out) -> None:  # noqa: ANN001
    """Each level's tail is chosen so that a stack left out of the quantiles is covered at 80%."""
    doc = uncertainty_document(held_out)
    for name in LEVELS:
        entry = doc["training"][name]
        assert entry["coverage_stack_held_out"] >= 0.8 - 1e-9 or entry["tail"] == TAILS[-1], name
