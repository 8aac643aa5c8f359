"""`compare`: factors multiply back to every ratio (1e-9), unknowns stay None, what-if chips.

References: each ratio total is computed from the plans' own tokens/s per chip (and prices,
power) independently of the factors; peak factors against the catalog's published peaks; the
doubled chip against the hand derivation "every time term halves, so throughput doubles".
"""

from __future__ import annotations

import math

import pytest
from _compare_fixtures import doubled_target

from twofold.compare import THROUGHPUT_FACTORS, CompareResult, compare, compare_targets, target
from twofold.errors import InputError
from twofold.parallel.layout import TrainingWorkload
from twofold.workload.registry import get_model

SMALL = TrainingWorkload(global_batch=256, seq_len=4096, precision="bf16")


def _check_factors_multiply_back(result: CompareResult) -> int:
    checked = 0
    for row in result.rows:
        for metric, total in row.ratio_to_reference.items():
            factors = row.factors.get(metric)
            if total is None:
                assert factors is None
                continue
            assert factors is not None
            assert math.prod(factors.values()) == pytest.approx(total, rel=1e-9, abs=0)
            checked += 1
        if row.terms is not None:
            assert row.terms.tokens_per_s_per_chip() == pytest.approx(
                row.metrics["tokens_per_s_per_chip"], rel=1e-9
            )
            assert 0 < row.terms.memory_capacity <= 1 + 1e-12  # the unconstrained layout is never slower
    return checked


@pytest.fixture(scope="module")
def cache() -> dict:
    return {}


def test_same_chips_factors_multiply_back(cache: dict) -> None:
    result = compare(
        "llama3.1-8b",
        ["trn2", "h100", "tpu-v5p", "a100"],
        chips=16,
        workload=SMALL,
        reference="h100",
        cache=cache,
    )
    assert _check_factors_multiply_back(result) >= 4 * 2
    h100, trn2, a100 = result.row("h100"), result.row("trn2"), result.row("a100")
    # Peak factor is the ratio of published dense BF16 peaks (989 TFLOPS H100, 667 Trn2, 312 A100).
    assert trn2.factors["throughput_per_chip"]["peak_compute"] == pytest.approx(667 / 989)
    assert a100.factors["throughput_per_chip"]["peak_compute"] == pytest.approx(312 / 989)
    assert set(trn2.factors["throughput_per_chip"]) == set(THROUGHPUT_FACTORS)
    # Total from the plans' throughputs, not from the factors.
    want = trn2.metrics["tokens_per_s_per_chip"] / h100.metrics["tokens_per_s_per_chip"]
    assert trn2.ratio_to_reference["throughput_per_chip"] == pytest.approx(want, rel=1e-12)
    # Perf per dollar: A100 and H100 both priced; factor "price" = price_H100 / price_A100.
    ppd = a100.factors["perf_per_dollar"]
    assert ppd["price"] == pytest.approx(
        h100.metrics["price_usd_per_chip_hour"] / a100.metrics["price_usd_per_chip_hour"]
    )
    assert h100.ratio_to_reference["throughput_per_chip"] == 1.0


def test_moe_and_same_cost_factors_multiply_back(cache: dict) -> None:
    result = compare(
        "mixtral-8x7b",
        ["h100", "trn1"],
        chips=64,
        mode="same-cost",
        workload=SMALL,
        cache=cache,
        prices={"h100": 6.0},
        tokens=1e12,
    )
    _check_factors_multiply_back(result)
    trn1 = result.row("trn1")
    f = trn1.factors["system_throughput"]
    # Same dollars per hour: 64 x $6.00 / $1.344 per trn1 chip-hour (catalog) = 285.7 chips of budget.
    assert f["budget"] == pytest.approx(6.0 / 1.344)
    assert trn1.chips <= 64 * 6.0 / 1.344 and trn1.chips % 16 == 0
    assert f["budget"] * f["rounding"] == pytest.approx(trn1.chips / 64)


def test_same_power_needs_and_uses_tdp(cache: dict) -> None:
    result = compare(
        "llama3.1-8b",
        ["h100", "b200", "trn2"],
        chips=16,
        mode="same-power",
        workload=SMALL,
        cache=cache,
        powers={"trn2": 500.0},
    )
    _check_factors_multiply_back(result)
    b200 = result.row("b200")
    assert b200.factors["system_throughput"]["budget"] == pytest.approx(700.0 / 1000.0)  # TDP H100 / B200
    with pytest.raises(InputError, match="TDP unknown"):
        compare("llama3.1-8b", ["trn2", "h100"], chips=16, mode="same-power", workload=SMALL, cache=cache)


