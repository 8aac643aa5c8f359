"""One estimator and one search for every model (`workload.protocol`): a catalog architecture and
an imported operator graph through `estimate_training`, `evaluate_layouts` and `plan_training`.
References: hand derivations of the data-parallel communication from the collective primitives of
`parallel.comm` (Li et al., "PyTorch Distributed", VLDB 2020: one gradient all-reduce per step,
overlapped with the backward except its last bucket; Zhao et al., "PyTorch FSDP", VLDB 2023: every
micro-batch gathers the parameters in the forward and again in the backward), and the layout rules
(`parallel.rules`) read by hand."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from twofold.cost.calibration import shipped_calibration
from twofold.errors import InputError
from twofold.estimate.comm_plan import BUCKET_PARAMS, BUCKET_PARAMS_PER_DP_RANK
from twofold.estimate.imported import imported_workload
from twofold.estimate.result import TrainingEstimate
from twofold.estimate.training import estimate_training, evaluate_layouts
from twofold.hardware.catalog import get_chip, system_for
from twofold.hardware.types import System
from twofold.parallel.comm import Group, LevelArrays, all_reduce_s, flat_collective_s
from twofold.parallel.layout import Layout, LayoutTable
from twofold.parallel.memory import state_bytes
from twofold.search.plan import plan_training
from twofold.workload import get_model
from twofold.workload.imported import ImportedModel, derived_backward, gemm_op, memory_op
from twofold.workload.protocol import ALL_AXES, DATA_PARALLEL_AXES, TrainingModel

LAYERS, HIDDEN, BATCH, SEQ = 12, 2048, 4, 1024


def _mlp_stack() -> ImportedModel:
    """A 12-layer stack of (hidden x hidden) linears with a norm each, as an importer records it
    (one op per layer op, `count` = layers), on `BATCH` sequences of `SEQ` tokens, in bf16."""
    tokens = BATCH * SEQ
    gemm = gemm_op(
        "layer.linear", phase="forward", m=tokens, n=HIDDEN, k=HIDDEN, dtype="bf16",
        bytes_read=2 * (tokens * HIDDEN + HIDDEN * HIDDEN), bytes_written=2 * tokens * HIDDEN,
    )  # fmt: skip
    norm = memory_op(
        "layer.norm", kind="norm", phase="forward", elements=tokens * HIDDEN, dtype="bf16",
        bytes_read=2 * tokens * HIDDEN, bytes_written=2 * tokens * HIDDEN,
    )  # fmt: skip
    fwd = tuple(replace(op, count=LAYERS) for op in (gemm, norm))
    bwd = tuple(b for op in fwd for b in derived_backward(op, input_grad=True, weight_grad=op.kind == "gemm"))
    params = LAYERS * HIDDEN * HIDDEN
    return ImportedModel(
        name="mlp-stack", source="hand", ops=fwd, backward_ops=bwd, backward="derived",
        param_count=params, trainable_param_count=params, batch=BATCH, seq_len=SEQ,
    )  # fmt: skip


def test_both_kinds_of_model_are_training_models() -> None:
    catalog, imported = get_model("llama3.1-8b"), _mlp_stack()
    assert isinstance(catalog, TrainingModel) and isinstance(imported, TrainingModel)
    assert catalog.parallel_axes == ALL_AXES and imported.parallel_axes == DATA_PARALLEL_AXES
    assert (catalog.fixed_micro_batch, catalog.fixed_seq_len) == (None, None)
    assert (imported.fixed_micro_batch, imported.fixed_seq_len, imported.num_layers) == (BATCH, SEQ, LAYERS)


@pytest.mark.parametrize(
    ("axis", "layout"),
    [
        ("tp", Layout(tp=2, micro_batch=BATCH)),
        ("pp", Layout(pp=2, micro_batch=BATCH)),
        ("vp", Layout(vp=2, micro_batch=BATCH)),
        ("cp", Layout(cp=2, micro_batch=BATCH)),
        ("ep", Layout(ep=2, micro_batch=BATCH)),
        ("recompute", Layout(recompute="full", micro_batch=BATCH)),
    ],
)
def test_an_axis_the_model_does_not_take_is_refused_by_name(axis: str, layout: Layout) -> None:
    imported = _mlp_stack()
    system = system_for(get_chip("h100"), None)
    with pytest.raises(InputError, match=f"^{axis}="):
        estimate_training(imported, system, layout, imported_workload(imported, 8 * BATCH))


def test_one_code_path_for_one_layout_and_many() -> None:
    # `estimate_training` is `evaluate_layouts` on one row, for an imported model as for a catalog one.
    imported = _mlp_stack()
    chip = get_chip("h100")
    system = system_for(chip, None)
    workload = imported_workload(imported, 16 * BATCH * 2)
    layouts = [Layout(dp=16, zero=z, micro_batch=BATCH) for z in (0, 1, 2, 3)]
    arrays = evaluate_layouts(imported, system, workload, LayoutTable.from_layouts(layouts), chip=chip)
    for i, layout in enumerate(layouts):
        one = estimate_training(imported, system, layout, workload, chip=chip)
        assert one.step_time_s == pytest.approx(float(arrays.step_time_s[i]), rel=1e-12)
        assert one.memory_per_chip_gib == pytest.approx(float(arrays.memory_per_chip_gib[i]), rel=1e-12)
        assert sum(one.breakdown.values()) == pytest.approx(one.step_time_s, rel=1e-12)


def _levels(chip_id: str, fsdp: bool = False) -> tuple[System, tuple[LevelArrays, ...]]:
    chip = get_chip(chip_id)
    system = system_for(chip, None)
    cal = shipped_calibration()
    eff = cal.collective_efficiency_on(chip) * (cal.fsdp_collective_efficiency if fsdp else 1.0)
    return system, LevelArrays.of_system(system, eff, in_network_reduction=cal.in_network_reduction(chip.id))


def _on_16_h100(zero: int, m: int) -> tuple[ImportedModel, TrainingEstimate]:
    """The MLP stack's estimate at dp = 16 on H100 (two NVLink nodes), `m` micro-batches per step."""
    imported = _mlp_stack()
    layout = Layout(dp=16, zero=zero, micro_batch=BATCH)
    system = system_for(get_chip("h100"), None)
    return imported, estimate_training(imported, system, layout, imported_workload(imported, 16 * BATCH * m))


