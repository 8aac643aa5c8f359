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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twofold.compare.plans import Target
from twofold.errors import InputError

__all__ = ["capacity_ratio", "inference_factors", "inference_ratio"]

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
) -> tuple[float | None, dict[str, float] | None, dict[str, Any] | None, dict[str, Any] | None, str]:
    """(ratio, factors, layout A, layout B, note) of one inference workload for a claim `metric`
    (throughput, latency, perf-per-dollar, perf-per-watt); ratio None with a note when it cannot be
    evaluated."""
    if metric == "perf-per-watt":
        return None, None, None, None, "not evaluated: perf/W of serving is not modelled yet"
    objective = "latency" if metric == "latency" else "throughput"
    try:
        plan_a = _plan(model, a, chips, input_tokens, output_tokens, objective, cache)
        plan_b = _plan(model, b, chips, input_tokens, output_tokens, objective, cache)
    except InputError as exc:
        return None, None, None, None, f"not evaluated: {exc}"
    if plan_a.best is None or plan_b.best is None:
        why = "; ".join((*plan_a.explanation, *plan_b.explanation)) or "no serving layout fits"
        return None, None, None, None, f"not evaluated: {why}"
    ea, eb = plan_a.best.to_dict(), plan_b.best.to_dict()
    # The estimate's own layout record: the same for a plan made here or read from a sweep store.
    layouts = dict(ea["layout"]), dict(eb["layout"])
    factors = inference_factors(ea, eb, chips)
    if metric == "latency":
        del factors["batch_per_chip"]
        return eb["e2e_latency_s"] / ea["e2e_latency_s"], factors, *layouts, ""
    ratio = ea["output_tokens_per_s_per_chip"] / eb["output_tokens_per_s_per_chip"]
    if metric == "perf-per-dollar":
        pa, pb = a.price.usd_per_chip_hour, b.price.usd_per_chip_hour
        if pa is None or pb is None:
            return None, None, *layouts, "not evaluated: price unknown"
        factors["price"] = pb / pa
        ratio *= pb / pa
    return ratio, factors, *layouts, ""


def capacity_ratio(plan: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, float | None]:
    """A chip's capacity plan at a request rate against the reference's (`serving.capacity`, dicts of
    `CapacityPlan.to_dict`), as exact multiplicative factors of the cost of serving the same rate:

        cost_A / cost_B = (chips_A / chips_B) * (price_A / price_B)

    `chips`: chips needed for the rate under the targets (bandwidth, capacity and compute all act
    here, through the replica's saturated rate and the batch its memory holds); `per_replica_rate`:
    requests/s one replica sustains under the targets, and `replica_chips`: its size, with
    chips = replicas * replica_chips; `price`: the chip-hour price ratio (None without both prices).
    None throughout when either plan has no answer."""
    a, b = plan.get("best"), reference.get("best")
    if a is None or b is None:
        return {"cost": None, "chips": None, "price": None, "per_replica_rate": None, "replica_chips": None}
    pa, pb = plan.get("price_usd_per_chip_hour"), reference.get("price_usd_per_chip_hour")
    price = None if pa is None or pb is None else float(pa) / float(pb)
    chips = float(a["chips"]) / float(b["chips"])
    return {
        "cost": None if price is None else chips * price,
        "chips": chips,
        "price": price,
        "per_replica_rate": float(a["rate_per_replica"]) / float(b["rate_per_replica"]),
        "replica_chips": (float(a["chips"]) / a["replicas"]) / (float(b["chips"]) / b["replicas"]),
    }