def test_unknown_price_and_power_are_none_not_zero(cache: dict) -> None:
    # trn2's only on-demand price is grade C: with min_quality B it is unknown, not another price.
    result = compare(
        "llama3.1-8b", ["trn2", "h100"], chips=16, workload=SMALL, reference="h100", cache=cache,
        min_quality="B",
    )  # fmt: skip
    d = result.to_dict()
    trn2 = next(r for r in d["rows"] if r["chip"] == "trn2")
    for key in (
        "price_usd_per_chip_hour",
        "usd_per_million_tokens",
        "cost_usd",
        "power_w_per_chip",
        "energy_per_token_j",
        "energy_kwh",
        "perf_per_watt_tokens_per_j",
        "perf_per_dollar_tokens_per_usd",
    ):
        assert trn2[key] is None, key
    assert trn2["ratio_to_reference"]["perf_per_dollar"] is None
    assert trn2["ratio_to_reference"]["perf_per_watt"] is None
    assert trn2["price"]["usd_per_chip_hour"] is None and trn2["power"]["tdp_w"] is None
    assert any("price unknown" in n for n in trn2["notes"])


def test_doubled_chip_everything_is_exactly_twice(plain_alpha_beta: None) -> None:
    # Hand derivation: every kernel time (compute, HBM, per-op overhead) and every collective
    # (bandwidth and latency) halves, so each layout's step halves, the ranking is unchanged and
    # the throughput ratio is exactly 2; the power draw (same TDP, same busy share) is unchanged.
    fast = doubled_target("h100", links=True)
    result = compare_targets(
        get_model("llama3.1-8b"), [fast, target("h100")], chips=16, workload=SMALL, reference="h100"
    )
    row = result.row("h100-2x")
    assert row.layout == result.row("h100").layout
    assert row.ratio_to_reference["throughput_per_chip"] == pytest.approx(2.0, rel=1e-9)
    assert row.factors["throughput_per_chip"]["peak_compute"] == pytest.approx(2.0)
    assert row.ratio_to_reference["perf_per_watt"] == pytest.approx(2.0, rel=1e-9)
    _check_factors_multiply_back(result)


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="reference"):
        compare("llama3.1-8b", ["trn2", "h100"], reference="b200", workload=SMALL)
    with pytest.raises(InputError, match="twice"):
        compare("llama3.1-8b", ["h100", "h100-sxm"], workload=SMALL)
    with pytest.raises(InputError, match="chips"):
        compare("llama3.1-8b", ["h100"], chips=0, workload=SMALL)
    with pytest.raises(InputError, match="tokens"):
        compare("llama3.1-8b", ["h100"], tokens=-5, workload=SMALL)


def test_capacity_block_prices_factors_multiply_back(cache: dict) -> None:
    # AWS Capacity Blocks for ML (pricing mirror, 2024-12): p5.48xlarge $39.33/h / 8 H100,
    # p5e.48xlarge $43.26/h / 8 H200; the A100 80GB has none (only the 40GB p4d), so it is unknown.
    result = compare(
        "llama3.1-8b",
        ["h100", "h200", "a100"],
        chips=16,
        workload=SMALL,
        cache=cache,
        price_kind="capacity-block",
    )
    assert result.price_kind == "capacity-block"
    assert _check_factors_multiply_back(result) >= 2 * 2
    h200, a100 = result.row("h200"), result.row("a100")
    assert h200.factors["perf_per_dollar"]["price"] == pytest.approx((39.33 / 8) / (43.26 / 8))
    assert a100.metrics["price_usd_per_chip_hour"] is None and a100.factors["perf_per_dollar"] is None
    assert any("unknown for a100: no published capacity-block price" in n for n in result.notes)


def test_roofline_shares_come_from_the_estimate_under_its_stack() -> None:
    """The kernel-time split is the estimator's own (`StepTerms.kernel_*_share`), priced under the
    stack it ran: a compiled stack pays no eager per-kernel factor, so less of its op time is
    overhead than under Megatron (eager); with no stack it is the chip's reference stack (Megatron
    on H100). Reference: the op-by-op roofline terms of the same per-chip graph (`cost.op_time_terms`),
    summed by hand here."""
    import numpy as np

    from twofold.cost import op_time_terms, profile_for
    from twofold.cost.calibration import shipped_calibration
    from twofold.estimate import estimate_training
    from twofold.hardware.catalog import get_chip, system_for
    from twofold.parallel.layout import Layout, TrainingWorkload
    from twofold.workload.graph import training_ops
    from twofold.workload.registry import get_model

    model, chip = get_model("llama3.1-8b"), get_chip("h100")
    layout = Layout(dp=8, tp=1, pp=1, micro_batch=1, recompute="selective")
    workload = TrainingWorkload(global_batch=64, seq_len=4096)

    def shares(stack: str | None) -> tuple[float, float]:
        est = estimate_training(model, system_for(chip), layout, workload, stack=stack)
        return est.terms().kernel_compute_share, est.terms().kernel_roofline_share

    ops = training_ops(model, micro_batch=1, seq_len=4096, precision="bf16", recompute="selective")
    terms = op_time_terms(ops, chip, profile_for(chip, shipped_calibration().with_stack("megatron")))
    counts = np.array([op.count for op in ops], dtype=float)
    total = float(np.dot(terms.time_s, counts))
    by_hand = (
        float(np.dot(terms.compute_s, counts)) / total,
        float(np.dot(np.maximum(terms.compute_s, terms.memory_s), counts)) / total,
    )
    assert shares("megatron") == pytest.approx(by_hand, rel=1e-9)
    assert shares(None) == shares("megatron")
    assert shares("fsdp-compile")[1] > shares("megatron")[1]  # less overhead when compiled