def _grad_bytes() -> float:
    """Bytes per gradient element the reference stack on h100 reduces: 4 in fp32, else bf16's."""
    fp32 = shipped_calibration().grad_reduce_fp32_on(get_chip("h100"))
    return 4.0 if fp32 else state_bytes("bf16").gradients


def test_imported_gradient_all_reduce_is_the_hand_derivation() -> None:
    # ZeRO-0 on 16 H100 (two NVLink nodes): one all-reduce of the gradients per step (in fp32 under
    # the reference stack, Megatron: `grad_reduce_dtype`), hidden behind the last micro-batch's
    # backward except the last bucket, max(40M, 1M * dp) parameters.
    m = 2
    imported, est = _on_16_h100(zero=0, m=m)
    _, levels = _levels("h100")
    params = float(imported.trainable_param_count)
    grads = np.asarray([_grad_bytes() * params])
    bucket = min(1.0, max(BUCKET_PARAMS, BUCKET_PARAMS_PER_DP_RANK * 16) / params)
    # One all-reduce call per bucket (`parallel.comm`: bandwidth at the call's size, latency per call).
    group = Group.place(levels, [(np.asarray([16.0]), 1.0)])
    ar = float(all_reduce_s(levels, group, grads, grads * bucket)[0])
    t_bwd = est.breakdown["compute_backward"] / m
    exposed = max(ar - t_bwd, ar * bucket)
    assert est.breakdown["dp"] == pytest.approx(exposed, rel=1e-9)
    assert est.hidden_comm["dp"] == pytest.approx(ar - exposed, rel=1e-9)
    assert est.breakdown["fsdp"] == 0.0


def test_imported_fsdp_moves_three_passes_per_micro_batch() -> None:
    # ZeRO-3 on 16 H100: per micro-batch two all-gathers of the weights (forward, backward) and one
    # reduce-scatter of the gradients, one collective per FSDP unit (a layer); exposed + hidden is
    # all of it, whatever the overlap.
    m = 2
    imported, est = _on_16_h100(zero=3, m=m)
    chip = get_chip("h100")
    _, fl = _levels("h100", fsdp=True)
    group = Group.place(fl, [(np.asarray([16.0]), 1.0)])
    ring = shipped_calibration().fsdp_flat_ring_on(chip)
    weights = np.asarray([state_bytes("bf16").weights * imported.trainable_param_count])
    ag = float(flat_collective_s(fl, group, weights, buckets=float(LAYERS), ring=ring)[0])
    grads = np.asarray([_grad_bytes() * imported.trainable_param_count])
    rs = float(flat_collective_s(fl, group, grads, buckets=float(LAYERS), ring=ring)[0])
    moved = est.breakdown["fsdp"] + est.hidden_comm["fsdp"] + est.breakdown["dp"] + est.hidden_comm["dp"]
    assert moved == pytest.approx(m * (2 * ag + rs), rel=1e-9)


def test_plan_training_searches_only_the_imported_models_axes() -> None:
    imported = _mlp_stack()
    result = plan_training(imported, "h100", 8, imported_workload(imported, 8 * BATCH * 2), top_k=10)
    assert result.evaluated_layouts == 4  # dp = 8, ZeRO 0-3, the recorded micro-batch
    layouts = [r.layout for r in result.top]
    assert {lay.zero for lay in layouts} <= {0, 1, 2, 3}
    assert all((lay.dp, lay.tp, lay.pp, lay.cp, lay.micro_batch) == (8, 1, 1, 1, BATCH) for lay in layouts)
    best = result.best
    assert best is not None and best.samples_per_s_per_chip == pytest.approx(
        best.step.tokens_per_s_per_chip / SEQ, rel=1e-12
    )
    from twofold.search.enumerate import EnumerateOptions

    with pytest.raises(InputError, match="^tp=2: imported models support data parallel"):
        plan_training(imported, "h100", 8, imported_workload(imported, 64), options=EnumerateOptions(tp=2))


def test_an_imported_model_takes_the_calibration_and_stack_arguments() -> None:
    # The same arguments as a catalog model: the stack is named in the result, its factors applied.
    imported = _mlp_stack()
    system = system_for(get_chip("h100"), None)
    layout, workload = Layout(dp=8, zero=1, micro_batch=BATCH), imported_workload(imported, 8 * BATCH)
    est = estimate_training(imported, system, layout, workload, stack="auto")
    assert est.provenance["stack"] and est.uncertainty is None  # no held-out rows for imported graphs
    assert est.samples_per_s_per_chip == pytest.approx(8 * BATCH / (est.step_time_s * 8), rel=1e-12)
    d = est.to_dict()
    assert d["samples_per_s_per_chip"] == est.samples_per_s_per_chip and d["unsupported_ops"] == {}
