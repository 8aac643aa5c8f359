"""Capacity at a request rate: the replicas, layout and batch that meet p99 latency targets at least cost.

For one chip and each candidate replica (tp = 1, 2, 4, ... chips within the chip's node, the
divisors its heads allow; pp = ep = 1) and engine batch limit (`max_batch` in `BATCHES` that fits
beside the weights):
1. the replica's saturated rate r_sat: requests/s of a closed loop of `max_batch` requests;
2. the largest Poisson rate r* <= r_sat whose simulated p99 TTFT and p99 ITL meet the targets, by
   bisection (latency grows with the rate; `BISECTION_STEPS` halvings, so r* is within
   r_sat / 2^steps below the true limit);
3. replicas n = ceil(R / r*) (random routing splits a Poisson stream into Poisson streams of R/n),
   simulated once more at R/n for the figures reported.
The plan with the fewest chip-hours wins (the cheapest when a price is known: the same ranking);
ties go to the lower p99 TTFT. $ per million output tokens = n * chips * price / (R * mean output
tokens * 3600) * 1e6; $ per month = n * chips * price * 730 h.

Left out: layouts with pp or ep (the search over them is `search.infer_plan`'s), replicas of
different shapes, autoscaling, and the tail latency of routing imbalance beyond random splitting.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

from twofold.errors import InputError
from twofold.estimate.inference import estimate_inference
from twofold.estimate.inference_types import InferenceLayout, InferenceWorkload
from twofold.hardware.types import Chip, System
from twofold.serving.config import ServingConfig
from twofold.serving.costs import StepCosts, step_costs
from twofold.serving.result import LoadResult
from twofold.serving.scheduler import simulate
from twofold.workload.model import ModelConfig

__all__ = ["BATCHES", "CapacityOption", "CapacityPlan", "plan_capacity"]

BATCHES: tuple[int, ...] = (8, 16, 32, 64, 128, 256)
BISECTION_STEPS = 6
HOURS_PER_MONTH = 730.0


@dataclass(frozen=True, kw_only=True)
class CapacityOption:
    """One (layout, batch) sized for the rate: `replicas` of `layout`, each at `rate_per_replica`."""

    layout: InferenceLayout
    max_batch: int
    replicas: int
    chips: int
    rate_per_replica: float
    saturated_rate_per_replica: float
    load: LoadResult
    usd_per_million_output_tokens: float | None
    usd_per_month: float | None

    def to_dict(self) -> dict[str, Any]:
        lay = self.layout
        return {
            "layout": {"tp": lay.tp, "pp": lay.pp, "ep": lay.ep, "dp": self.replicas},
            "max_batch": self.max_batch,
            "replicas": self.replicas,
            "chips": self.chips,
            "rate_per_replica": self.rate_per_replica,
            "saturated_rate_per_replica": self.saturated_rate_per_replica,
            "p99_ttft_ms": self.load.ttft_ms.p99,
            "p99_itl_ms": self.load.itl_ms.p99,
            "output_tokens_per_s": self.load.output_tokens_per_s,
            "usd_per_million_output_tokens": self.usd_per_million_output_tokens,
            "usd_per_month": self.usd_per_month,
            "load": self.load.to_dict(),
        }


@dataclass(frozen=True, kw_only=True)
class CapacityPlan:
    """The cheapest option for `request_rate` on `chip` (None if no option meets the targets)."""

    model: str
    chip: str
    system: str
    request_rate: float
    p99_ttft_ms: float | None
    p99_itl_ms: float | None
    input_tokens: int
    output_tokens: int
    price_usd_per_chip_hour: float | None
    best: CapacityOption | None
    options: tuple[CapacityOption, ...]
    explanation: tuple[str, ...]
    elapsed_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "chip": self.chip,
            "system": self.system,
            "request_rate": self.request_rate,
            "p99_ttft_ms": self.p99_ttft_ms,
            "p99_itl_ms": self.p99_itl_ms,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "price_usd_per_chip_hour": self.price_usd_per_chip_hour,
            "best": None if self.best is None else self.best.to_dict(),
            "options": [o.to_dict() for o in self.options],
            "explanation": list(self.explanation),
            "elapsed_s": self.elapsed_s,
        }


def _meets(load: LoadResult, p99_ttft_ms: float | None, p99_itl_ms: float | None) -> bool:
    ok = p99_ttft_ms is None or load.ttft_ms.p99 <= p99_ttft_ms
    return ok and (p99_itl_ms is None or load.itl_ms.p99 <= p99_itl_ms)


def _at(
    table: StepCosts,
    load: ServingConfig,
    batch: int,
    num_requests: int,
    *,
    concurrency: int | None = None,
    rate: float | None = None,
) -> LoadResult:
    cfg = replace(
        load, max_batch=batch, num_requests=num_requests, concurrency=concurrency, request_rate=rate
    )
    return simulate(table, cfg)


def _tp_candidates(model: ModelConfig, system: System, cap: int | None) -> list[int]:
    node = max(min(int(system.node_chips), cap or system.node_chips), 1)
    out = []
    tp = 1
    while tp <= node:
        if model.num_attention_heads % tp == 0:
            out.append(tp)
        tp *= 2
    return out


def plan_capacity(
    model: ModelConfig,
    system: System,
    workload: InferenceWorkload,
    load: ServingConfig,
    *,
    request_rate: float,
    p99_ttft_ms: float | None = None,
    p99_itl_ms: float | None = None,
    chip: Chip,
    price_usd_per_chip_hour: float | None = None,
    num_requests: int = 400,
    max_replica_chips: int | None = None,
) -> CapacityPlan:
    """The plan (module docstring). `workload` gives the precisions; `load` the request shapes and the
    engine (its max_batch, concurrency and rate are replaced by the search's). `max_replica_chips`
    caps tp (default: the chip's node)."""
    if not request_rate > 0:
        raise InputError("request_rate", request_rate, "must be > 0 requests per second")
    for name, value in (("p99_ttft_ms", p99_ttft_ms), ("p99_itl_ms", p99_itl_ms)):
        if value is not None and not value > 0:
            raise InputError(name, value, "must be > 0 ms")
    started = time.perf_counter()
    price = price_usd_per_chip_hour if price_usd_per_chip_hour is not None else system.price_usd_per_chip_hour
    shape = replace(workload, input_tokens=load.input_tokens, output_tokens=load.output_tokens)
    max_context = (
        load.input_tokens + load.output_tokens + math.ceil(4 * (load.input_std + load.output_std)) + 2
    )
    options: list[CapacityOption] = []
    explanation: list[str] = []
    for tp in _tp_candidates(model, system, max_replica_chips):
        layout = InferenceLayout(tp=tp)
        try:
            top = estimate_inference(model, system, layout, replace(shape, batch=1), chip=chip)
        except InputError as exc:
            explanation.append(f"tp={tp}: {exc}")
            continue
        batches = [b for b in BATCHES if b <= top.max_batch]
        if not batches:
            explanation.append(f"tp={tp}: the weights leave no room for 8 sequences")
            continue
        costs = step_costs(
            model, system, layout, shape, max_batch=batches[-1], max_context=max_context,
            max_prompt=max_context, exact_contexts=(top.decode_context_len,),
            exact_prompts=(load.input_tokens,), chip=chip, kv_capacity_tokens=top.kv_capacity_tokens,
        )  # fmt: skip
        for batch in batches:
            kv = estimate_inference(model, system, layout, replace(shape, batch=batch), chip=chip)
            table = replace(costs, kv_capacity_tokens=kv.kv_capacity_tokens)

            try:
                saturated = _at(table, load, batch, num_requests, concurrency=batch).requests_per_s
                lo, hi = 0.0, saturated
                for _ in range(BISECTION_STEPS):
                    mid = (lo + hi) / 2
                    if _meets(_at(table, load, batch, num_requests, rate=mid), p99_ttft_ms, p99_itl_ms):
                        lo = mid
                    else:
                        hi = mid
            except InputError as exc:
                explanation.append(f"tp={tp} batch {batch}: {exc}")
                continue
            if lo <= 0:
                explanation.append(f"tp={tp} batch {batch}: misses the targets at any rate")
                continue
            replicas = math.ceil(request_rate / lo)
            at = _at(table, load, batch, num_requests, rate=request_rate / replicas)
            chips = replicas * layout.replica_chips
            usd_m = usd_month = None
            if price is not None:
                usd_month = chips * price * HOURS_PER_MONTH
                usd_m = chips * price / (request_rate * load.output_tokens * 3600.0) * 1e6
            options.append(
                CapacityOption(
                    layout=layout, max_batch=batch, replicas=replicas, chips=chips,
                    rate_per_replica=request_rate / replicas, saturated_rate_per_replica=saturated,
                    load=at, usd_per_million_output_tokens=usd_m, usd_per_month=usd_month,
                )
            )  # fmt: skip
    options.sort(key=lambda o: (o.chips, o.load.ttft_ms.p99))
    if not options:
        explanation.append("no layout and batch meets the targets")
    return CapacityPlan(
        model=model.name,
        chip=chip.id,
        system=system.id,
        request_rate=request_rate,
        p99_ttft_ms=p99_ttft_ms,
        p99_itl_ms=p99_itl_ms,
        input_tokens=load.input_tokens,
        output_tokens=load.output_tokens,
        price_usd_per_chip_hour=price,
        best=options[0] if options else None,
        options=tuple(options),
        explanation=tuple(explanation),
        elapsed_s=time.perf_counter() - started,
    )
