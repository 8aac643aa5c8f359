"""Capacity at a request rate: the replicas, layout and batch that meet p99 latency targets at least cost.

For one chip, each candidate replica and each engine batch limit (`max_batch` in `BATCHES` that fits
beside the weights, a multiple of ep):
1. the replica's saturated rate r_sat: requests/s of a closed loop of `max_batch` requests;
2. the largest Poisson rate r* <= r_sat whose simulated p99 TTFT and p99 ITL meet the targets, by
   bisection (latency grows with the rate; `BISECTION_STEPS` halvings, so r* is within
   r_sat / 2^steps below the true limit);
3. replicas n = ceil(R / r*) (random routing splits a Poisson stream into Poisson streams of R/n),
   simulated once more at R/n for the figures reported.
The plan with the fewest chip-hours wins (the cheapest when a price is known: the same ranking);
ties go to the lower p99 TTFT, then the smaller replica and batch limit. $ per million output
tokens = n * chips * price / (R * mean output tokens * 3600) * 1e6; $ per month = n * chips * price
* 730 h.

Replicas searched (`replica_layouts`): tp = 1, 2, 4, ... dividing the heads, times ep = 1, 2, 4, ...
dividing the experts (MoE models only), with tp * ep within the chip's node; only when none of those
holds the weights and `BATCHES[0]` sequences, pp = 2, 4, ... stages across nodes, the fewest that
do. Since r* <= r_sat, n * chips >= ceil(R / r_sat) * chips: the candidates are sized in the order of
that bound and the search stops when it exceeds the fewest chips found (branch and bound; the best
plan is the exhaustive search's, `options` lists only the candidates sized).

Left out: replicas of different shapes, pp within a node (it only adds chips when tp fits),
autoscaling, and the tail latency of routing imbalance beyond random splitting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from twofold.checks import positive_ints
from twofold.economics.prices import Price, price_for
from twofold.errors import InputError
from twofold.estimate.inference import estimate_inference
from twofold.estimate.inference_types import InferenceLayout, InferenceWorkload
from twofold.hardware.types import Chip, System
from twofold.serving.config import ServingConfig
from twofold.serving.costs import StepCosts, step_costs
from twofold.serving.result import LoadResult
from twofold.serving.scheduler import simulate
from twofold.units import SECONDS_PER_HOUR
from twofold.workload.model import ModelConfig

__all__ = ["BATCHES", "CapacityOption", "CapacityPlan", "plan_capacity", "replica_layouts"]

BATCHES: tuple[int, ...] = (8, 16, 32, 64, 128, 256)
BISECTION_STEPS = 6
HOURS_PER_MONTH = 730.0
MAX_PIPELINE_STAGES = 16


@dataclass(frozen=True, kw_only=True, slots=True)
class CapacityOption:
    """One (layout, batch) sized for the rate: `replicas` of `layout`, each at `rate_per_replica`.

    `max_rate_per_replica` is r*, the most requests/s one replica takes within the targets;
    `chips_continuous` = R * replica chips / r*, the chips the rate needs before whole replicas are
    bought (`chips` / `chips_continuous` >= 1 is the rounding)."""

    layout: InferenceLayout
    max_batch: int
    replicas: int
    chips: int
    rate_per_replica: float
    max_rate_per_replica: float
    saturated_rate_per_replica: float
    chips_continuous: float
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
            "max_rate_per_replica": self.max_rate_per_replica,
            "saturated_rate_per_replica": self.saturated_rate_per_replica,
            "chips_continuous": self.chips_continuous,
            "p99_ttft_ms": self.load.ttft_ms.p99,
            "p99_itl_ms": self.load.itl_ms.p99,
            "output_tokens_per_s": self.load.output_tokens_per_s,
            "usd_per_million_output_tokens": self.usd_per_million_output_tokens,
            "usd_per_month": self.usd_per_month,
            "load": self.load.to_dict(),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class CapacityPlan:
    """The cheapest option for `request_rate` on `chip` (None if no option meets the targets).

    `price` is the price the dollars are at (its kind and grade; unknown: no dollar figures);
    `pruned` counts the (layout, batch) candidates the bound ruled out without sizing them."""

    model: str
    chip: str
    system: str
    request_rate: float
    p99_ttft_ms: float | None
    p99_itl_ms: float | None
    input_tokens: int
    output_tokens: int
    price: Price
    best: CapacityOption | None
    options: tuple[CapacityOption, ...]
    explanation: tuple[str, ...]
    elapsed_s: float
    pruned: int = 0

    @property
    def price_usd_per_chip_hour(self) -> float | None:
        return self.price.usd_per_chip_hour

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
            "price_usd_per_chip_hour": self.price.usd_per_chip_hour,
            "price": self.price.to_dict(),
            "best": None if self.best is None else self.best.to_dict(),
            "options": [o.to_dict() for o in self.options],
            "pruned": self.pruned,
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


def _powers_of_two(limit: int, divides: int) -> list[int]:
    return [1 << i for i in range(limit.bit_length()) if (1 << i) <= limit and divides % (1 << i) == 0]


def replica_layouts(model: ModelConfig, system: System, cap: int | None) -> Iterator[list[InferenceLayout]]:
    """Tiers of candidate replicas (module docstring): the in-node (tp, ep) layouts first, then, for
    pp = 2, 4, ... up to `MAX_PIPELINE_STAGES` stages (and `cap` chips a replica, if given), the same
    (tp, ep) as pipeline stages across nodes. The caller stops at the first tier where a layout fits."""
    node = max(min(int(system.node_chips), cap or system.node_chips), 1)
    eps = _powers_of_two(node, model.num_experts) if model.is_moe else [1]
    inner = [
        (tp, ep) for tp in _powers_of_two(node, model.num_attention_heads) for ep in eps if tp * ep <= node
    ]
    yield [InferenceLayout(tp=tp, ep=ep) for tp, ep in inner]
    pp = 2
    while pp <= min(MAX_PIPELINE_STAGES, model.num_layers):
        tier = [
            InferenceLayout(tp=tp, ep=ep, pp=pp) for tp, ep in inner if cap is None or tp * ep * pp <= cap
        ]
        if not tier:
            return
        yield tier
        pp *= 2


@dataclass(frozen=True, kw_only=True, slots=True)
class _Candidate:
    layout: InferenceLayout
    batch: int
    table: StepCosts
    saturated: float

    def bound(self, rate: float) -> int:
        """Fewest chips this candidate could need: r* <= r_sat."""
        return math.ceil(rate / self.saturated) * self.layout.replica_chips


def _candidates(
    model: ModelConfig,
    system: System,
    chip: Chip,
    shape: InferenceWorkload,
    load: ServingConfig,
    num_requests: int,
    max_replica_chips: int | None,
    explanation: list[str],
) -> list[_Candidate]:
    """Every (layout, batch) of the first tier of `replica_layouts` where one fits, with its table
    of step costs and its saturated rate."""
    max_context = (
        load.input_tokens + load.output_tokens + math.ceil(4 * (load.input_std + load.output_std)) + 2
    )
    out: list[_Candidate] = []
    for tier in replica_layouts(model, system, max_replica_chips):
        for layout in tier:
            name = f"tp={layout.tp}" + "".join(f" {k}={getattr(layout, k)}" for k in ("ep", "pp")
                                               if getattr(layout, k) > 1)  # fmt: skip
            try:
                top = estimate_inference(model, system, layout, replace(shape, batch=layout.ep), chip=chip)
            except InputError as exc:
                explanation.append(f"{name}: {exc}")
                continue
            batches = [b for b in BATCHES if b <= top.max_batch and b % layout.ep == 0]
            if not batches:
                explanation.append(f"{name}: the weights leave no room for {BATCHES[0]} sequences")
                continue
            costs = step_costs(
                model, system, layout, shape, max_batch=batches[-1] // layout.ep, max_context=max_context,
                max_prompt=max_context, exact_contexts=(top.decode_context_len,),
                exact_prompts=(load.input_tokens,), chip=chip, kv_capacity_tokens=top.kv_capacity_tokens,
            )  # fmt: skip
            for batch in batches:
                kv = estimate_inference(model, system, layout, replace(shape, batch=batch), chip=chip)
                table = replace(costs, kv_capacity_tokens=kv.kv_capacity_tokens)
                try:
                    saturated = _at(table, load, batch, num_requests, concurrency=batch).requests_per_s
                except InputError as exc:
                    explanation.append(f"{name} batch {batch}: {exc}")
                    continue
                out.append(_Candidate(layout=layout, batch=batch, table=table, saturated=saturated))
        if out:
            return out
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
    price: Price | None = None,
    num_requests: int = 400,
    max_replica_chips: int | None = None,
) -> CapacityPlan:
    """The plan (module docstring). `workload` gives the precisions; `load` the request shapes and the
    engine (its max_batch, concurrency and rate are replaced by the search's). `price`: the price
    the dollars are at (`economics.price_for`; default the system's catalog on-demand price).
    `max_replica_chips` caps the chips of one replica (default: the chip's node, pp beyond it only
    when the weights need it)."""
    if not request_rate > 0:
        raise InputError("request_rate", request_rate, "must be > 0 requests per second")
    for name, value in (("p99_ttft_ms", p99_ttft_ms), ("p99_itl_ms", p99_itl_ms)):
        if value is not None and not value > 0:
            raise InputError(name, value, "must be > 0 ms")
    positive_ints(max_replica_chips=max_replica_chips)
    started = time.perf_counter()
    price = price if price is not None else price_for(system, chip)
    usd_per_chip_hour = price.usd_per_chip_hour
    shape = replace(workload, input_tokens=load.input_tokens, output_tokens=load.output_tokens)
    explanation: list[str] = []
    candidates = _candidates(model, system, chip, shape, load, num_requests, max_replica_chips, explanation)
    candidates.sort(key=lambda c: (c.bound(request_rate), -c.saturated))
    options: list[CapacityOption] = []
    fewest = math.inf
    pruned = 0
    for i, cand in enumerate(candidates):
        if cand.bound(request_rate) > fewest:
            pruned = len(candidates) - i
            break
        layout, batch, table = cand.layout, cand.batch, cand.table
        lo, hi = 0.0, cand.saturated
        for _ in range(BISECTION_STEPS):
            mid = (lo + hi) / 2
            if _meets(_at(table, load, batch, num_requests, rate=mid), p99_ttft_ms, p99_itl_ms):
                lo = mid
            else:
                hi = mid
        if lo <= 0:
            explanation.append(f"tp={layout.tp} batch {batch}: misses the targets at any rate")
            continue
        replicas = math.ceil(request_rate / lo)
        at = _at(table, load, batch, num_requests, rate=request_rate / replicas)
        chips = replicas * layout.replica_chips
        fewest = min(fewest, chips)
        usd_m = usd_month = None
        if usd_per_chip_hour is not None:
            usd_month = chips * usd_per_chip_hour * HOURS_PER_MONTH
            usd_m = chips * usd_per_chip_hour / (request_rate * load.output_tokens * SECONDS_PER_HOUR) * 1e6
        options.append(
            CapacityOption(
                layout=layout, max_batch=batch, replicas=replicas, chips=chips,
                rate_per_replica=request_rate / replicas, max_rate_per_replica=lo,
                saturated_rate_per_replica=cand.saturated,
                chips_continuous=request_rate * layout.replica_chips / lo,
                load=at, usd_per_million_output_tokens=usd_m, usd_per_month=usd_month,
            )
        )  # fmt: skip
    # Equal chips and p99 TTFT (a batch limit the load never reaches): the smaller replica and limit.
    options.sort(
        key=lambda o: (o.chips, o.load.ttft_ms.p99, o.layout.pp, o.layout.tp, o.layout.ep, o.max_batch)
    )
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
        price=price,
        best=options[0] if options else None,
        options=tuple(options),
        explanation=tuple(explanation),
        elapsed_s=time.perf_counter() - started,
        pruned=pruned,
    )
