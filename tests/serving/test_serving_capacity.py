"""Capacity at a request rate (`serving.capacity`) and its comparison across chips.

References: the targets themselves (the chosen plan's simulated p99 TTFT and ITL meet them); the
definition of $ per million output tokens (chips x $/chip-hour over R x output tokens x 3600 s);
the exact split cost_A / cost_B = chips ratio x price ratio; the exhaustive search (the bound
disabled) for the branch and bound; the weights' bytes against the chips' HBM for the pp tier."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from twofold.compare.capacity import capacity_ratio
from twofold.economics.prices import price_for
from twofold.estimate.inference_types import InferenceWorkload
from twofold.hardware.catalog import get_chip, system_for
from twofold.serving import ServingConfig
from twofold.serving import capacity as capacity_module
from twofold.serving.capacity import plan_capacity, replica_layouts
from twofold.workload.registry import get_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import run_cli  # noqa: E402

CHIP = get_chip("h100")
SHAPE = ServingConfig(max_batch=1, concurrency=1, input_tokens=512, output_tokens=128)
PRECISIONS = InferenceWorkload(batch=1, input_tokens=1, output_tokens=1)


def _plan(rate: float, **kw: object):
    return plan_capacity(
        get_model("llama3.1-8b"), system_for(CHIP), PRECISIONS, SHAPE, request_rate=rate, chip=CHIP,
        max_replica_chips=1, num_requests=200, **kw,
    )  # fmt: skip


def test_the_plan_meets_its_targets_and_prices_the_tokens() -> None:
    plan = _plan(
        40.0, p99_ttft_ms=300.0, p99_itl_ms=60.0, price=price_for(system_for(CHIP), CHIP, {"h100": 3.0})
    )
    best = plan.best
    assert best is not None
    assert best.load.ttft_ms.p99 <= 300.0 and best.load.itl_ms.p99 <= 60.0
    assert best.replicas * best.rate_per_replica == pytest.approx(40.0)
    assert best.rate_per_replica <= best.saturated_rate_per_replica
    assert best.usd_per_million_output_tokens == pytest.approx(best.chips * 3.0 / (40.0 * 128 * 3600) * 1e6)
    assert best.usd_per_month == pytest.approx(best.chips * 3.0 * 730)
    assert plan.to_dict()["price"]["quality"] == "user"
    # continuous chips: R * replica chips / r*, at most the whole replicas bought
    assert best.chips_continuous == pytest.approx(
        40.0 * best.layout.replica_chips / best.max_rate_per_replica
    )
    assert best.chips_continuous <= best.chips


def test_a_kind_without_a_price_has_no_dollars() -> None:
    """h100 has no published spot price: unknown, never its on-demand price in its place."""
    plan = _plan(10.0, p99_ttft_ms=300.0, price=price_for(system_for(CHIP), CHIP, kind="spot"))
    assert plan.best is not None
    assert plan.best.usd_per_million_output_tokens is None and plan.best.usd_per_month is None
    assert plan.to_dict()["price"]["kind"] == "spot" and plan.price_usd_per_chip_hour is None


def test_the_bound_never_changes_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reference: the exhaustive search, every candidate sized (the bound returns 0)."""
    fast = _plan(30.0, p99_ttft_ms=300.0)
    monkeypatch.setattr(capacity_module._Candidate, "bound", lambda self, rate: 0)
    full = _plan(30.0, p99_ttft_ms=300.0)
    assert full.pruned == 0 and len(full.options) >= len(fast.options)
    assert fast.best is not None and full.best is not None
    assert (fast.best.layout, fast.best.max_batch, fast.best.chips) == (
        full.best.layout,
        full.best.max_batch,
        full.best.chips,
    )


def test_moe_replicas_search_ep_within_the_node() -> None:
    tiers = replica_layouts(get_model("mixtral-8x7b"), system_for(CHIP), None)
    first = next(tiers)
    assert {(lay.tp, lay.ep) for lay in first} == {
        (1, 1), (1, 2), (1, 4), (1, 8), (2, 1), (2, 2), (2, 4), (4, 1), (4, 2), (8, 1),
    }  # fmt: skip
    dense = next(replica_layouts(get_model("llama3.1-8b"), system_for(CHIP), None))
    assert all(lay.ep == 1 and lay.pp == 1 for lay in dense)


def test_moe_plan_may_take_expert_parallelism() -> None:
    """Mixtral 8x7B (46.7B parameters, 93 GB in bf16) needs two H100s: tp=2 or ep=2; both are sized."""
    plan = plan_capacity(
        get_model("mixtral-8x7b"), system_for(CHIP), PRECISIONS, SHAPE, request_rate=4.0, chip=CHIP,
        max_replica_chips=2, num_requests=120, p99_ttft_ms=1000.0,
    )  # fmt: skip
    assert plan.best is not None and plan.best.layout.replica_chips == 2
    shapes = {(o.layout.tp, o.layout.ep) for o in plan.options}
    assert {(2, 1), (1, 2)} <= shapes <= {(2, 1), (1, 2)}
    assert any(e.startswith("tp=1:") for e in plan.explanation)  # one chip: no room


def test_pipeline_stages_only_when_the_node_cannot_hold_the_weights() -> None:
    """Llama 3.1 8B: 16.1 GB of bf16 weights; on 12 GiB chips, one per node, a replica needs pp=2
    (24 GiB) across nodes; on the catalog H100 (80 GiB) pp stays 1."""
    small = replace(CHIP, hbm_capacity_gib=12.0)
    system = replace(system_for(CHIP), node_chips=1)
    plan = plan_capacity(
        get_model("llama3.1-8b"), system, PRECISIONS, SHAPE, request_rate=5.0, chip=small, num_requests=120,
    )  # fmt: skip
    assert plan.best is not None and plan.best.layout.pp == 2 and plan.best.layout.tp == 1
    assert all(o.layout.pp == 2 for o in plan.options)
    assert _plan(5.0).best.layout.pp == 1


def test_more_traffic_never_needs_fewer_chips() -> None:
    low, high = _plan(10.0, p99_ttft_ms=300.0), _plan(80.0, p99_ttft_ms=300.0)
    assert low.best is not None and high.best is not None
    assert high.best.chips >= low.best.chips


def test_an_impossible_target_has_no_answer() -> None:
    plan = _plan(10.0, p99_ttft_ms=0.01)
    assert plan.best is None and "targets" in plan.explanation[-1]


def test_capacity_ratio_is_chips_times_price() -> None:
    a = {"best": {"chips": 8, "replicas": 2, "max_rate_per_replica": 5.0}, "price_usd_per_chip_hour": 2.0}
    b = {"best": {"chips": 16, "replicas": 8, "max_rate_per_replica": 1.25}, "price_usd_per_chip_hour": 4.0}
    r = capacity_ratio(a, b)
    assert r.chips == 0.5 and r.price == 0.5 and r.cost == 0.25
    assert r.replica_chips == 2.0 and r.per_replica_rate == 4.0
    assert r.factors is None  # no counterfactual plans given


def test_plan_and_compare_cli(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys, "plan", "--model", "llama3.1-8b", "--chip", "h100", "--chips", "1", "--infer",
        "--request-rate", "20", "--p99-ttft-ms", "500", "--input-tokens", "512", "--output-tokens", "128",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["best"]["replicas"] >= 1
    code, _, _ = run_cli(capsys, "compare", "llama3.1-8b", "--on", "h100,h200", "--infer")
    assert code == 2  # --infer needs --request-rate
