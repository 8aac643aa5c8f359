"""`search.deadline.plan_deadline` with the stand-in evaluator on a toy system with toy prices.

References, written in the tests: the hand derivation time_s = tokens / (tokens_per_s_per_chip x
chips) and cost_usd = ceil(chips / instance chips) x instance chips x billed hours x USD per
chip-hour; the cheapest option that meets the deadline found by brute force over the same chip
counts (`plan_training` called here, one count at a time) and price kinds; the 80% range from
`estimate.uncertainty.uncertainty_for` applied by hand; and the invariant that a tighter deadline
never gives a cheaper answer (hypothesis).
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from _search_fakes import fake_evaluate, toy_chip, toy_model, toy_system
from hypothesis import given, settings
from hypothesis import strategies as st

from twofold.errors import InputError
from twofold.estimate.uncertainty import uncertainty_for
from twofold.hardware.types import PriceQuote
from twofold.parallel.layout import TrainingWorkload
from twofold.search.deadline import (
    DEFAULT_PRICE_KINDS,
    DeadlineTarget,
    candidate_counts,
    parse_deadline,
    plan_deadline,
)
from twofold.search.plan import plan_training

WORKLOAD = TrainingWorkload(global_batch=32, seq_len=2048)
TOKENS = 5e9
MAX_CHIPS = 32
DAY_S = 86400.0
# Toy quotes: on-demand for an 8-chip instance, spot for single chips, a capacity block, and a
# committed price that the default kinds leave out; grade C spot for the --min-quality test.
QUOTES = {
    "on-demand": PriceQuote(
        kind="on-demand", usd_per_chip_hour=2.0, provider="x", quality="A", instance_chips=8
    ),
    "spot": PriceQuote(kind="spot", usd_per_chip_hour=0.9, provider="x", quality="C", instance_chips=1),
    "capacity-block": PriceQuote(
        kind="capacity-block", usd_per_chip_hour=1.2, provider="x", quality="B", instance_chips=8
    ),
    "committed-1y": PriceQuote(
        kind="committed-1y", usd_per_chip_hour=0.1, provider="x", quality="A", instance_chips=8
    ),
}


def _target(quotes=QUOTES, label="toy") -> DeadlineTarget:
    system = dataclasses.replace(toy_system(), prices=dict(quotes), price_usd_per_chip_hour=None)
    return DeadlineTarget(label=label, system=system, chip=toy_chip(40.0))


def _run(deadline_s: float, **kw):
    kw.setdefault("targets", [_target()])
    return plan_deadline(
        toy_model(), kw.pop("targets"), WORKLOAD, tokens=TOKENS, deadline_s=deadline_s,
        max_chips=kw.pop("max_chips", MAX_CHIPS), evaluate=fake_evaluate, **kw,
    )  # fmt: skip


def _hand_cost(usd_per_chip_hour: float, unit: int, chips: int, seconds: float, kind: str) -> float:
    paid = math.ceil(chips / unit) * unit
    if kind == "capacity-block":
        seconds = max(math.ceil(seconds / DAY_S - 1e-9), 1) * DAY_S
    return usd_per_chip_hour * paid * seconds / 3600.0


def _brute_force(deadline_s: float, kinds=DEFAULT_PRICE_KINDS):
    """Every (count, kind) by hand: [(cost, chips, time, kind)], and the cheapest that meets."""
    tgt = _target()
    rows = []
    for chips in (1, 8, 16, 32):
        plan = plan_training(toy_model(), tgt.system, chips, WORKLOAD, chip=tgt.chip, evaluate=fake_evaluate)
        if plan.best is None:
            continue
        seconds = TOKENS / (plan.best.step.tokens_per_s_per_chip * chips)
        for kind in kinds:
            q = QUOTES[kind]
            rows.append(
                (
                    _hand_cost(q.usd_per_chip_hour, q.instance_chips, chips, seconds, kind),
                    chips,
                    seconds,
                    kind,
                )
            )
    meeting = [r for r in rows if r[2] <= deadline_s]
    return rows, min(meeting, key=lambda r: (r[0], r[1], r[2])) if meeting else None


def test_every_option_matches_the_hand_derivation() -> None:
    result = _run(30 * DAY_S)
    assert result.options
    for o in result.options:
        q = QUOTES[o.price.kind]
        assert o.time_s == pytest.approx(TOKENS / (o.tokens_per_s_per_chip * o.chips))
        assert o.billed_chips == math.ceil(o.chips / q.instance_chips) * q.instance_chips
        assert o.cost_usd == pytest.approx(
            _hand_cost(q.usd_per_chip_hour, q.instance_chips, o.chips, o.time_s, o.price.kind)
        )


def test_the_answer_is_the_brute_force_cheapest_that_meets_the_deadline() -> None:
    rows, _ = _brute_force(math.inf)
    times = sorted({r[2] for r in rows})
    for deadline_s in (times[0] * 1.01, times[len(times) // 2], times[-1] * 2):
        _, expected = _brute_force(deadline_s)
        best = _run(deadline_s).best
        assert expected is not None and best is not None
        assert (best.chips, best.price.kind) == (expected[1], expected[3])
        assert best.cost_usd == pytest.approx(expected[0])


def test_one_chip_pays_for_its_whole_instance() -> None:
    # On-demand only: one chip on an 8-chip instance pays 8 chips, so 8 chips cost less in total.
    result = _run(365 * DAY_S, price_kinds=("on-demand",))
    one = next(o for o in result.options if o.chips == 1)
    eight = next(o for o in result.options if o.chips == 8)
    assert one.billed_chips == 8
    assert one.cost_usd == pytest.approx(2.0 * 8 * one.time_s / 3600.0)
    assert result.best is not None and result.best.chips >= 8 and eight.cost_usd < one.cost_usd


def test_the_range_is_the_throughput_interval_carried_to_time_and_cost() -> None:
    o = _run(30 * DAY_S, price_kinds=("spot",)).options[0]
    u = uncertainty_for("toy-chip", None, "auto", {"tokens_per_s_per_chip": o.tokens_per_s_per_chip})
    low, high = u.intervals["tokens_per_s_per_chip"]
    assert o.time_range_s == pytest.approx((TOKENS / (high * o.chips), TOKENS / (low * o.chips)))
    assert o.cost_range_usd == pytest.approx(tuple(0.9 * o.billed_chips * t / 3600.0 for t in o.time_range_s))
    assert o.time_range_s[0] < o.time_s < o.time_range_s[1]


@settings(max_examples=15, deadline=None)
@given(st.floats(min_value=0.5, max_value=400.0), st.floats(min_value=0.05, max_value=1.0))
def test_a_tighter_deadline_never_gives_a_cheaper_answer(loose_h: float, share: float) -> None:
    loose, tight = _run(loose_h * 3600.0), _run(loose_h * share * 3600.0)
    if tight.best is not None:
        assert loose.best is not None
        assert tight.best.cost_usd >= loose.best.cost_usd - 1e-9
        assert tight.best.time_s <= loose_h * share * 3600.0


def test_a_missed_deadline_is_reported_with_the_fastest_option() -> None:
    rows, _ = _brute_force(math.inf)
    fastest_s = min(r[2] for r in rows)
    result = _run(fastest_s / 2)
    assert result.best is None
    assert result.fastest is not None and result.fastest.time_s == pytest.approx(fastest_s)
    assert result.targets[0].status == "misses"
    assert result.to_dict()["meets_deadline"] is False


def test_no_price_is_listed_not_dropped_and_no_kind_is_filled_from_another() -> None:
    unpriced = _target(quotes={}, label="unpriced")
    result = _run(30 * DAY_S, targets=[unpriced, _target()])
    out = result.targets[0]
    assert out.status == "no price" and out.fastest is not None and out.fastest.cost_usd is None
    assert "no price of kind on-demand" in out.notes[0]
    assert all(o.label == "toy" for o in result.options)
    # Only spot and capacity-block priced: the on-demand kind stays unknown, never lent their price.
    partial = _target(quotes={k: QUOTES[k] for k in ("spot",)}, label="spot-only")
    kinds = {o.price.kind for o in _run(30 * DAY_S, targets=[partial]).options}
    assert kinds == {"spot"}


def test_min_quality_and_price_kinds_narrow_the_kinds() -> None:
    graded = {o.price.kind for o in _run(30 * DAY_S, min_quality="B").options}
    assert graded == {"on-demand", "capacity-block"}  # spot is grade C
    assert "committed-1y" not in {o.price.kind for o in _run(30 * DAY_S).options}
    committed = _run(30 * DAY_S, price_kinds=("committed-1y",))
    assert {o.price.kind for o in committed.options} == {"committed-1y"}


def test_candidate_counts() -> None:
    assert candidate_counts(toy_system(), 64) == (1, 8, 16, 32, 64)
    assert candidate_counts(toy_system(), 4) == (1, 4)
    assert candidate_counts(dataclasses.replace(toy_system(), max_chips=16), 1024) == (1, 8, 16)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90m", 5400.0), ("48h", 172800.0), ("3d", 259200.0), ("1.5H", 5400.0)]
)
def test_parse_deadline(text: str, seconds: float) -> None:
    assert parse_deadline(text) == seconds


@pytest.mark.parametrize("text", ["48", "2x", "0h", "-3d", "h", "", "inf h"])
def test_a_bad_deadline_names_the_field(text: str) -> None:
    with pytest.raises(InputError) as err:
        parse_deadline(text)
    assert err.value.field == "deadline" and err.value.value == text and "90m, 48h, 3d" in err.value.rule
