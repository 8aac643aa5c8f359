"""Training step estimate: one code path for one layout and for arrays of layouts.

`evaluate_layouts` prices every row of a `LayoutTable` with NumPy (no Python loop per layout);
`estimate_training` runs it on a one-row table and wraps the row in a `TrainingEstimate`.

Step time (Narayanan et al., "Efficient Large-Scale Language Model Training on GPU Clusters Using
Megatron-LM", SC 2021, arXiv 2104.04473, section 2.2): with m = global_batch / (dp * micro_batch)
micro-batches and t_mb the time of one micro-batch's forward + backward (+ recompute) on the
largest stage, including its exposed communication,

    step = m * t_mb + (pp - 1) / vp * t_mb + exposed DP step communication + optimizer + other

i.e. a 1F1B pipeline bubble of (pp - 1) / m of the ideal time, (pp - 1) / (vp * m) interleaved.
The breakdown terms (`BREAKDOWN_TERMS`, seconds) add up to the step time exactly: compute
(forward, backward, recompute: the m micro-batches' kernels), the exposed part of each
communication kind (tp, cp, ep, pp, dp, fsdp), the bubble, the optimizer and `other` (data
loading, logging, checkpointing: not modelled, 0). Hidden (overlapped) communication is reported
separately and is not part of the sum.

MFU (Chowdhery et al., "PaLM", 2022, appendix B): model FLOPs per step / (step time * chips *
dense peak of the training precision). Model FLOPs = 3 x forward FLOPs of the matmuls, i.e.
6 * N * tokens with N the parameters a token multiplies (active parameters, without the input
embedding, which is a lookup; the LM head counted even when tied), plus the attention score and
value products 3 * 2 * heads * (d_qk + d_v) * keys per token and layer, counting only the keys a
query sees under the causal mask or sliding window (PaLM counts the full square, a few % more).
Recompute is not model FLOPs.

Calibration (`cost.calibration`): the fitted training factors (GEMM per hardware family and
precision class, attention, memory-bound kernels, collective bus bandwidth) are applied here, to
the chip's profile (`cost.profile_for`), to the topology's bandwidths (ZeRO-3/FSDP collectives with
their own efficiency on top), to the TP-communication overlap of the chip's family and, on NVLink
SHARP switches, to all-reduces (`parallel.comm`), so this estimate is the
model `twofold validate` reports errors for. `calibration=None` uses the shipped
`cost/calibration.yaml`; `cost.calibration.UNCALIBRATED` the microbenchmark model; an explicit
`profile=` (or a chip's own measured profile) replaces the on-chip part, the collective efficiency
still applies.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from twofold.cost.calibration import TrainingCalibration, shipped_calibration
from twofold.cost.defaults import profile_for
from twofold.cost.profile import CalibrationProfile
from twofold.errors import InputError
from twofold.estimate._result_fields import fit_note
from twofold.estimate.comm_plan import data_parallel_comm, groups, model_parallel_comm
from twofold.estimate.compute import compute_times, optimizer_time_s
from twofold.estimate.result import TrainingEstimate
from twofold.estimate.stage import StagePart
from twofold.estimate.step import BREAKDOWN_TERMS, StepArrays
from twofold.hardware.types import Chip, System
from twofold.parallel.arrays import LayoutArrays
from twofold.parallel.comm import Group, LevelArrays
from twofold.parallel.layout import Layout, LayoutTable, TrainingWorkload
from twofold.parallel.memory import (
    DEFAULT_MEM_HEADROOM,
    activation_bytes_per_element,
    memory_per_chip,
    stage_params,
    state_bytes,
    usable_memory_bytes,
)
from twofold.parallel.rules import check_context_length, check_layout
from twofold.workload.finetune import Finetune, adapter_params, base_bytes_per_param, layer_linear_weights
from twofold.workload.model import ModelConfig
from twofold.workload.params import param_counts

if TYPE_CHECKING:  # an imported model's modules load only when one is estimated (start-up time)
    from twofold.workload.imported import ImportedModel

__all__ = [
    "catalog_stage",
    "estimate_imported_training",
    "estimate_training",
    "evaluate_layouts",
    "model_flops_per_token",
]


def model_flops_per_token(model: ModelConfig, seq_len: int, *, finetune: Finetune | None = None) -> float:
    """Training model FLOPs per token (module docstring: 6N plus causal attention, no recompute).

    LoRA/QLoRA (`finetune`): the frozen matmuls run forward and dgrad only, 4N instead of 6N, and
    the adapters forward, dgrad and wgrad, 6 x their parameters (Hu et al. 2021, section 4.2: no
    gradient for frozen weights); attention unchanged. Dequantization is not model FLOPs."""
    c = param_counts(model)
    matmul_params = (
        c.active - c.embedding + (model.vocab_size * model.hidden_size if model.tie_word_embeddings else 0)
    )
    s = float(seq_len)
    if not model.causal:
        full = s
    else:
        full = (s + 1.0) / 2.0
    keys = full
    if model.sliding_window and model.sliding_window_layers:
        w = float(model.sliding_window)
        windowed = full if w >= s else (w * (w + 1.0) / 2.0 + (s - w) * w) / s
        n = model.num_layers
        keys = (model.sliding_window_layers * windowed + (n - model.sliding_window_layers) * full) / n
    if model.is_mla:
        d_qk, d_v = model.head_dim, model.v_head_dim
    else:
        d_qk = d_v = model.head_dim
    attention = 3.0 * 2.0 * model.num_attention_heads * (d_qk + d_v) * keys * model.num_layers
    if finetune is not None:
        per_layer, outer = adapter_params(model, finetune)
        return float(4.0 * matmul_params + 6.0 * (per_layer * model.num_layers + outer) + attention)
    return 6.0 * matmul_params + attention


def _finetune_states(
    model: ModelConfig, lay: LayoutArrays, ft: Finetune, weight_bytes: float
) -> tuple[np.ndarray, np.ndarray]:
    """(trained parameters, stored weight bytes) per chip on the largest stage of a LoRA/QLoRA
    layout, before ZeRO sharding: the adapters (`workload.finetune.adapter_params`), and the frozen
    base at its stored precision plus the adapters (what ZeRO-3 gathers). Stage ends are averaged
    into the layers (the embedding and LM head stay bf16; `parallel.memory.finetune_memory` is exact)."""
    per_layer, outer = adapter_params(model, ft, tp=lay.tp)
    share = lay.stage_layers / max(model.num_layers, 1)
    trained = lay.stage_layers * per_layer + np.where(lay.pp == 1, outer, outer * share)
    c = param_counts(model)
    linear = float(layer_linear_weights(model)) * model.num_layers
    base_linear = base_bytes_per_param(ft.base) if ft.quantized else weight_bytes
    base = (linear * base_linear + (c.total - linear) * weight_bytes) * share / lay.tp
    return trained, base + weight_bytes * trained


def _chip_for(system: System, chip: Chip | None) -> Chip:
    """`chip` if given, else the chip the system was built with (a what-if travels in it)."""
    if chip is not None:
        return chip
    from twofold.hardware.catalog import chip_of

    return chip_of(system)


def _check_system(system: System, table: LayoutTable) -> None:
    if not system.levels:
        # A single device (e.g. the measured `local` chip) has no interconnect: one chip only.
        chips = table.dp * table.tp * table.pp * table.cp
        if len(table) and int(chips.max()) > 1:
            raise InputError(
                "chips", int(chips.max()), f"system {system.id} has no interconnect: it holds one chip"
            )
    for lv in system.levels:
        if not lv.bandwidth_gb_s_per_chip or lv.bandwidth_gb_s_per_chip <= 0:
            raise InputError("system", system.id, f"level {lv.name} has no positive bandwidth_gb_s_per_chip")
        if lv.latency_us is None or lv.latency_us < 0:
            raise InputError("system", system.id, f"level {lv.name} has no non-negative latency_us")


def evaluate_layouts(
    model: ModelConfig | ImportedModel,
    system: System,
    workload: TrainingWorkload,
    table: LayoutTable,
    *,
    chip: Chip | None = None,
    profile: CalibrationProfile | None = None,
    calibration: TrainingCalibration | None = None,
    mem_headroom: float = DEFAULT_MEM_HEADROOM,
) -> StepArrays:
    """Estimate a training step for every (valid) layout of `table`, vectorised.

    `model`: a catalog architecture (`ModelConfig`) or an imported graph (`ImportedModel`), one
    code path for both (`workload.protocol`): only the model's own part (`estimate.stage.StagePart`:
    compute, model-parallel communication, parameters per chip, memory, model FLOPs) depends on
    its kind; calibration, data-parallel / ZeRO / FSDP communication, optimizer and the step's
    assembly are shared. Rows are assumed valid (`parallel.rules.valid_mask`); invalid rows may
    raise or give meaningless numbers. Returns a `StepArrays` (`estimate.step`) aligned with the
    table: one array per term of the step and of memory (`step_time_s`, `tokens_per_s_per_chip`,
    `mfu`, `breakdown_<term>_s` for each of `BREAKDOWN_TERMS`, `hidden_<kind>_s` for each of
    `HIDDEN_TERMS`, `memory_<part>_bytes` for each of `MEMORY_TERMS`, ...); `.row(i)` is layout
    i's `StepTerms`. `calibration`: see the module docstring. `fits`: memory per chip at
    most capacity * (1 - `mem_headroom`) (`parallel.memory.DEFAULT_MEM_HEADROOM`).
    """
    chip = _chip_for(system, chip)
    usable = usable_memory_bytes(chip.hbm_capacity_bytes, mem_headroom)
    _check_system(system, table)
    calibration = shipped_calibration() if calibration is None else calibration
    profile = profile if profile is not None else profile_for(chip, calibration)
    prec, s = workload.precision, workload.seq_len
    peak = chip.peak_tflops(prec) * 1e12
    sb = state_bytes(prec)
    lay = LayoutArrays.build(table, model, workload)
    nvls = calibration.in_network_reduction(chip.id)
    efficiency = calibration.collective_efficiency_on(chip)
    levels = LevelArrays.of_system(system, efficiency, in_network_reduction=nvls)
    fsdp_levels = LevelArrays.of_system(
        system,
        efficiency * calibration.fsdp_collective_efficiency,
        in_network_reduction=nvls,
    )
    placed = groups(levels, lay)
    if isinstance(model, ModelConfig):
        part = catalog_stage(model, chip, lay, workload, profile, calibration, levels, placed)
    else:
        from twofold.estimate.imported import imported_stage  # lazy: start-up time (catalog models need none)

        states = calibration.model_state_bytes_on(chip)
        part = imported_stage(model, chip, lay, workload, profile=profile, states=states)
    t_fwd, t_bwd, t_rc = part.t_fwd, part.t_bwd, part.t_rc
    # Gradients reduced in fp32 (`cost.stack` grad_reduce_dtype) move 4 bytes per parameter.
    reduce_sb = dataclasses.replace(sb, gradients=4.0) if calibration.grad_reduce_fp32_on(chip) else sb
    comm = part.comm | data_parallel_comm(
        levels,
        lay,
        sb=reduce_sb,
        params_non_expert=part.params_non_expert,
        params_expert=part.params_expert,
        t_fwd=t_fwd,
        t_bwd=t_bwd,
        t_rc=t_rc,
        fsdp_levels=fsdp_levels,
        fsdp_overlap=calibration.fsdp_overlap_on(chip),
        fsdp_flat_ring=calibration.fsdp_flat_ring_on(chip),
        param_gather_overlap=calibration.param_gather_overlap_on(chip),
        trainable_non_expert=part.trainable_non_expert,
        weight_bytes_non_expert=part.weight_bytes_non_expert,
        placed=placed,
    )
    p_ne, trainable = part.params_non_expert, part.trainable_non_expert
    p_ex = 0.0 if part.params_expert is None else part.params_expert
    p_trained = p_ne if trainable is None else trainable
    updated = np.where(
        lay.zero >= 1, p_trained / lay.shard_group + p_ex / lay.expert_dp_group, p_trained + p_ex
    )
    t_opt = optimizer_time_s(updated, chip, prec, profile)

    m = lay.microbatches
    t_mb = (
        t_fwd
        + t_bwd
        + t_rc
        + comm["tp_mb"]
        + comm["cp_mb"]
        + comm["ep_mb"]
        + comm["pp_mb"]
        + comm["fsdp_mb"]
        + comm["dp_mb"]
    )
    terms = {
        "compute_forward": m * t_fwd,
        "compute_backward": m * t_bwd,
        "compute_recompute": m * t_rc,
        "tp": m * comm["tp_mb"],
        "cp": m * comm["cp_mb"],
        "ep": m * comm["ep_mb"],
        "pp": m * comm["pp_mb"],
        "dp": m * comm["dp_mb"] + comm["dp_step"],
        "fsdp": m * comm["fsdp_mb"],
        "bubble": (lay.pp - 1.0) / lay.vp * t_mb,
        "optimizer": t_opt,
        "other": np.zeros_like(t_mb),
    }
    step = np.zeros_like(t_mb)
    for name in BREAKDOWN_TERMS:
        step = step + terms[name]

    mem = part.memory
    tokens = float(workload.global_batch) * s
    flops = part.model_flops_per_step
    hidden = {
        "cp": m * comm["cp_hidden_mb"],
        "pp": m * comm["pp_hidden_mb"],
        "dp": comm["dp_step_hidden"] + m * comm["dp_hidden_mb"],
        "fsdp": m * comm["fsdp_hidden_mb"],
    }
    return StepArrays(
        step_time_s=step,
        tokens_per_s_per_chip=tokens / (step * lay.chips),
        mfu=flops / (step * lay.chips * peak),
        model_flops_per_step=np.full_like(step, 0.0) + flops,
        microbatches=m,
        bubble_fraction=(lay.pp - 1.0) / (lay.vp * m),
        memory_per_chip_bytes=mem["total"],
        memory_per_chip_gib=mem["total"] / 2**30,
        fits=mem["total"] <= usable,
        breakdown_compute_forward_s=terms["compute_forward"],
        breakdown_compute_backward_s=terms["compute_backward"],
        breakdown_compute_recompute_s=terms["compute_recompute"],
        breakdown_tp_s=terms["tp"],
        breakdown_cp_s=terms["cp"],
        breakdown_ep_s=terms["ep"],
        breakdown_pp_s=terms["pp"],
        breakdown_dp_s=terms["dp"],
        breakdown_fsdp_s=terms["fsdp"],
        breakdown_bubble_s=terms["bubble"],
        breakdown_optimizer_s=terms["optimizer"],
        breakdown_other_s=terms["other"],
        hidden_cp_s=hidden["cp"],
        hidden_pp_s=hidden["pp"],
        hidden_dp_s=hidden["dp"],
        hidden_fsdp_s=hidden["fsdp"],
        memory_weights_bytes=mem["weights"],
        memory_gradients_bytes=mem["gradients"],
        memory_optimizer_states_bytes=mem["optimizer_states"],
        memory_activations_bytes=mem["activations"],
        memory_workspace_bytes=mem["workspace"],
        kernel_compute_share=np.zeros_like(step) + part.compute_share,
        kernel_roofline_share=np.zeros_like(step) + part.roofline_share,
    )


def catalog_stage(
    model: ModelConfig,
    chip: Chip,
    lay: LayoutArrays,
    workload: TrainingWorkload,
    profile: CalibrationProfile,
    calibration: TrainingCalibration,
    levels: tuple[LevelArrays, ...],
    placed: dict[str, Group] | None = None,
) -> StagePart:
    """A catalog architecture's part of the step (`estimate.stage`): the largest stage's compute
    from its operator graph (`estimate.compute`), its tensor / context / expert / pipeline
    communication (`comm_plan.model_parallel_comm`), parameters per chip by stage and sharding,
    memory (`parallel.memory.memory_per_chip`) and model FLOPs (`model_flops_per_token`).
    Context parallelism runs as the stack's `context_parallel` (ring or all-to-all,
    `TrainingCalibration.context_parallel_on`) in the compute and the communication alike.
    `placed`: the process groups (`comm_plan.groups`) when the caller has them."""
    prec, s = workload.precision, workload.seq_len
    sb = state_bytes(prec)
    e = activation_bytes_per_element(prec)
    counts = param_counts(model)
    ft = workload.finetune
    cp_algorithm = calibration.context_parallel_on(chip)
    ct = compute_times(
        model,
        chip,
        lay,
        seq_len=s,
        precision=prec,
        profile=profile,
        finetune=ft,
        context_parallel=cp_algorithm,
    )
    share = lay.stage_layers / max(model.num_layers, 1)
    single = lay.pp == 1
    use_last = (ct.last_forward + ct.last_backward) >= (ct.first_forward + ct.first_backward)

    def ends(first: np.ndarray, last: np.ndarray) -> np.ndarray:
        return np.where(single, first + last, np.where(use_last, last, first))

    t_fwd = ct.layers_forward * share + ends(ct.first_forward, ct.last_forward)
    t_bwd = ct.layers_backward * share + ends(ct.first_backward, ct.last_backward)
    t_rc = ct.layers_recompute * share

    ne_layers, ex_layers = stage_params(counts, model, lay.stage_layers)
    outer_first = counts.embedding
    outer_last = counts.lm_head + counts.final_norm + (counts.embedding if model.tie_word_embeddings else 0)
    outer = np.where(
        single, counts.embedding + counts.lm_head + counts.final_norm, max(outer_first, outer_last)
    )
    p_ne = (ne_layers + outer) / lay.tp
    # A dense model has no expert weights, so no expert-data-parallel collective (not even its latency).
    p_ex = ex_layers / (lay.ep * lay.etp) if model.is_moe else None
    trainable, weight_bytes = (None, None) if ft is None else _finetune_states(model, lay, ft, sb.weights)

    comm = model_parallel_comm(
        model,
        levels,
        lay,
        ct,
        seq_len=s,
        act_bytes=e,
        op_overhead_s=profile.op_overhead_s,
        t_fwd=t_fwd,
        t_bwd=t_bwd,
        t_rc=t_rc,
        tp_overlap=calibration.tp_overlap_on(chip),
        ep_overlap=calibration.ep_overlap_on(chip),
        placed=placed,
        context_parallel=cp_algorithm,
    )
    tokens = float(workload.global_batch) * s
    return StagePart(
        t_fwd=t_fwd,
        t_bwd=t_bwd,
        t_rc=t_rc,
        comm=comm,
        params_non_expert=p_ne,
        params_expert=p_ex,
        trainable_non_expert=trainable,
        weight_bytes_non_expert=weight_bytes,
        # Unfused attention (`math`: an older stack, `cost.stack` history) keeps the s x s scores.
        memory=memory_per_chip(
            model,
            counts,
            lay,
            prec,
            s,
            finetune=ft,
            flash_attention=profile.attention_kernel != "math",
            # Where the stack keeps its model states (`cost.stack` model_state_bytes).
            states=calibration.model_state_bytes_on(chip),
        ),
        model_flops_per_step=model_flops_per_token(model, s, finetune=ft) * tokens,
        compute_share=ct.compute_share,
        roofline_share=ct.roofline_share,
    )


def _zero_stage_note(layout: Layout, calibration: TrainingCalibration, chip: Chip) -> str | None:
    """A note where the layout's ZeRO stage is not one the stack implements (`cost.stack`
    zero_stages) and it matters (data parallelism, dp * cp > 1): the step is priced as asked (a
    what-if), while `plan` searches only the stack's stages."""
    if layout.dp * layout.cp <= 1:
        return None
    allowed = calibration.zero_stages_on(chip)
    if layout.zero in allowed:
        return None
    stages = ", ".join(map(str, allowed))
    stack = calibration.stack_for(chip).id
    return f"ZeRO-{layout.zero} is not a stage stack {stack} implements (it runs {stages}); priced as asked"


