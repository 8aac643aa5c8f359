"""Capacity at a request rate (`serving.capacity`) and its comparison across chips.

References: the targets themselves (the chosen plan's simulated p99 TTFT and ITL meet them); the
definition of $ per million output tokens (chips x $/chip-hour over R x output tokens x 3600 s);
the exact split cost_A / cost_B = chips ratio x price ratio."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from twofold.compare.infer_claim import capacity_ratio
from twofold.estimate.inference_types import InferenceWorkload
from twofold.hardware.catalog import get_chip, system_for
from twofold.serving import ServingConfig
from twofold.serving.capacity import plan_capacity
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
    plan = _plan(40.0, p99_ttft_ms=300.0, p99_itl_ms=60.0, price_usd_per_chip_hour=3.0)
    best = plan.best
    assert best is not None
    assert best.load.ttft_ms.p99 <= 300.0 and best.load.itl_ms.p99 <= 60.0
    assert best.replicas * best.rate_per_replica == pytest.approx(40.0)
    assert best.rate_per_replica <= best.saturated_rate_per_replica
    assert best.usd_per_million_output_tokens == pytest.approx(best.chips * 3.0 / (40.0 * 128 * 3600) * 1e6)
    assert best.usd_per_month == pytest.approx(best.chips * 3.0 * 730)


def test_more_traffic_never_needs_fewer_chips() -> None:
    low, high = _plan(10.0, p99_ttft_ms=300.0), _plan(80.0, p99_ttft_ms=300.0)
    assert low.best is not None and high.best is not None
    assert high.best.chips >= low.best.chips


def test_an_impossible_target_has_no_answer() -> None:
    plan = _plan(10.0, p99_ttft_ms=0.01)
    assert plan.best is None and "targets" in plan.explanation[-1]


def test_capacity_ratio_is_chips_times_price() -> None:
    a = {"best": {"chips": 8, "replicas": 2, "rate_per_replica": 5.0}, "price_usd_per_chip_hour": 2.0}
    b = {"best": {"chips": 16, "replicas": 8, "rate_per_replica": 1.25}, "price_usd_per_chip_hour": 4.0}
    r = capacity_ratio(a, b)
    assert r["chips"] == 0.5 and r["price"] == 0.5 and r["cost"] == 0.25
    assert r["replica_chips"] == 2.0 and r["per_replica_rate"] == 4.0


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
