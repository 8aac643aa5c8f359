"""The imported-model part of the training estimator (`ImportedModel`: a PyTorch trace or an ONNX graph).

An imported model is a list of operators for one micro-batch of `imported.batch` samples on one
chip, not an architecture, so only layouts that replicate or shard it whole apply
(`workload.protocol`: data parallel, ZeRO stage 0-3 with stage 3 = FSDP, hybrid sharding). Tensor,
pipeline, context and expert parallelism of an arbitrary graph are not derived (`InputError` names
the axis, `parallel.rules`). The micro-batch is the batch the model was traced or shaped with
(re-import to change it).

Everything but the model's own part is the catalog estimator's (`estimate.training.
evaluate_layouts`): the calibration and stack, the data-parallel / ZeRO / FSDP communication and
its overlap (`estimate.comm_plan.data_parallel_comm`, one FSDP unit per repeated block,
`ImportedModel.num_layers`), the optimizer and the step's assembly. The model's part
(`imported_stage`):

- Compute: the single-chip cost model (`cost.op_times_s`) over the fused operators
  (`workload.fusion`, default) or the traced ones (`ImportedModel.eager()`), at the calibrated
  profile of the chip and stack; no recompute (no per-layer activation model).
- Parameters per chip before ZeRO sharding: the trainable ones (frozen parameters have no gradients
  to reduce and are neither sharded nor gathered).
- Memory: `parallel.memory.whole_model_memory` (weights, gradients and optimizer states by ZeRO
  stage; activations = every byte the priced forward writes, an upper bound on what autograd or a
  compiler saves for the backward).
- MFU: 3 x the forward FLOPs of GEMMs, convolutions and attention (the causal part), PaLM's
  model-FLOPs convention (Chowdhery et al. 2022, appendix B; `ImportedModel.model_flops`).

Left out: recompute, gradient accumulation buffers, and communication contention, as in
`estimate.training`.
"""

from __future__ import annotations

import numpy as np

from twofold.cost import op_time_terms, op_times_s
from twofold.cost.profile import CalibrationProfile
from twofold.errors import InputError
from twofold.estimate.stage import StagePart
from twofold.hardware.types import Chip
from twofold.parallel.arrays import LayoutArrays
from twofold.parallel.layout import TrainingWorkload
from twofold.parallel.memory import state_bytes, whole_model_memory
from twofold.workload.imported import ImportedModel
from twofold.workload.ops import Op

__all__ = ["imported_stage", "imported_workload"]

# The model-parallel communication an imported model never has (`comm_plan.model_parallel_comm`).
_MODEL_PARALLEL_TERMS = ("tp_mb", "cp_mb", "cp_hidden_mb", "ep_mb", "pp_mb", "pp_chunk_mb", "pp_hidden_mb")


def _time_s(ops: tuple[Op, ...], chip: Chip, profile: CalibrationProfile) -> float:
    if not ops:
        return 0.0
    return float(np.dot(op_times_s(ops, chip, profile), [op.count for op in ops]))


def _shares(ops: tuple[Op, ...], chip: Chip, profile: CalibrationProfile) -> tuple[float, float]:
    """(compute, roofline) shares of the ops' time (`estimate.stage.StagePart`)."""
    if not ops:
        return 1.0, 1.0
    terms = op_time_terms(ops, chip, profile)
    counts = np.array([op.count for op in ops], dtype=float)
    total = float(np.dot(terms.time_s, counts))
    compute = float(np.dot(terms.compute_s, counts))
    return compute / total, float(np.dot(np.maximum(terms.compute_s, terms.memory_s), counts)) / total


def imported_workload(imported: ImportedModel, global_batch: int) -> TrainingWorkload:
    """The training workload of `global_batch` samples at the imported sequence length (1 for a
    model without tokens, so that its tokens per second are its samples per second) and precision."""
    if isinstance(global_batch, bool) or not isinstance(global_batch, (int, np.integer)):
        raise InputError("global_batch", global_batch, "must be a TrainingWorkload or an integer")
    return TrainingWorkload(
        global_batch=int(global_batch), seq_len=imported.seq_len or 1, precision=imported.precision
    )


def imported_stage(
    imported: ImportedModel,
    chip: Chip,
    lay: LayoutArrays,
    workload: TrainingWorkload,
    *,
    profile: CalibrationProfile,
    states: tuple[float, float, float] | None = None,
) -> StagePart:
    """An imported model's part of the step (`estimate.stage`; module docstring): the same for
    every layout but its memory, which depends on the ZeRO stage and the shard group. `states`:
    where the stack keeps its model states (`cost.stack` model_state_bytes; None: 2 + 2 + 12)."""
    if imported.backward == "none":
        raise InputError("model", imported.name, "has no backward pass (no trainable parameters)")
    if workload.finetune is not None:
        raise InputError(
            "finetune",
            workload.finetune.method,
            "an imported model is trained in full (LoRA/QLoRA need a catalog id or config.json)",
        )
    fwd, bwd = imported.step_ops()
    zeros = np.zeros_like(lay.dp)
    compute_share, roofline_share = _shares((*fwd, *bwd), chip, profile)
    trainable = float(imported.trainable_param_count)
    return StagePart(
        t_fwd=zeros + _time_s(fwd, chip, profile),
        t_bwd=zeros + _time_s(bwd, chip, profile),
        t_rc=zeros,
        comm={name: zeros for name in _MODEL_PARALLEL_TERMS},
        params_non_expert=zeros + trainable,
        params_expert=None,
        memory=whole_model_memory(
            lay,
            state_bytes(workload.precision, states),
            trainable_params=trainable,
            frozen_params=float(imported.param_count - imported.trainable_param_count),
            activation_bytes=imported.activation_bytes,
            compute_weight_bytes=state_bytes(workload.precision).weights,
        ),
        model_flops_per_step=3.0 * imported.model_flops * lay.microbatches * lay.dp,
        compute_share=zeros + compute_share,
        roofline_share=zeros + roofline_share,
    )
