"""Communication of one training step per layout: which collectives, how many bytes, what overlaps.

TP (with sequence parallelism), CP (ring attention, or DeepSpeed-Ulysses' all-to-all), EP
(all-to-all), PP (point-to-point, with the cost of interleaved chunks), DP gradients and ZeRO
gathers, and FSDP/ZeRO-3 per-layer collectives, each with the part hidden behind compute
(`OVERLAP_EFFICIENCY`, the calibrated overlap fractions).
The derivation of every term, its citation (Shoeybi et al. 2019, Korthikanti et al. 2022,
Narayanan et al. 2021, Megatron-Core, PyTorch FSDP, ZeRO, ...) and what it leaves out are in
docs/parallel.md, "Per-step communication in full".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from twofold.estimate.compute import ComputeTimes
from twofold.parallel.arrays import LayoutArrays
from twofold.parallel.comm import (
    Group,
    LevelArrays,
    all_gather_s,
    all_reduce_s,
    all_to_all_s,
    flat_collective_s,
    reduce_scatter_s,
    send_recv_s,
)
from twofold.parallel.memory import StateBytes
from twofold.workload.model import ModelConfig

__all__ = [
    "OVERLAP_EFFICIENCY",
    "StageComm",
    "data_parallel_comm",
    "fsdp_exposure",
    "model_parallel_comm",
]

OVERLAP_EFFICIENCY = 1.0
BUCKET_PARAMS = 40e6
BUCKET_PARAMS_PER_DP_RANK = 1e6

StageComm = dict[str, np.ndarray]


def groups(levels: tuple[LevelArrays, ...], lay: LayoutArrays) -> dict[str, Group]:
    """Process groups in Megatron-Core's default rank order tp-cp-ep-dp-pp (`LayoutArrays`): tp
    innermost, then cp, then the data-parallel ranks, pp outermost. The MoE layers refold a stage's
    tp*cp*dp ranks in the order etp-ep-edp (Megatron-Core's expert rank generator): an EP group is
    ep consecutive ranks at stride etp (with etp = tp: the context- then data-parallel ranks of one
    TP position, so an EP group of tp * ep chips or fewer stays inside one NVLink domain; with
    etp = 1 it spans the TP ranks first), the expert-data-parallel group the rest at stride etp*ep."""
    tp, cp, pp, dp, ep, etp = lay.tp, lay.cp, lay.pp, lay.dp, lay.ep, lay.etp
    return {
        "tp": Group.place(levels, [(tp, 1.0)]),
        "cp": Group.place(levels, [(cp, tp)]),
        "pp": Group.place(levels, [(pp, tp * cp * dp)]),
        "dp": Group.place(levels, [(cp, tp), (dp, tp * cp)]),
        "ep": Group.place(levels, [(ep, etp)]),
        "edp": Group.place(levels, [(lay.expert_dp_group, etp * ep)]),
        # Hybrid sharding (`Layout.shard`): ZeRO-3 collectives within `shard` consecutive data-parallel
        # ranks, the gradient shards all-reduced across the replicas (stride shard).
        "shard": Group.place(levels, [(cp, tp), (lay.shard, tp * cp)]),
        "replica": Group.place(levels, [(lay.dp / lay.shard, tp * cp * lay.shard)]),
    }


def model_parallel_comm(
    model: ModelConfig,
    levels: tuple[LevelArrays, ...],
    lay: LayoutArrays,
    ct: ComputeTimes,
    *,
    seq_len: int,
    act_bytes: float,
    t_fwd: np.ndarray,
    t_bwd: np.ndarray,
    t_rc: np.ndarray,
    tp_overlap: float = 0.0,
    ep_overlap: float = 0.0,
    op_overhead_s: float = 0.0,
    placed: dict[str, Group] | None = None,
    context_parallel: str = "ring",
) -> StageComm:
    """Exposed and hidden tensor-, context-, expert- and pipeline-parallel communication seconds per
    micro-batch (module docstring): `tp_mb`, `cp_mb`, `cp_hidden_mb`, `ep_mb`, `pp_mb` (with
    `pp_chunk_mb`), `pp_hidden_mb`, from the architecture (`ModelConfig`). `tp_overlap` /
    `ep_overlap`: fraction of TP / EP communication hidden behind compute; `op_overhead_s`: the
    profile's fixed time per operator, paid once per extra interleaved-pipeline chunk step.
    `placed`: the groups of `groups(levels, lay)` when the caller has them. `context_parallel`: the
    stack's CP algorithm (`workload.layers.CP_ALGORITHMS`): ring steps that hide behind attention,
    or DeepSpeed-Ulysses' exposed all-to-alls (`_all_to_all_cp`). The data-parallel part is
    `data_parallel_comm`."""
    g = groups(levels, lay) if placed is None else placed
    h, e = model.hidden_size, act_bytes
    tp_sp = np.where(lay.sp, lay.tp, 1.0)
    tokens = lay.micro_batch * seq_len / lay.cp
    full_rc = lay.recompute == 2
    any_rc = lay.recompute >= 1
    out: StageComm = {}
    window = OVERLAP_EFFICIENCY * (t_fwd + t_bwd + t_rc)  # one micro-batch's compute

    act = tokens * h * e
    # With etp < tp the MoE blocks run their experts without tensor parallelism: the tokens stay
    # sequence-sharded through the dispatcher, so those layers have only the attention block's
    # all-gather / reduce-scatter pair (one of the two); etp = tp keeps both.
    moe_share = model.num_moe_layers / max(model.num_layers, 1) if model.is_moe else 0.0
    tp_pairs = 1.0 - 0.5 * moe_share * (lay.etp < lay.tp)
    per_layer_fwd = tp_pairs * np.where(
        lay.sp,
        2 * all_gather_s(levels, g["tp"], act) + 2 * reduce_scatter_s(levels, g["tp"], act),
        2 * all_reduce_s(levels, g["tp"], act),
    )
    tp_total = lay.stage_layers * per_layer_fwd * (2.0 + full_rc)
    tp_hidden = np.minimum(tp_overlap * tp_total, window)
    out["tp_mb"] = tp_total - tp_hidden

    if context_parallel == "all-to-all":
        out["cp_mb"] = (
            lay.stage_layers * (2.0 + full_rc) * _all_to_all_cp(model, levels, g["cp"], lay, tokens, e)
        )
        out["cp_hidden_mb"] = np.zeros_like(out["cp_mb"])
    else:
        if model.is_mla:
            kv_per_rank = model.num_attention_heads * (model.head_dim + model.v_head_dim) / lay.tp
        else:
            # tp > num_kv_heads: each rank holds (and passes around the ring) one replicated head.
            kv_per_rank = np.maximum(model.num_kv_heads / lay.tp, 1.0) * 2 * model.head_dim
        kv_bytes = tokens * kv_per_rank * e
        step_f = send_recv_s(levels, g["cp"], kv_bytes)
        step_b = send_recv_s(levels, g["cp"], 2 * kv_bytes)
        win_f = OVERLAP_EFFICIENCY * ct.attention_forward / lay.cp
        win_b = OVERLAP_EFFICIENCY * ct.attention_backward / lay.cp
        rings_f = 1.0 + any_rc
        steps = lay.stage_layers * (lay.cp - 1.0)
        cp_total = steps * (rings_f * step_f + step_b)
        out["cp_mb"] = steps * (rings_f * np.maximum(step_f - win_f, 0.0) + np.maximum(step_b - win_b, 0.0))
        out["cp_hidden_mb"] = cp_total - out["cp_mb"]

    if model.is_moe:
        moe_layers = lay.stage_layers * model.num_moe_layers / max(model.num_layers, 1)
        routed = lay.micro_batch * seq_len / (lay.cp * tp_sp) * model.num_experts_per_tok * h * e
        ep_total = (
            moe_layers
            * 2
            * (2.0 + full_rc)
            * all_to_all_s(levels, g["ep"], routed, copies_per_token=model.num_experts_per_tok)
        )
        ep_hidden = np.minimum(ep_overlap * ep_total, window)
        out["ep_mb"] = ep_total - ep_hidden
    else:
        out["ep_mb"] = np.zeros_like(lay.tp)

    boundary = tokens * h * e / tp_sp
    pp_total = np.where(lay.pp > 1, 2 * lay.vp * send_recv_s(levels, g["pp"], boundary), 0.0)
    pp_overlapped = np.maximum(pp_total - window, 0.0)
    pp_transfers = np.where(lay.vp > 1, pp_overlapped, pp_total)
    out["pp_hidden_mb"] = pp_total - pp_transfers
    p2p_latency = send_recv_s(levels, g["pp"], np.zeros_like(boundary))
    extra_steps = np.where(lay.pp > 1, 2.0 * (lay.vp - 1.0), 0.0)
    out["pp_chunk_mb"] = extra_steps * (p2p_latency + op_overhead_s)
    out["pp_mb"] = pp_transfers + out["pp_chunk_mb"]

    return out


def _all_to_all_cp(
    model: ModelConfig,
    levels: tuple[LevelArrays, ...],
    group: Group,
    lay: LayoutArrays,
    tokens: np.ndarray,
    act_bytes: float,
) -> np.ndarray:
    """Seconds of one layer's forward all-to-alls under DeepSpeed-Ulysses context parallelism
    (Jacobs et al., arXiv 2309.14509, section 3; DeepSpeed `sequence.layer.DistributedAttention`),
    each over the cp group: Q, K and V (one call each), from [tokens/cp, heads/tp] to [tokens,
    heads/(tp*cp)], and the attention output O back. Each rank sends what it holds: `tokens` (=
    b*s/cp) x width x `act_bytes`, of widths heads/tp*d_qk (Q), kv*d_qk (K), kv*d_v (V) and
    heads/tp*d_v (O), with kv = max(kv_heads/tp, 1) key/value heads per TP rank, raised to cp when
    cp exceeds them (the heads are replicated before the exchange so that every rank receives one,
    as DeepSpeed's `UlyssesSPAttentionHF` does). The backward's all-to-alls (dO in, dQ, dK, dV out)
    move the same bytes, full recompute reruns the forward's: the caller multiplies."""
    heads = model.num_attention_heads / lay.tp
    if model.is_mla:
        d_qk, d_v, kv = model.head_dim, model.v_head_dim, heads
    else:
        d_qk = d_v = model.head_dim
        kv = np.maximum(np.maximum(model.num_kv_heads / lay.tp, 1.0), lay.cp)
    widths = (heads * d_qk, kv * d_qk, kv * d_v, heads * d_v)  # Q, K, V, O
    seconds = sum(all_to_all_s(levels, group, tokens * w * act_bytes) for w in widths)
    return np.asarray(np.where(lay.cp > 1, seconds, 0.0))


def data_parallel_comm(
    levels: tuple[LevelArrays, ...],
    lay: LayoutArrays,
    *,
    sb: StateBytes,
    params_non_expert: np.ndarray,
    params_expert: np.ndarray | None,
    t_fwd: np.ndarray,
    t_bwd: np.ndarray,
    t_rc: np.ndarray,
    fsdp_levels: tuple[LevelArrays, ...] | None = None,
    fsdp_overlap: float = 1.0,
    fsdp_flat_ring: bool = True,
    param_gather_overlap: bool = True,
    trainable_non_expert: np.ndarray | None = None,
    weight_bytes_non_expert: np.ndarray | None = None,
    placed: dict[str, Group] | None = None,
) -> StageComm:
    """Exposed and hidden data-parallel and ZeRO / FSDP communication seconds (module docstring, "DP
    gradients" and "FSDP / ZeRO-3"): `dp_step`, `dp_step_hidden` per step, `dp_mb`, `dp_hidden_mb`,
    `fsdp_mb`, `fsdp_hidden_mb` per micro-batch. It needs no architecture, only the parameters a
    chip holds and the compute windows, so every model takes it (`workload.protocol`): the FSDP
    units are the stage's layers (`lay.stage_layers`, one unit per repeated block). `fsdp_levels`:
    the levels ZeRO-3 collectives run on (default `levels`); `fsdp_overlap`: fraction of the
    hideable ZeRO-3/FSDP communication that hides (`fsdp_exposure`); `fsdp_flat_ring`: price the
    ZeRO-3 collectives as one flat ring at the network's per-chip bandwidth (DeepSpeed ZeRO-3,
    `parallel.comm.flat_collective_s`) or, when False, as NCCL runs them across multi-NIC nodes
    (the hierarchical cost; the stack's FSDP flavour decides, `cost.stack`). `param_gather_overlap`:
    ZeRO-1/2's gather of the updated weights hides behind the next forward (Megatron-Core's
    overlap_param_gather); False: the whole gather is exposed at the end of the step, as nanotron's
    and DeepSpeed's ZeRO-1/2 optimizers run it inside `step()` (`cost.stack`). `trainable_non_expert`
    (LoRA/QLoRA: the adapters) replaces `params_non_expert` in the gradient collectives, and
    `weight_bytes_non_expert` (the frozen base at its stored precision plus the adapters) the
    weight bytes of the gathers: only trained parameters have gradients to reduce. `params_expert` None: the
    model has no expert parameters, so no expert-data-parallel collectives run (a catalog model
    passes its routed experts' parameters, zeros for a dense one). `placed`: the groups of
    `groups(levels, lay)` when the caller has them."""
    g = groups(levels, lay) if placed is None else placed
    out: StageComm = {}
    zero = lay.zero
    p_ex = 0.0 if params_expert is None else params_expert
    trained_ne = params_non_expert if trainable_non_expert is None else trainable_non_expert
    grads_ne, grads_ex = sb.gradients * trained_ne, sb.gradients * p_ex
    w_ne = sb.weights * params_non_expert if weight_bytes_non_expert is None else weight_bytes_non_expert
    w_ex = sb.weights * p_ex

    params = np.maximum(trained_ne + p_ex, 1.0)
    bucket = np.minimum(1.0, np.maximum(BUCKET_PARAMS, BUCKET_PARAMS_PER_DP_RANK * lay.dp_group) / params)

    def bucketed(collective: Callable[..., np.ndarray], group: str, nbytes: np.ndarray | float) -> np.ndarray:
        # One call per gradient bucket (`parallel.comm`: bandwidth at the call's size, latency per call).
        nbytes = np.asarray(nbytes, dtype=float)
        return collective(levels, g[group], nbytes, np.maximum(nbytes * bucket, 1.0))

    def experts(collective: Callable[..., np.ndarray], nbytes: np.ndarray | float) -> np.ndarray | float:
        return 0.0 if params_expert is None else bucketed(collective, "edp", nbytes)

    ar = bucketed(all_reduce_s, "dp", grads_ne) + experts(all_reduce_s, grads_ex)
    rs = bucketed(reduce_scatter_s, "dp", grads_ne) + experts(reduce_scatter_s, grads_ex)
    # ZeRO-1/2 gather the updated weights after the step: only trained ones were updated.
    ag = bucketed(all_gather_s, "dp", sb.weights * trained_ne) + experts(all_gather_s, w_ex)
    bwd_window = OVERLAP_EFFICIENCY * (t_bwd + t_rc)
    fwd_window = OVERLAP_EFFICIENCY * t_fwd

    reduce_once = np.where(zero == 0, ar, np.where(zero <= 2, rs, 0.0))
    reduce_exposed = np.maximum(reduce_once - bwd_window, reduce_once * bucket)
    gather_once = np.where((zero == 1) | (zero == 2), ag, 0.0)
    gather_exposed = (
        np.maximum(gather_once - fwd_window, gather_once * bucket) if param_gather_overlap else gather_once
    )
    out["dp_step"] = reduce_exposed + gather_exposed
    out["dp_step_hidden"] = reduce_once + gather_once - out["dp_step"]

    z3 = zero == 3
    layer_share = 1.0 / lay.stage_layers
    fl = levels if fsdp_levels is None else fsdp_levels
    buckets = lay.stage_layers

    def flat(group: str, nbytes: np.ndarray | float) -> np.ndarray | float:
        if group == "edp" and params_expert is None:
            return 0.0
        return flat_collective_s(fl, g[group], np.asarray(nbytes), buckets=buckets, ring=fsdp_flat_ring)

    ag3 = np.where(z3, flat("shard", w_ne) + flat("edp", w_ex), 0.0)
    # Hybrid sharding: after each unit's in-group reduce-scatter, the rank all-reduces its gradient
    # shard with the same shard of the other replicas, on the same stream in the same post-backward
    # hook (PyTorch FSDP HYBRID_SHARD; Zhao et al., "PyTorch FSDP", VLDB 2023, section 3.2.2), so it
    # joins the reduce-scatter's schedule and overlap.
    replicas = lay.dp / lay.shard
    shard_ar = np.where(
        replicas > 1, all_reduce_s(levels, g["replica"], grads_ne / (lay.shard * lay.cp)), 0.0
    )
    rs3 = np.where(z3, flat("shard", grads_ne) + flat("edp", grads_ex) + shard_ar, 0.0)
    out["fsdp_mb"], out["dp_mb"], out["fsdp_hidden_mb"], out["dp_hidden_mb"] = fsdp_exposure(
        ag3, rs3, fwd_window, bwd_window, layer_share, fsdp_overlap
    )
    return out


def fsdp_exposure(
    ag3: ArrayLike,
    rs3: ArrayLike,
    fwd_window: ArrayLike,
    bwd_window: ArrayLike,
    layer_share: ArrayLike,
    overlap: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(exposed gathers, exposed reduce-scatter, hidden gathers, hidden reduce-scatter) of one
    micro-batch's ZeRO-3 / FSDP collectives: `ag3` one pass of parameter all-gathers (run in the
    forward and again in the backward), `rs3` the gradient reduce-scatters (backward). Prefetched
    layer by layer, each pass hides behind its compute window except one layer's share; of what
    could hide, only the fraction `overlap` does (`cost.calibration.fsdp_comm_overlap`: collectives
    running beside compute slow it down, competing for SMs and memory bandwidth, and prefetch is
    rate-limited); the rest is exposed."""
    ag3, rs3 = np.asarray(ag3, dtype=float), np.asarray(rs3, dtype=float)
    fwd_exposed = np.maximum(ag3 - fwd_window, ag3 * layer_share)
    bwd_total = ag3 + rs3
    bwd_exposed = np.maximum(bwd_total - bwd_window, bwd_total * layer_share)
    gather_part = np.divide(ag3, bwd_total, out=np.zeros_like(bwd_total), where=bwd_total > 0)
    gathers = fwd_exposed + bwd_exposed * gather_part
    scatters = bwd_exposed * (1.0 - gather_part)
    lost = 1.0 - overlap
    gathers = gathers + lost * (2 * ag3 - gathers)
    scatters = scatters + lost * (rs3 - scatters)
    return gathers, scatters, 2 * ag3 - gathers, rs3 - scatters
