"""The cost of serving a rate on chip A against chip B, split into causes (`compare.capacity`).

References: a hand derivation of the telescoping product (the factors of made-up plans, worked out
below); chips that differ from the reference in one attribute only, built with
`dataclasses.replace` on a catalog chip (everything is then that attribute's); the definition of
the ratio (chips_A / chips_B x price_A / price_B)."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from twofold.compare.capacity import (
    CAPACITY_CAUSES,
    COMPUTE_FIELDS,
    capacity_ratio,
    compare_capacity,
    counterfactual_chips,
)
from twofold.compare.plans import target_from
from twofold.estimate.inference_types import InferenceWorkload
from twofold.hardware.catalog import get_chip, system_for
from twofold.serving import ServingConfig
from twofold.workload.registry import get_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import run_cli  # noqa: E402

H100 = get_chip("h100")
SHAPE = ServingConfig(max_batch=1, concurrency=1, input_tokens=512, output_tokens=128)
PRECISIONS = InferenceWorkload(batch=1, input_tokens=1, output_tokens=1)


def _plan(chips: int, replicas: int, continuous: float, price: float | None = None) -> dict:
    best = {"chips": chips, "replicas": replicas, "chips_continuous": continuous, "max_rate_per_replica": 1.0}
    return {"chip": "x", "best": best, "price_usd_per_chip_hour": price}


def test_factors_multiply_to_the_cost_ratio_by_hand() -> None:
    """B needs 12 chips (3 replicas of 4; 10 continuous), A 4 (1 of 4; 3 continuous); the
    counterfactuals X1, X2, X3 need 8, 5 and 4 continuous chips; prices $2 (A) and $4 (B):
    capacity 8/10 = 0.8, bandwidth 5/8 = 0.625, compute 4/5 = 0.8, other 3/4 = 0.75,
    rounding (4/3) / (12/10) = 10/9, price 2/4 = 0.5; the product 0.8 * 0.625 * 0.8 * 0.75 * 10/9 * 0.5
    = 1/6 = (4/12) * 0.5, the cost ratio."""
    b, a = _plan(12, 3, 10.0, 4.0), _plan(4, 1, 3.0, 2.0)
    chain = [_plan(8, 2, 8.0), _plan(8, 2, 5.0), _plan(4, 1, 4.0)]
    r = capacity_ratio(a, b, chain)
    assert r.factors == pytest.approx(
        {
            "capacity": 0.8,
            "bandwidth": 0.625,
            "compute": 0.8,
            "other": 0.75,
            "rounding": 10 / 9,
            "price": 0.5,
        },
        rel=1e-12,
    )
    assert list(r.factors) == list(CAPACITY_CAUSES)
    assert r.cost == pytest.approx(1 / 6, rel=1e-12)
    assert math.prod(r.factors.values()) == pytest.approx(r.cost, rel=1e-12)
    assert r.dominant_cause == "price"  # |log 0.5| is the largest


def test_without_a_price_the_factors_multiply_to_the_chips() -> None:
    b, a = _plan(12, 3, 10.0, None), _plan(4, 1, 3.0, 2.0)
    r = capacity_ratio(a, b, [_plan(8, 2, 8.0), _plan(8, 2, 5.0), _plan(4, 1, 4.0)])
    assert r.cost is None and "price" not in r.factors
    assert math.prod(r.factors.values()) == pytest.approx(4 / 12, rel=1e-12)


def test_a_counterfactual_without_an_answer_leaves_the_causes_unknown() -> None:
    b, a = _plan(12, 3, 10.0, 4.0), _plan(4, 1, 3.0, 2.0)
    r = capacity_ratio(a, b, [_plan(8, 2, 8.0), {"chip": "x", "best": None}, _plan(4, 1, 4.0)])
    assert r.factors is None and "capacity, bandwidth" in r.note
    assert r.cost == pytest.approx(1 / 6)


def test_counterfactual_chips_swap_one_cause_at_a_time() -> None:
    inf2 = get_chip("inf2")
    (c1, x1), (c2, x2), (c3, x3) = counterfactual_chips(inf2, H100)
    assert (c1, c2, c3) == ("capacity", "bandwidth", "compute")
    assert x1 == replace(H100, hbm_capacity_gib=inf2.hbm_capacity_gib)
    assert x2 == replace(x1, hbm_bandwidth_tb_s=inf2.hbm_bandwidth_tb_s)
    assert all(getattr(x3, f) == getattr(inf2, f) for f in COMPUTE_FIELDS)
    assert x3.id == "h100" and x3.compute_units == H100.compute_units  # the rest is B's


@pytest.mark.parametrize(
    ("cause", "changes"),
    [
        ("bandwidth", {"hbm_bandwidth_tb_s": 4.8}),
        ("compute", {f: (getattr(H100, f) or 0) * 2 or None for f in COMPUTE_FIELDS}),
    ],
)
def test_a_chip_that_differs_in_one_attribute_owes_everything_to_it(cause: str, changes: dict) -> None:
    faster = replace(H100, **changes)
    system = system_for(H100)
    result = compare_capacity(
        get_model("llama3.1-8b"),
        [target_from(faster, system), target_from(H100, system)],
        PRECISIONS,
        SHAPE,
        request_rate=30.0,
        p99_ttft_ms=300.0,
        reference="h100",
        max_replica_chips={"h100": 1},
        num_requests=150,
    )
    assert result.reference == "h100" and len(result.ratios) == 1  # the what-if keeps the id; the first
    r = next(iter(result.ratios.values()))
    others = {c: v for c, v in r.factors.items() if c not in (cause, "rounding")}
    assert others == {c: 1.0 for c in others}  # exactly: the same chip plans the same
    assert r.factors[cause] < 1.0  # more of it: fewer chips for the rate
    assert r.factors[cause] * r.factors["rounding"] == pytest.approx(r.chips, rel=1e-12)
    assert math.prod(r.factors.values()) == pytest.approx(r.cost, rel=1e-12)


def test_compare_cli_prices_each_kind_and_caps_neuron_replicas(capsys: pytest.CaptureFixture[str]) -> None:
    """--price-kind spot: trn2 has a grade-A spot price, inf2 none (unknown, not its on-demand price);
    --neuron-cores 8 caps a replica at 8 logical NeuronCores: 4 inf2 chips (2 cores each, LNC=1) and
    2 trn2 chips (8 physical cores at LNC=2 = 4 logical)."""
    from twofold.cli._capacity import _render_causes, render_capacity

    code, out, err = run_cli(
        capsys, "compare", "llama3.1-8b", "--on", "inf2,trn2", "--infer", "--request-rate", "10",
        "--p99-ttft-ms", "1000", "--input-tokens", "256", "--output-tokens", "64", "--neuron-cores", "8",
        "--price-kind", "spot", "--json",
    )  # fmt: skip
    assert code == 0, err
    d = json.loads(out)
    inf2, trn2 = d["plans"]
    assert inf2["price"]["kind"] == "spot" and inf2["price"]["usd_per_chip_hour"] is None
    assert inf2["best"]["usd_per_million_output_tokens"] is None
    assert trn2["price"]["quality"] == "A"
    b = trn2["best"]  # $/M = price x chips / (R x output tokens x 3600) x 1e6
    expected = trn2["price"]["usd_per_chip_hour"] * b["chips"] / (10 * 64 * 3600) * 1e6
    assert b["usd_per_million_output_tokens"] == pytest.approx(expected, rel=1e-12)
    assert inf2["best"]["layout"]["tp"] * inf2["best"]["layout"]["pp"] <= 4
    assert b["layout"]["tp"] * b["layout"]["pp"] <= 2
    r = d["ratios_to_reference"]["trn2"]
    assert r["cost"] is None and "price" not in r["factors"]
    assert math.prod(r["factors"].values()) == pytest.approx(r["chips"], rel=1e-9)
    render_capacity(d["plans"])
    _render_causes(d)
    text = capsys.readouterr().out
    assert "no price (spot)" in text and "(A)" in text and "(2 NC)" in text
    assert "bandwidth" in text and "rounding" in text


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        (("--price-kind", "cheap"), "price_kind"),
        (("--min-quality", "D"), "min_quality"),
        (("--price", "h100=-1"), "price"),
        (("--neuron-cores", "8"), "neuron_cores"),  # no Neuron chip compared
        (("--reference", "trn2"), "reference"),
    ],
)
def test_compare_infer_bad_flags_exit_2(capsys: pytest.CaptureFixture[str], flags: tuple, field: str) -> None:
    code, _, err = run_cli(capsys, "compare", "llama3.1-8b", "--on", "h100,h200", "--infer",
                           "--request-rate", "5", *flags)  # fmt: skip
    assert code == 2 and field in err
