"""`plan_inference`: the serving layout and batch that maximise output tokens/s per chip under
latency targets.

Search space, exhaustive over layouts: every (tp, pp, ep) whose replica `tp*pp*ep` divides `chips`
(dp = chips / replica, so every chip serves), ep > 1 only for MoE models (dividing num_experts),
pp <= layers. Layouts the operator graph or the boundary checks reject (tp not dividing the heads,
...) are counted by reason, not silently dropped. For each layout the batch (sequences per replica,
a multiple of ep) is searched vectorised (`estimate.inference.evaluate_batches` prices all batch
sizes of a layout in one call): first ep x 1, 2, 4, ... up to the largest batch that fits
(`max_batch`), then, where a latency target cuts between two of those, a second grid of
`REFINE_POINTS` batches between the last one that meets the targets and the first that does not
(TTFT and TPOT grow with the batch, so the best feasible batch lies there).

Objectives: `throughput` (output tokens/s per chip, the default), `latency` (end-to-end latency,
then throughput), `cost` ($ per million output tokens: the price per chip-hour over throughput per
chip; needs a price, and ranks as throughput does, since every layout pays the same per chip). Every
row carries $ per million output tokens at `price` (`economics.price_for`: the catalog on-demand
price by default, or the kind, grade or user price asked for; None when unknown). Left out:
heterogeneous prefill/decode pools (disaggregated serving) and per-request latency distributions
under load.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from twofold.checks import one_of, positive, positive_int, positive_ints
from twofold.economics.prices import Price, price_for, usd_per_million_tokens
from twofold.errors import InputError
from twofold.estimate.inference import estimate_inference, evaluate_batches
from twofold.estimate.inference_memory import activation_bytes_per_sequence, capacity
from twofold.estimate.inference_result import InferenceEstimate
from twofold.estimate.inference_types import (
    InferenceLayout,
    InferenceWorkload,
    check_inference,
    serving_model,
)
from twofold.hardware.types import Chip, System
from twofold.parallel.memory import DEFAULT_MEM_HEADROOM, usable_memory_bytes
from twofold.workload.model import ModelConfig

__all__ = ["INFERENCE_OBJECTIVES", "InferencePlan", "plan_inference"]

INFERENCE_OBJECTIVES = ("throughput", "latency", "cost")
REFINE_POINTS = 16


@dataclass(frozen=True, kw_only=True, slots=True)
class InferencePlan:
    """The outcome of a serving search. `best` is None when no (layout, batch) meets the targets;
    `explanation` then says why. `top` lists the best candidate of each layout, ranked."""

    model: str
    chip: str
    system: str
    chips: int
    workload: InferenceWorkload
    objective: str
    max_ttft_ms: float | None
    max_tpot_ms: float | None
    best: InferenceEstimate | None
    top: tuple[Mapping[str, Any], ...] = ()
    evaluated_layouts: int = 0
    evaluated_candidates: int = 0
    rejected: Mapping[str, int] = field(default_factory=dict)
    explanation: tuple[str, ...] = ()
    elapsed_s: float = 0.0
    price: Price | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "chip": self.chip,
            "system": self.system,
            "chips": self.chips,
            "workload": asdict(self.workload),
            "objective": self.objective,
            "price": None if self.price is None else self.price.to_dict(),
            "max_ttft_ms": self.max_ttft_ms,
            "max_tpot_ms": self.max_tpot_ms,
            "best": None if self.best is None else self.best.to_dict(),
            "top": [dict(t) for t in self.top],
            "evaluated_layouts": self.evaluated_layouts,
            "evaluated_candidates": self.evaluated_candidates,
            "rejected": dict(self.rejected),
            "explanation": list(self.explanation),
            "elapsed_s": self.elapsed_s,
        }


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _layouts(model: ModelConfig, chips: int, pad_heads: bool) -> list[InferenceLayout]:
    eps = (
        [e for e in _divisors(chips) if model.is_moe and model.num_experts % e == 0] if model.is_moe else [1]
    )
    out = []
    for tp in _divisors(chips):
        for pp in _divisors(chips // tp):
            for ep in eps:
                if (chips // (tp * pp)) % ep == 0:
                    out.append(
                        InferenceLayout(tp=tp, pp=pp, ep=ep, dp=chips // (tp * pp * ep), pad_heads=pad_heads)
                    )
    return out


def _check_args(chips: int, objective: str, max_ttft_ms: float | None, max_tpot_ms: float | None) -> None:
    positive_int("chips", chips)
    one_of("objective", objective, INFERENCE_OBJECTIVES)
    for name, value in (("max_ttft_ms", max_ttft_ms), ("max_tpot_ms", max_tpot_ms)):
        if value is not None:
            positive(name, value, "must be a positive number of milliseconds", finite=True)


def _meets(row: Mapping[str, np.ndarray], ttft_ms: float | None, tpot_ms: float | None) -> np.ndarray:
    ok = np.asarray(row["fits"], dtype=bool).copy()
    if ttft_ms is not None:
        ok &= row["ttft_s"] * 1e3 <= ttft_ms
    if tpot_ms is not None:
        ok &= row["tpot_s"] * 1e3 <= tpot_ms
    return ok


def _score(row: Mapping[str, np.ndarray], objective: str) -> np.ndarray:
    """Larger is better."""
    if objective == "latency":
        return -row["e2e_latency_s"] + 1e-12 * row["output_tokens_per_s_per_chip"]
    return row["output_tokens_per_s_per_chip"]


def _search_layout(
    model: ModelConfig,
    system: System,
    chip: Chip,
    layout: InferenceLayout,
    workload: InferenceWorkload,
    max_batch: int,
    targets: tuple[float | None, float | None],
    mem_headroom: float = DEFAULT_MEM_HEADROOM,
) -> tuple[int, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(candidates evaluated, rows, batches, feasible mask) for one layout: doubling grid, then refine."""
    ep = layout.ep
    grid = [ep * (1 << i) for i in range(64) if ep * (1 << i) <= max_batch]
    batches = np.unique(np.array(grid + [max_batch], dtype=np.int64))
    row = evaluate_batches(model, system, layout, workload, batches, chip=chip, mem_headroom=mem_headroom)
    ok = _meets(row, *targets)
    n = len(batches)
    if ok.any() and not ok.all():
        last = int(np.flatnonzero(ok)[-1])
        if last + 1 < n:
            lo, hi = int(batches[last]) // ep, int(batches[last + 1]) // ep
            fine = np.unique(np.linspace(lo, hi, REFINE_POINTS + 2).round().astype(np.int64)[1:-1]) * ep
            fine = fine[(fine > batches[last]) & (fine < batches[last + 1])]
            if fine.size:
                extra = evaluate_batches(
                    model, system, layout, workload, fine, chip=chip, mem_headroom=mem_headroom
                )
                row = {k: np.concatenate([row[k], extra[k]]) for k in row}
                batches = np.concatenate([batches, fine])
                ok = np.concatenate([ok, _meets(extra, *targets)])
                n += fine.size
    return n, row, batches, ok


