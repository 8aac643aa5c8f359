"""Training estimates for imported models (`ImportedModel`: a PyTorch trace or an ONNX graph).

An imported model is a list of operators for one micro-batch of `imported.batch` samples on one
chip, not an architecture, so only layouts that replicate or shard it whole apply: data parallel
with ZeRO stage 0-3 (stage 3 = FSDP). Tensor, pipeline, context and expert parallelism of an
arbitrary graph are not derived (an `InputError` names the axis). The micro-batch is the batch the
model was traced or shaped with (re-import to change it).

Step time, per data-parallel rank, with m = global_batch / (dp * micro_batch) micro-batches:

    step = m * (t_fwd + t_bwd + exposed FSDP comm) + exposed DP comm + optimizer

- t_fwd, t_bwd: the single-chip cost model (`cost.op_times_s`) over the fused operators
  (`workload.fusion`, default) or the traced ones (`fuse=False`).
- Communication: `parallel.comm` collectives over a data-parallel group of dp consecutive chips,
  with the overlap rules of `estimate.comm_plan` (DP gradient reduction hidden behind the last
  micro-batch's backward except its last bucket; ZeRO-1/2 parameter all-gather behind the next
  forward except the first bucket; FSDP gathers and reduce-scatters every micro-batch, hidden
  behind the pass except one unit's share; flat per-unit collectives, `parallel.comm.
  flat_collective_s`, at the shipped calibration's collective efficiencies, as for catalog
  models). FSDP units: one per repeated block (PyTorch's
  `transformer_auto_wrap_policy` wraps each layer); their number is the largest repeat count of a
  forward GEMM or convolution (a traced stack of L layers merges each layer op into one with
  count L), and each unit holds an equal share of the parameters.
- Memory: `parallel.memory.model_states_bytes` for weights, gradients and optimizer states by
  ZeRO stage over `trainable_param_count` (frozen parameters: weights only); activations = every
  byte the (fused) forward writes, an upper bound on what autograd or a compiler saves for the
  backward; ZeRO-3 adds two gathered units (the one computing and the one prefetched);
  headroom `WORKSPACE_FIXED_GIB` + `FRAGMENTATION_FRACTION`.
- MFU: 3 x the forward FLOPs of GEMMs, convolutions and attention (the causal part), PaLM's
  model-FLOPs convention (Chowdhery et al. 2022, appendix B).

Left out: recompute (no per-layer activation model), gradient accumulation buffers, and
communication contention, as in `estimate.training`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twofold.cost import op_times_s
from twofold.cost.calibration import shipped_calibration
from twofold.cost.profile import CalibrationProfile
from twofold.errors import InputError
from twofold.estimate._result_fields import fit_note
from twofold.estimate.comm_plan import (
    BUCKET_PARAMS,
    BUCKET_PARAMS_PER_DP_RANK,
    OVERLAP_EFFICIENCY,
    fsdp_exposure,
)
from twofold.estimate.compute import optimizer_time_s
from twofold.estimate.result import BREAKDOWN_TERMS, HIDDEN_TERMS, TrainingEstimate
from twofold.hardware.types import Chip, System
from twofold.parallel.comm import (
    Group,
    LevelArrays,
    all_gather_s,
    all_reduce_s,
    flat_collective_s,
    reduce_scatter_s,
)
from twofold.parallel.layout import Layout, TrainingWorkload
from twofold.parallel.memory import (
    DEFAULT_MEM_HEADROOM,
    FRAGMENTATION_FRACTION,
    WORKSPACE_FIXED_GIB,
    model_states_bytes,
    state_bytes,
    usable_memory_bytes,
)
from twofold.workload.imported import ImportedModel
from twofold.workload.ops import Op

__all__ = ["ImportedTrainingEstimate", "check_imported_layout", "estimate_imported_training"]

_MODEL_PARALLEL_RULE = "imported models support data parallel and ZeRO/FSDP layouts only"


@dataclass(frozen=True, kw_only=True)
class ImportedTrainingEstimate(TrainingEstimate):
    """A `TrainingEstimate` of an imported model, with what only imported models have.

    `samples_per_s_per_chip` is always set; `tokens_per_s_per_chip` is meaningful only for token
    models (`seq_len` set) and is reported as null otherwise. `unsupported_ops` lists operators the
    importer did not recognise (priced as zero-FLOP memory ops: an approximation); `fused` says
    whether the fusion pass was applied.
    """

    samples_per_s_per_chip: float
    seq_len: int | None
    unsupported_ops: Mapping[str, int] = field(default_factory=dict)
    fused: bool = True
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["source"] = self.source
        d["samples_per_s_per_chip"] = self.samples_per_s_per_chip
        if self.seq_len is None:
            d["tokens_per_s_per_chip"] = None
            d["workload"]["seq_len"] = None
        d["unsupported_ops"] = dict(sorted(self.unsupported_ops.items()))
        d["fused"] = self.fused
        return d


def check_imported_layout(imported: ImportedModel, layout: Layout, workload: TrainingWorkload) -> None:
    """InputError unless `layout` is data parallel (any ZeRO stage) with the imported micro-batch."""
    for axis in ("tp", "pp", "vp", "cp", "ep"):
        value = getattr(layout, axis)
        if value != 1:
            raise InputError(axis, value, _MODEL_PARALLEL_RULE)
    if layout.dp < 1:
        raise InputError("dp", layout.dp, "must be a positive integer")
    if layout.zero not in (0, 1, 2, 3):
        raise InputError("zero", layout.zero, "must be 0, 1, 2 or 3")
    if layout.recompute != "none":
        raise InputError("recompute", layout.recompute, "imported models are estimated without recompute")
    if layout.micro_batch != imported.batch:
        raise InputError(
            "micro_batch",
            layout.micro_batch,
            f"must equal the batch {imported.name} was imported with ({imported.batch}); "
            "re-import to change it",
        )
    per_step = layout.dp * layout.micro_batch
    if workload.global_batch < 1 or workload.global_batch % per_step:
        raise InputError(
            "global_batch", workload.global_batch, f"must be a positive multiple of dp*micro_batch={per_step}"
        )
    if imported.seq_len is not None and workload.seq_len != imported.seq_len:
        raise InputError(
            "seq_len", workload.seq_len, f"must equal the imported sequence length {imported.seq_len}"
        )
    if imported.backward == "none":
        raise InputError("model", imported.name, "has no backward pass (no trainable parameters)")


def _workload(imported: ImportedModel, workload_or_global_batch: TrainingWorkload | int) -> TrainingWorkload:
    if isinstance(workload_or_global_batch, TrainingWorkload):
        return workload_or_global_batch
    if isinstance(workload_or_global_batch, bool) or not isinstance(
        workload_or_global_batch, (int, np.integer)
    ):
        raise InputError("global_batch", workload_or_global_batch, "must be a TrainingWorkload or an integer")
    return TrainingWorkload(
        global_batch=int(workload_or_global_batch),
        seq_len=imported.seq_len or 1,
        precision=imported.precision,
    )


def _model_flops(ops: tuple[Op, ...]) -> float:
    """Forward FLOPs that count as model FLOPs: GEMMs, convolutions, attention (causal part)."""
    total = 0.0
    for op in ops:
        if op.kind in ("gemm", "conv", "attention"):
            useful = op.useful_flops if op.useful_flops is not None else op.flops
            total += useful * op.count
    return total


def _time_s(ops: tuple[Op, ...], chip: Chip, profile: CalibrationProfile | None) -> float:
    if not ops:
        return 0.0
    return float(np.dot(op_times_s(ops, chip, profile), [op.count for op in ops]))


def estimate_imported_training(
    imported: ImportedModel,
    system: System,
    layout: Layout,
    workload_or_global_batch: TrainingWorkload | int,
    *,
    chip: Chip | None = None,
    profile: CalibrationProfile | None = None,
    fuse: bool = True,
    mem_headroom: float = DEFAULT_MEM_HEADROOM,
) -> ImportedTrainingEstimate:
    """One training step of `imported` with a data-parallel / ZeRO `layout` (module docstring).

    `workload_or_global_batch`: a `TrainingWorkload` (its `seq_len` must be the imported one; 1
    for models without tokens) or the global batch in samples. `fuse`: price the fused operators
    (`workload.fusion`; what a compiled model runs) rather than the eager trace. It fits when its
    memory per chip is at most capacity * (1 - `mem_headroom`) (`parallel.memory`).
    """
    workload = _workload(imported, workload_or_global_batch)
    check_imported_layout(imported, layout, workload)
    if chip is None:
        from twofold.hardware.catalog import chip_of

        chip = chip_of(system)
    fwd, bwd = imported.step_ops(fused=fuse)
    t_fwd, t_bwd = _time_s(fwd, chip, profile), _time_s(bwd, chip, profile)

    prec = workload.precision
    sb = state_bytes(prec)
    dp, zero = float(layout.dp), np.asarray([layout.zero])
    trainable = float(imported.trainable_param_count)
    frozen = float(imported.param_count - imported.trainable_param_count)
    # The catalog estimator's collectives (`estimate.training`): the shipped calibration's
    # collective efficiencies and in-network reduction, flat per-unit ZeRO-3 collectives.
    calibration = shipped_calibration()
    nvls = calibration.in_network_reduction(chip.id)
    levels = LevelArrays.of_system(system, calibration.collective_efficiency, in_network_reduction=nvls)
    fsdp_levels = LevelArrays.of_system(
        system,
        calibration.collective_efficiency * calibration.fsdp_collective_efficiency,
        in_network_reduction=nvls,
    )
    group = Group.place(levels, [(np.asarray([dp]), 1.0)])
    grads, weights = np.asarray([sb.gradients * trainable]), np.asarray([sb.weights * trainable])
    ar = all_reduce_s(levels, group, grads)
    rs = reduce_scatter_s(levels, group, grads)
    ag = all_gather_s(levels, group, weights)
    bucket = min(1.0, max(BUCKET_PARAMS, BUCKET_PARAMS_PER_DP_RANK * dp) / max(trainable, 1.0))
    bwd_window, fwd_window = OVERLAP_EFFICIENCY * t_bwd, OVERLAP_EFFICIENCY * t_fwd
    single = dp == 1
    reduce_once = 0.0 if single else float(np.where(zero == 0, ar, np.where(zero <= 2, rs, 0.0))[0])
    gather_once = 0.0 if single or layout.zero not in (1, 2) else float(ag[0])
    dp_step = max(reduce_once - bwd_window, reduce_once * bucket) + max(
        gather_once - fwd_window, gather_once * bucket
    )
    dp_step_hidden = reduce_once + gather_once - dp_step

    units = max((op.count for op in imported.ops if op.kind in ("gemm", "conv")), default=1)
    unit_share = 1.0 / units
    unit = float(weights[0]) * unit_share
    fsdp_mb = dp_mb = fsdp_hidden = dp_hidden_mb = 0.0
    if layout.zero == 3 and not single:
        fsdp_group = Group.place(fsdp_levels, [(np.asarray([dp]), 1.0)])
        ag3 = float(flat_collective_s(fsdp_levels, fsdp_group, weights, buckets=units)[0])
        rs3 = float(flat_collective_s(fsdp_levels, fsdp_group, grads, buckets=units)[0])
        fsdp_mb, dp_mb, fsdp_hidden, dp_hidden_mb = (
            float(x)
            for x in fsdp_exposure(
                ag3, rs3, fwd_window, bwd_window, unit_share, calibration.fsdp_overlap_on(chip)
            )
        )

    updated = trainable / dp if layout.zero >= 1 else trainable
    t_opt = float(optimizer_time_s(np.asarray([updated]), chip, prec, profile)[0])
    m = workload.global_batch / (dp * layout.micro_batch)
    terms = dict.fromkeys(BREAKDOWN_TERMS, 0.0)
    terms |= {
        "compute_forward": m * t_fwd,
        "compute_backward": m * t_bwd,
        "dp": m * dp_mb + dp_step,
        "fsdp": m * fsdp_mb,
        "optimizer": t_opt,
    }
    step = sum(terms[name] for name in BREAKDOWN_TERMS)
    hidden = dict.fromkeys(HIDDEN_TERMS, 0.0) | {
        "dp": dp_step_hidden + m * dp_hidden_mb,
        "fsdp": m * fsdp_hidden,
    }

    w, g, o = (float(x[0]) for x in model_states_bytes(np.asarray([trainable]), np.asarray([dp]), zero, sb))
    w += sb.weights * frozen + (2.0 * unit * (1.0 - 1.0 / dp) if layout.zero == 3 else 0.0)
    activations = float(sum(op.bytes_written * op.count for op in fwd))
    allocated = w + g + o + activations
    memory = {
        "weights": w,
        "gradients": g,
        "optimizer_states": o,
        "activations": activations,
        "workspace": WORKSPACE_FIXED_GIB * 2**30 + FRAGMENTATION_FRACTION * allocated,
    }
    total = sum(memory.values())
    fits = total <= usable_memory_bytes(chip.hbm_capacity_bytes, mem_headroom)
    samples = float(workload.global_batch)
    flops = 3.0 * _model_flops(imported.forward_ops()) * m * dp
    notes = []
    if not fits:
        notes.append(fit_note(total / 2**30, chip, mem_headroom=mem_headroom))
    if imported.unsupported:
        listed = ", ".join(f"{k} x{v}" for k, v in sorted(imported.unsupported.items()))
        notes.append(f"unsupported operators priced as zero-FLOP memory ops: {listed}")
    if fuse and imported.fused_ops is None:
        notes.append("no fusion available for this import: eager operators priced")
    return ImportedTrainingEstimate(
        model=imported.name,
        chip=chip.id,
        system=system.id,
        chips=layout.chips,
        layout=layout,
        workload=workload,
        step_time_s=step,
        tokens_per_s_per_chip=samples * workload.seq_len / (step * layout.chips),
        samples_per_s_per_chip=samples / (step * layout.chips),
        mfu=flops / (step * layout.chips * chip.peak_tflops(prec) * 1e12),
        model_flops_per_step=flops,
        microbatches=int(round(m)),
        bubble_fraction=0.0,
        memory_per_chip_gib=total / 2**30,
        hbm_capacity_gib=float(chip.hbm_capacity_gib),
        fits=fits,
        breakdown=terms,
        hidden_comm=hidden,
        memory_gib={k: v / 2**30 for k, v in memory.items()},
        notes=tuple(notes),
        seq_len=imported.seq_len,
        unsupported_ops=dict(imported.unsupported),
        fused=fuse and imported.fused_ops is not None,
        source=imported.source,
    )