def estimate_training(
    model: ModelConfig | ImportedModel,
    system: System,
    layout: Layout,
    workload: TrainingWorkload,
    *,
    chip: Chip | None = None,
    chips: int | None = None,
    profile: CalibrationProfile | None = None,
    calibration: TrainingCalibration | None = None,
    mem_headroom: float = DEFAULT_MEM_HEADROOM,
    stack: Any = None,
    allow_long_context: bool = False,
) -> TrainingEstimate:
    """One training-step estimate: validates the layout (`parallel.rules.check_layout`, with the
    head rules of the stack's context-parallel algorithm), then evaluates it through
    `evaluate_layouts` on a one-row table. It fits when its memory per chip is at most capacity *
    (1 - `mem_headroom`). `stack` (`cost.stack`: an id, a file, a Stack; None = the calibration's,
    `auto` unless set) is the software stack that runs the step; the result names it, the factors
    applied and the evidence behind its uncertainty (`estimate.provenance`,
    `estimate.uncertainty`). A `seq_len` past the model's `max_position_embeddings` is refused
    unless `allow_long_context` (`parallel.rules`).
    `model`: a catalog architecture or an imported graph (`workload.protocol`); a layout on an axis
    the model does not take is refused naming the axis."""
    from twofold.estimate.provenance import training_provenance

    check_context_length(model, workload.seq_len, allow_long_context=allow_long_context)
    chip = _chip_for(system, chip)
    calibration = shipped_calibration() if calibration is None else calibration
    if stack is not None:
        calibration = calibration.with_stack(stack)
    check_layout(model, layout, workload, chips, context_parallel=calibration.context_parallel_on(chip))
    arrays = evaluate_layouts(
        model,
        system,
        workload,
        LayoutTable.from_layouts([layout]),
        chip=chip,
        profile=profile,
        calibration=calibration,
        mem_headroom=mem_headroom,
    )
    estimate = TrainingEstimate.from_row(
        arrays.row(0),
        model=model,
        system=system,
        chip=chip,
        layout=layout,
        workload=workload,
        stack=calibration.stack_for(chip).id,
        provenance=training_provenance(chip, calibration, workload.precision),
    )
    zero_note = _zero_stage_note(layout, calibration, chip)
    if zero_note:
        estimate = replace(estimate, notes=(*estimate.notes, zero_note))
    return _headroom_note(estimate, chip, mem_headroom)


