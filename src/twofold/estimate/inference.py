"""Serving estimate: time to first token, time per output token, throughput and memory per chip.

Prefill priced as one forward pass over the prompts (TTFT), decode as one step at the mean context
(TPOT), end-to-end latency and output tokens/s from both; per operator the single-chip cost model,
the breakdown split into compute, weight reads, KV cache, activations and overhead; tensor, expert
and pipeline parallelism with their collectives and the pipeline's fill and drain. The formulas,
their citations (Pope et al. 2023, Agrawal et al. 2024, Shoeybi et al. 2019, Huang et al. 2019)
and what is left out: docs/inference.md, "The serving estimate in full".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any, cast

import numpy as np

from twofold.cost import op_time_terms, profile_for
from twofold.cost.calibration import TrainingCalibration, shipped_calibration
from twofold.cost.profile import CalibrationProfile
from twofold.estimate.inference_memory import (
    activation_bytes_per_sequence,
    capacity,
    memory_for_batches,
    split_bytes,
)
from twofold.estimate.inference_result import BREAKDOWN_TERMS, MEMORY_PARTS, InferenceEstimate
from twofold.estimate.inference_types import (
    InferenceLayout,
    InferenceWorkload,
    check_inference,
    micro_batches,
    serving_model,
)
from twofold.hardware.types import Chip, System
from twofold.parallel.comm import Group, LevelArrays, all_reduce_s, all_to_all_s, send_recv_s
from twofold.parallel.memory import DEFAULT_MEM_HEADROOM, usable_memory_bytes
from twofold.workload.graph import activation_bytes, decode_ops, prefill_ops
from twofold.workload.model import ModelConfig
from twofold.workload.ops import Op
from twofold.workload.precision import bytes_per_element

__all__ = ["estimate_inference", "evaluate_batches", "serving_profile", "tp_allreduce_s"]

_FIRST_STAGE = ("embedding",)
_STAGE_TERMS = ("compute", "weight_read", "kv_cache", "activation_io", "overhead")


def _stage_scale(op: Op, layer_share: float, pp: int) -> float:
    """How much of the op the slowest (last) stage runs: its share of the layers, and the LM head."""
    if op.name.startswith("layer."):
        return layer_share
    if op.name.split(".")[0] in _FIRST_STAGE:
        return 1.0 if pp == 1 else 0.0
    return 1.0


def _stage_terms(
    graphs: Sequence[Sequence[Op]],
    chip: Chip,
    profile: CalibrationProfile,
    *,
    layer_share: float,
    pp: int,
    act_bytes: float,
    weight_bytes: float,
) -> dict[str, np.ndarray]:
    """Seconds of one pipeline step's kernels on the slowest stage, by term, one entry per graph;
    all graphs are priced in one vectorised call."""
    flat = [op for ops in graphs for op in ops]
    seg = np.repeat(np.arange(len(graphs)), [len(ops) for ops in graphs])
    t = op_time_terms(flat, chip, profile)
    weight = np.array([op.count * _stage_scale(op, layer_share, pp) for op in flat], dtype=float)
    split = np.array([split_bytes(op, act_bytes, weight_bytes) for op in flat], dtype=float).reshape(-1, 2)
    moved = np.array([op.bytes_read + op.bytes_written for op in flat], dtype=float)
    body = np.maximum(t.compute_s, t.memory_s)
    bound = t.compute_bound
    memory = np.where(bound, 0.0, body)
    share = np.divide(split, moved[:, None], out=np.zeros_like(split), where=moved[:, None] > 0)
    w_read, kv = memory * share[:, 0], memory * share[:, 1]
    parts = {
        "compute": np.where(bound, body, 0.0),
        "weight_read": w_read,
        "kv_cache": kv,
        "activation_io": memory - w_read - kv,
        "overhead": t.overhead_s,
    }
    n = len(graphs)
    return {k: np.bincount(seg, weights=v * weight, minlength=n) for k, v in parts.items()}


def serving_profile(profile: CalibrationProfile) -> CalibrationProfile:
    """`profile` as serving engines run it: GEMMs by GEMV / split-K / stream-K kernels where that is
    less work than tiles in waves (`cost.gemm.skinny_padded_flops`; decode batches are a few rows)."""
    return replace(profile, extra=MappingProxyType({**profile.extra, "serving_gemm_kernels": 1.0}))


def tp_allreduce_s(
    levels: Sequence[LevelArrays], group: Group, nbytes: np.ndarray, system: System, chip: Chip, tp: int
) -> np.ndarray:
    """One tensor-parallel all-reduce of `nbytes` per chip, as serving engines run it.

    The ring (`parallel.comm.all_reduce_s`) pays 2(tp-1) latency steps. Within one NVLink domain
    vLLM's custom all-reduce (csrc/custom_all_reduce.cuh, `cross_device_reduce_1stage`) and
    TensorRT-LLM's ONESHOT strategy instead have every GPU read its peers' buffers and reduce
    locally: two synchronisations and (tp-1) x nbytes read over the chip's NVLink bandwidth,

        t = 2 * latency + (tp - 1) * nbytes / bandwidth,

    which wins for the small messages of decode (tokens x hidden x 2 bytes). The least of the two
    is charged on GPUs whose tp group fits the innermost level; other chips (Neuron, TPU) keep the
    ring. Left out: the collective efficiency of the level (the one-shot kernel is latency-bound at
    these sizes) and the 2-stage variant for mid-sized messages.
    """
    ring = all_reduce_s(levels, group, nbytes)
    inner = system.levels[0] if system.levels else None
    if chip.architecture != "gpu" or inner is None or (inner.domain_chips or 0) < tp:
        return ring
    one_shot = 2.0 * inner.latency_us * 1e-6 + (tp - 1.0) * nbytes / (inner.bandwidth_gb_s_per_chip * 1e9)
    return np.asarray(np.minimum(ring, one_shot))


def _phase(stage: dict[str, np.ndarray], steps: np.ndarray, busy: np.ndarray) -> dict[str, np.ndarray]:
    step = np.zeros_like(steps)
    for v in stage.values():
        step = step + v
    out = {k: busy * v for k, v in stage.items()}
    out["pipeline_bubble"] = (steps - busy) * step
    return out


def evaluate_batches(
    model: ModelConfig,
    system: System,
    layout: InferenceLayout,
    workload: InferenceWorkload,
    batches: Sequence[int] | np.ndarray,
    *,
    chip: Chip | None = None,
    profile: CalibrationProfile | None = None,
    calibration: TrainingCalibration | None = None,
    mem_headroom: float = DEFAULT_MEM_HEADROOM,
) -> dict[str, np.ndarray]:
    """Serving figures for `workload` at each batch size of `batches` (`workload.batch` is ignored),
    vectorised over the batches: one graph per distinct micro-batch size, all priced in one call.

    Returns arrays aligned with `batches`: `ttft_s`, `tpot_s`, `e2e_latency_s`,
    `output_tokens_per_s`, `output_tokens_per_s_per_chip`, `decode_tokens_per_s`, `micro_batches`,
    `prefill_<term>_s` and `decode_<term>_s` for each of `BREAKDOWN_TERMS`, `memory_<part>_bytes`
    for each of `MEMORY_PARTS`, `memory_per_chip_bytes` and `fits`. The layout is assumed checked.
    `calibration` (`cost.calibration`; None = the shipped factors, as in `estimate.training`) sets
    the profile (unless `profile` is given) and the collective efficiency. Its per-op overhead
    factor, which describes eager training steps, is left out: serving engines replay decode
    steps as CUDA graphs (vLLM, TensorRT-LLM), so the profile's `op_overhead_s` stands. `fits`:
    memory per chip at most capacity * (1 - `mem_headroom`) (`parallel.memory`, as in training).
    """
    chip = chip if chip is not None else _chip_of(system)
    usable = usable_memory_bytes(chip.hbm_capacity_bytes, mem_headroom)
    calibration = shipped_calibration() if calibration is None else calibration
    calibration = calibration.with_factors(op_overhead_factor=1.0)
    profile = serving_profile(profile if profile is not None else profile_for(chip, calibration))
    served = serving_model(model, layout)
    tp, pp, ep = layout.tp, layout.pp, layout.ep
    batch = np.asarray(batches, dtype=float)
    m, b = micro_batches(batch, layout)
    sizes = np.unique(b).astype(int)
    idx = np.searchsorted(sizes, b)
    n_in, ctx = workload.input_tokens, workload.decode_context_len
    kw: dict[str, Any] = dict(
        precision=workload.precision,
        kv_precision=workload.kv,
        weight_precision=workload.weights,
        tp=tp,
        ep=ep,
    )
    prefill = [prefill_ops(served, batch=int(s), seq_len=n_in, **kw) for s in sizes]
    decode = [decode_ops(served, batch=int(s), context_len=ctx, **kw) for s in sizes]

    ab = activation_bytes(workload.precision)  # what the all-reduces and pipeline sends carry
    wb = bytes_per_element(workload.weights, "weight_precision")
    layers = math.ceil(served.num_layers / pp)
    share = layers / served.num_layers
    costs: dict[str, Any] = dict(layer_share=share, pp=pp, act_bytes=ab, weight_bytes=wb)
    stage_p = _stage_terms(prefill, chip, profile, **costs)
    stage_d = _stage_terms(decode, chip, profile, **costs)

    levels = LevelArrays.of_system(system, calibration.collective_efficiency)
    h = served.hidden_size
    moe_layers = layers * served.num_moe_layers / served.num_layers
    tp_g = Group.place(levels, [(float(tp), 1.0)])
    ep_g = Group.place(levels, [(float(ep), float(tp))])
    pp_g = Group.place(levels, [(float(pp), float(tp * ep))])
    for stage, tokens in ((stage_p, sizes * float(n_in)), (stage_d, sizes.astype(float))):
        act = tokens * h * ab
        ar = tp_allreduce_s(levels, tp_g, act, system, chip, tp) if tp > 1 else 0.0 * act
        stage["tp_allreduce"] = layers * 2.0 * ar
        routed = act * served.num_experts_per_tok
        stage["ep_alltoall"] = moe_layers * 2.0 * all_to_all_s(levels, ep_g, routed) if ep > 1 else 0.0 * act
        stage["pp_sendrecv"] = send_recv_s(levels, pp_g, act) if pp > 1 else 0.0 * act

    per_batch_p = {k: v[idx] for k, v in stage_p.items()}
    per_batch_d = {k: v[idx] for k, v in stage_d.items()}
    pre = _phase(per_batch_p, m + pp - 1.0, m)
    dec = _phase(per_batch_d, np.full_like(m, float(pp)), m)
    ttft = cast(np.ndarray, sum(pre[k] for k in BREAKDOWN_TERMS))
    tpot = cast(np.ndarray, sum(dec[k] for k in BREAKDOWN_TERMS))
    e2e = ttft + (workload.output_tokens - 1) * tpot
    tokens_per_s = layout.dp * batch * workload.output_tokens / e2e

    act_per_seq = activation_bytes_per_sequence(served, layout, workload)
    mem = memory_for_batches(served, layout, workload, batch, act_per_seq_bytes=act_per_seq)
    out: dict[str, np.ndarray] = {
        "ttft_s": ttft,
        "tpot_s": tpot,
        "e2e_latency_s": e2e,
        "output_tokens_per_s": tokens_per_s,
        "output_tokens_per_s_per_chip": tokens_per_s / layout.chips,
        "decode_tokens_per_s": layout.dp * batch / tpot,
        "micro_batches": m,
        "memory_per_chip_bytes": mem["total"],
        "fits": mem["total"] <= usable,
    }
    for k in BREAKDOWN_TERMS:
        out[f"prefill_{k}_s"] = pre[k]
        out[f"decode_{k}_s"] = dec[k]
    for k in MEMORY_PARTS:
        out[f"memory_{k}_bytes"] = mem[k]
    return out


def _chip_of(system: System) -> Chip:
    from twofold.hardware.catalog import chip_of

    return chip_of(system)


def estimate_inference(
    model: ModelConfig,
    system: System,
    layout: InferenceLayout,
    workload: InferenceWorkload,
    *,
    chip: Chip | None = None,
    profile: CalibrationProfile | None = None,
    calibration: TrainingCalibration | None = None,
    stack: str = "auto",
    mem_headroom: float = DEFAULT_MEM_HEADROOM,
) -> InferenceEstimate:
    """One serving estimate (module docstring): validates, prices the batch, finds the largest
    batch that fits and the KV capacity, both within capacity * (1 - `mem_headroom`). `stack`: the
    serving stack id ("auto": not known)."""
    check_inference(model, system, layout, workload)
    chip = chip if chip is not None else _chip_of(system)
    row = evaluate_batches(
        model,
        system,
        layout,
        workload,
        [workload.batch],
        chip=chip,
        profile=profile,
        calibration=calibration,
        mem_headroom=mem_headroom,
    )
    served = serving_model(model, layout)
    act_per_seq = activation_bytes_per_sequence(served, layout, workload)
    usable = usable_memory_bytes(chip.hbm_capacity_bytes, mem_headroom)
    cap = capacity(served, layout, workload, usable, act_per_seq_bytes=act_per_seq)
    return InferenceEstimate.from_row(
        {k: v[0] for k, v in row.items()},
        model=model,
        served=served,
        system=system,
        chip=chip,
        layout=layout,
        workload=workload,
        max_batch=cap["max_batch"],
        kv_capacity_tokens=cap["kv_capacity_tokens"],
        stack=stack,
    )