def plan_inference(
    model: ModelConfig,
    system_or_chip: System | Chip,
    chips: int,
    workload: InferenceWorkload,
    *,
    max_ttft_ms: float | None = None,
    max_tpot_ms: float | None = None,
    objective: str = "throughput",
    batch_limit: int | None = None,
    pad_heads: bool = False,
    top_k: int = 10,
    chip: Chip | None = None,
    mem_headroom: float = DEFAULT_MEM_HEADROOM,
    price: Price | None = None,
) -> InferencePlan:
    """Search serving layouts and batch sizes (module docstring); `workload.batch` is replaced by
    the searched batch, `batch_limit` caps it (e.g. an engine's maximum concurrency). `chip`
    overrides the system's catalog chip (a what-if or measured chip). Memory fits within capacity
    * (1 - `mem_headroom`) (`parallel.memory`). `price`: the dollars' price (default the catalog
    on-demand one)."""
    from twofold.hardware.catalog import chip_of, system_for

    start = time.perf_counter()
    _check_args(chips, objective, max_ttft_ms, max_tpot_ms)
    if isinstance(system_or_chip, Chip):
        system = system_for(system_or_chip)
        chip = chip if chip is not None else system_or_chip
    else:
        system = system_or_chip
        chip = chip if chip is not None else chip_of(system)
    positive_ints(batch_limit=batch_limit)
    price = price if price is not None else price_for(system, chip)
    if objective == "cost" and price.usd_per_chip_hour is None:
        raise InputError(
            "objective", objective, f"no price ({price.kind}) for {system.id}: {price.note or 'unknown'}"
        )
    check_inference(model, system, InferenceLayout(), replace(workload, batch=1))
    usable = usable_memory_bytes(chip.hbm_capacity_bytes, mem_headroom)

    rejected: dict[str, int] = {}
    ranked: list[tuple[float, InferenceLayout, int, dict[str, Any]]] = []
    evaluated_layouts = candidates = 0
    fastest: tuple[float, float] | None = None  # best (ttft_ms, tpot_ms) seen among fitting candidates
    for layout in _layouts(model, chips, pad_heads):
        try:
            check_inference(model, system, layout, replace(workload, batch=layout.ep))
            served = serving_model(model, layout)
            act = activation_bytes_per_sequence(served, layout, workload)
        except InputError as exc:
            key = f"{exc.field}: {exc.rule}"
            rejected[key] = rejected.get(key, 0) + 1
            continue
        max_batch = capacity(served, layout, workload, usable, act_per_seq_bytes=act)["max_batch"]
        if batch_limit is not None:
            max_batch = min(max_batch, batch_limit - batch_limit % layout.ep)
        evaluated_layouts += 1
        if max_batch < layout.ep:
            rejected["memory: weights and one batch do not fit"] = (
                rejected.get("memory: weights and one batch do not fit", 0) + 1
            )
            continue
        n, row, batches, ok = _search_layout(
            model, system, chip, layout, workload, max_batch, (max_ttft_ms, max_tpot_ms), mem_headroom
        )
        candidates += n
        ttft_min, tpot_min = float(row["ttft_s"].min()) * 1e3, float(row["tpot_s"].min()) * 1e3
        fastest = (
            (ttft_min, tpot_min)
            if fastest is None
            else (min(fastest[0], ttft_min), min(fastest[1], tpot_min))
        )
        if not ok.any():
            rejected["latency: no batch meets the targets"] = (
                rejected.get("latency: no batch meets the targets", 0) + 1
            )
            continue
        score = np.where(ok, _score(row, objective), -np.inf)
        i = int(np.argmax(score))
        metrics = {
            "layout": asdict(layout),
            "batch": int(batches[i]),
            "max_batch": int(max_batch),
            "ttft_ms": float(row["ttft_s"][i]) * 1e3,
            "tpot_ms": float(row["tpot_s"][i]) * 1e3,
            "e2e_latency_s": float(row["e2e_latency_s"][i]),
            "output_tokens_per_s_per_chip": float(row["output_tokens_per_s_per_chip"][i]),
            "output_tokens_per_s": float(row["output_tokens_per_s"][i]),
            "memory_per_chip_gib": float(row["memory_per_chip_bytes"][i]) / 2**30,
            "usd_per_million_output_tokens": usd_per_million_tokens(
                price, float(row["output_tokens_per_s_per_chip"][i])
            ),
        }
        ranked.append((float(score[i]), layout, int(batches[i]), metrics))

    ranked.sort(key=lambda r: -r[0])
    best = None
    explanation: list[str] = []
    if ranked:
        _, layout, batch, _ = ranked[0]
        best = estimate_inference(
            model, system, layout, replace(workload, batch=batch), chip=chip, mem_headroom=mem_headroom
        ).priced(price)
    else:
        explanation.append(f"no layout of {chips} x {chip.id} serves {model.name} under the targets")
        if fastest is not None:
            given = (("TTFT", max_ttft_ms), ("TPOT", max_tpot_ms))
            targets = ", ".join(f"{name} <= {ms:g} ms" for name, ms in given if ms is not None)
            explanation.append(
                f"fastest seen: TTFT {fastest[0]:.1f} ms, TPOT {fastest[1]:.2f} ms (targets: {targets})"
            )
        for reason, count in sorted(rejected.items(), key=lambda kv: -kv[1]):
            explanation.append(f"{count} layouts rejected: {reason}")
    return InferencePlan(
        model=model.name,
        chip=chip.id,
        system=system.id,
        chips=chips,
        workload=workload,
        objective=objective,
        max_ttft_ms=max_ttft_ms,
        max_tpot_ms=max_tpot_ms,
        best=best,
        top=tuple(m for *_, m in ranked[:top_k]),
        evaluated_layouts=evaluated_layouts,
        evaluated_candidates=candidates,
        rejected=rejected,
        explanation=tuple(explanation),
        elapsed_s=time.perf_counter() - start,
        price=price,
    )
