"""Claims on inference workloads: each chip's best serving plan (`search.plan_inference`) and the
ratio of chip A to chip B split into exact multiplicative factors.

Throughput (output tokens/s per chip) of a plan serving `batch` sequences per replica on `dp`
replicas over `chips` chips, each request taking E = TTFT + (M - 1) * TPOT seconds for M output
tokens (`estimate.inference`):

    thr = s * M / E,    s = dp * batch / chips   (sequences in flight per chip)

so thr_A / thr_B = (s_A / s_B) * (E_B / E_A), and the request time ratio telescopes over its two
phases, prefill P = TTFT (compute-bound) and decode D = (M - 1) * TPOT (memory-bound), replacing
B's phases by A's one at a time:

    E_B / E_A = [(P_B + D_B) / (P_B + D_A)] * [(P_B + D_A) / (P_A + D_A)]
              =        decode                *          prefill

- `batch_per_chip` = s_A / s_B: how many sequences fit beside the weights in HBM (capacity, KV
  cache), at the batch that maximises throughput;
- `decode`: the decode phase's speed-up (HBM bandwidth for weights and KV cache);
- `prefill`: the prefill phase's speed-up (compute).

`latency` claims use each chip's lowest-latency plan (objective "latency") and the ratio E_B / E_A
= decode * prefill. Perf per dollar multiplies the throughput ratio by `price` = price_B / price_A.
Perf per watt is not evaluated for inference (no utilisation model for serving yet): the row says so.
Each row also carries each chip's $ per million output tokens at its own `Target.price` (the kind
and grade asked for; None when that price is unknown, never another kind's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from twofold.compare.plans import Target
from twofold.errors import InputError

__all__ = ["InferenceRatio", "inference_factors", "inference_ratio"]

_Cache = dict[tuple[str, str, str, int, int, int, str], Any]


def _plan(
    model_name: str,
    tgt: Target,
    chips: int,
    input_tokens: int,
    output_tokens: int,
    objective: str,
    cache: _Cache,
) -> Any:
    from twofold.estimate.inference_types import InferenceWorkload
    from twofold.search.infer_plan import plan_inference
    from twofold.workload.registry import get_model

    key = (model_name, tgt.chip.id, tgt.system.id, chips, input_tokens, output_tokens, objective)
    if key not in cache:
        workload = InferenceWorkload(batch=1, input_tokens=input_tokens, output_tokens=output_tokens)
        cache[key] = plan_inference(
            get_model(model_name), tgt.system, chips, workload, objective=objective, top_k=1, chip=tgt.chip
        )
    return cache[key]


def inference_factors(a: Mapping[str, Any], b: Mapping[str, Any], chips: int) -> dict[str, float]:
    """Factors of thr_A / thr_B from two `InferenceEstimate.to_dict()` records (module docstring)."""

    def phases(e: Mapping[str, Any]) -> tuple[float, float, float]:
        m = e["workload"]["output_tokens"]
        per_chip = e["layout"]["dp"] * e["workload"]["batch"] / chips
        return per_chip, e["ttft_s"], (m - 1) * e["tpot_s"]

    sa, pa, da = phases(a)
    sb, pb, db = phases(b)
    return {
        "batch_per_chip": sa / sb,
        "decode": (pb + db) / (pb + da),
        "prefill": (pb + da) / (pa + da),
    }


@dataclass(frozen=True, kw_only=True, slots=True)
class InferenceRatio:
    """One inference workload of a claim: the ratio (None: not evaluated, `note` says why), its
    factors, both chips' layouts and each chip's $ per million output tokens (keyed by label)."""

    ratio: float | None = None
    factors: dict[str, float] | None = None
    layout_a: dict[str, Any] | None = None
    layout_b: dict[str, Any] | None = None
    note: str = ""
    usd_per_million_output_tokens: dict[str, float | None] = field(default_factory=dict)


def inference_ratio(
    a: Target,
    b: Target,
    *,
    model: str,
    chips: int,
    input_tokens: int,
    output_tokens: int,
    metric: str,
    cache: _Cache,
) -> InferenceRatio:
    """The `InferenceRatio` of one inference workload for a claim `metric` (throughput, latency,
    perf-per-dollar, perf-per-watt)."""
    from twofold.economics.prices import usd_per_million_tokens

    if metric == "perf-per-watt":
        return InferenceRatio(note="not evaluated: perf/W of serving is not modelled yet")
    objective = "latency" if metric == "latency" else "throughput"
    try:
        plan_a = _plan(model, a, chips, input_tokens, output_tokens, objective, cache)
        plan_b = _plan(model, b, chips, input_tokens, output_tokens, objective, cache)
    except InputError as exc:
        return InferenceRatio(note=f"not evaluated: {exc}")
    if plan_a.best is None or plan_b.best is None:
        why = "; ".join((*plan_a.explanation, *plan_b.explanation)) or "no serving layout fits"
        return InferenceRatio(note=f"not evaluated: {why}")
    ea, eb = plan_a.best.to_dict(), plan_b.best.to_dict()
    # The estimate's own layout record: the same for a plan made here or read from a sweep store.
    layouts: dict[str, Any] = {"layout_a": dict(ea["layout"]), "layout_b": dict(eb["layout"])}
    usd = {
        t.label: usd_per_million_tokens(t.price, e["output_tokens_per_s_per_chip"])
        for t, e in ((a, ea), (b, eb))
    }
    factors = inference_factors(ea, eb, chips)
    if metric == "latency":
        del factors["batch_per_chip"]
        ratio = eb["e2e_latency_s"] / ea["e2e_latency_s"]
        return InferenceRatio(ratio=ratio, factors=factors, usd_per_million_output_tokens=usd, **layouts)
    ratio = ea["output_tokens_per_s_per_chip"] / eb["output_tokens_per_s_per_chip"]
    if metric == "perf-per-dollar":
        pa, pb = a.price.usd_per_chip_hour, b.price.usd_per_chip_hour
        if pa is None or pb is None:
            return InferenceRatio(
                note="not evaluated: price unknown", usd_per_million_output_tokens=usd, **layouts
            )
        factors["price"] = pb / pa
        ratio *= pb / pa
    return InferenceRatio(ratio=ratio, factors=factors, usd_per_million_output_tokens=usd, **layouts)