def _headroom_note(estimate: TrainingEstimate, chip: Chip, mem_headroom: float) -> TrainingEstimate:
    """The "does not fit" note against the usable memory (capacity less the headroom)."""
    plain = fit_note(estimate.memory_per_chip_gib, chip)
    if estimate.fits or not mem_headroom or plain not in estimate.notes:
        return estimate
    usable = fit_note(estimate.memory_per_chip_gib, chip, mem_headroom=mem_headroom)
    return replace(estimate, notes=tuple(usable if n == plain else n for n in estimate.notes))


def estimate_imported_training(
    imported: ImportedModel,
    system: System,
    layout: Layout,
    workload: TrainingWorkload | int,
    *,
    fuse: bool = True,
    **kwargs: Any,
) -> TrainingEstimate:
    """Deprecated: `estimate_training` takes imported models (`fuse=False` is `imported.eager()`,
    a global batch is `estimate.imported.imported_workload`)."""
    warnings.warn(
        "estimate_imported_training is deprecated: estimate_training takes imported models",
        DeprecationWarning,
        stacklevel=2,
    )
    if not isinstance(workload, TrainingWorkload):
        from twofold.estimate.imported import imported_workload  # lazy: start-up time (deprecated alias)

        workload = imported_workload(imported, workload)
    return estimate_training(imported if fuse else imported.eager(), system, layout, workload, **kwargs)
