"""`plan_inference` against a brute-force loop over the same layouts and batches with `estimate_inference`."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "estimate"))
from _inference_fixtures import DENSE, MOE, toy_chip, toy_system  # noqa: E402

from twofold.errors import InputError  # noqa: E402
from twofold.estimate.inference import estimate_inference  # noqa: E402
from twofold.estimate.inference_types import InferenceLayout, InferenceWorkload  # noqa: E402
from twofold.search.infer_plan import plan_inference  # noqa: E402

WORK = InferenceWorkload(batch=1, input_tokens=1024, output_tokens=256)


def _chip():
    return toy_chip(capacity_gib=8.0)


def _brute_force(model, chips, work, *, max_ttft_ms=None, max_tpot_ms=None):
    """Best output tokens/s per chip over every layout and every power-of-two batch (times ep) that fits
    and meets the targets, by plain loops over `estimate_inference`."""
    best = None
    eps = (
        [e for e in range(1, chips + 1) if chips % e == 0 and model.num_experts % e == 0]
        if model.is_moe
        else [1]
    )
    for tp in range(1, chips + 1):
        for pp in range(1, chips + 1):
            for ep in eps:
                if chips % (tp * pp * ep):
                    continue
                layout = InferenceLayout(tp=tp, pp=pp, ep=ep, dp=chips // (tp * pp * ep))
                try:
                    first = estimate_inference(
                        model, toy_system(), layout, replace(work, batch=ep), chip=_chip()
                    )
                except InputError:
                    continue
                batch = ep
                while batch <= first.max_batch:
                    est = estimate_inference(
                        model, toy_system(), layout, replace(work, batch=batch), chip=_chip()
                    )
                    ok = est.fits
                    ok &= max_ttft_ms is None or est.ttft_s * 1e3 <= max_ttft_ms
                    ok &= max_tpot_ms is None or est.tpot_s * 1e3 <= max_tpot_ms
                    if ok and (
                        best is None or est.output_tokens_per_s_per_chip > best.output_tokens_per_s_per_chip
                    ):
                        best = est
                    batch *= 2
    return best


@pytest.mark.parametrize(
    ("model", "targets"),
    [(DENSE, {}), (DENSE, {"max_tpot_ms": 1.0, "max_ttft_ms": 50.0}), (MOE, {"max_tpot_ms": 0.8})],
)
def test_plan_is_at_least_as_good_as_brute_force_over_its_grid(model, targets) -> None:
    plan = plan_inference(model, toy_system(), 4, WORK, chip=_chip(), **targets)
    ref = _brute_force(model, 4, WORK, **targets)
    assert ref is not None and plan.best is not None
    best = plan.best
    assert best.fits
    if "max_tpot_ms" in targets:
        assert best.tpot_s * 1e3 <= targets["max_tpot_ms"]
    if "max_ttft_ms" in targets:
        assert best.ttft_s * 1e3 <= targets["max_ttft_ms"]
    assert best.output_tokens_per_s_per_chip >= ref.output_tokens_per_s_per_chip * (1 - 1e-12)
    ranked = [t["output_tokens_per_s_per_chip"] for t in plan.top]
    assert ranked == sorted(ranked, reverse=True)
    assert ranked[0] == pytest.approx(best.output_tokens_per_s_per_chip, rel=1e-12)


def test_unreachable_target_explains_itself() -> None:
    plan = plan_inference(DENSE, toy_system(), 4, WORK, chip=_chip(), max_tpot_ms=1e-6)
    assert plan.best is None and plan.top == ()
    assert any("fastest seen" in line for line in plan.explanation)
    assert plan.to_dict()["best"] is None


def test_invalid_layouts_are_counted_by_reason() -> None:
    plan = plan_inference(DENSE, toy_system(), 32, WORK, chip=_chip())  # tp=32 does not divide 16 heads
    assert any(reason.startswith("tp:") for reason in plan.rejected)
    assert plan.best is not None and plan.best.layout.chips == 32


def test_latency_objective_prefers_short_requests() -> None:
    fast = plan_inference(DENSE, toy_system(), 4, WORK, chip=_chip(), objective="latency")
    bulk = plan_inference(DENSE, toy_system(), 4, WORK, chip=_chip(), objective="throughput")
    assert fast.best.e2e_latency_s <= bulk.best.e2e_latency_s
    assert bulk.best.output_tokens_per_s_per_chip >= fast.best.output_tokens_per_s_per_chip


def test_batch_limit_caps_the_batch() -> None:
    plan = plan_inference(DENSE, toy_system(), 2, WORK, chip=_chip(), batch_limit=5)
    assert plan.best.workload.batch <= 5


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"objective": "speed"}, "objective"),
        ({"max_ttft_ms": -1.0}, "max_ttft_ms"),
        ({"max_tpot_ms": float("nan")}, "max_tpot_ms"),
        ({"batch_limit": 0}, "batch_limit"),
    ],
)
def test_bad_arguments(kwargs, field) -> None:
    with pytest.raises(InputError) as err:
        plan_inference(DENSE, toy_system(), 4, WORK, chip=_chip(), **kwargs)
    assert err.value.field == field


def test_cost_objective_needs_a_price() -> None:
    with pytest.raises(InputError, match="no price"):
        plan_inference(
            DENSE,
            replace(toy_system(), price_usd_per_chip_hour=None),
            4,
            WORK,
            chip=_chip(),
            objective="cost",
        )
