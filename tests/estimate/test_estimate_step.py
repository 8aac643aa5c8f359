"""The typed result of the training estimator (`estimate.step`): its JSON is the JSON the estimator
produced before it was typed, and every field is the number its name says.

References: the keys and their order are those `evaluate_layouts` returned as a dict, which
`twofold plan --json` printed per layout before the typed result (commit 445e116, recorded here
as `KEYS_BEFORE`); the values are checked against the step-time algebra of `estimate.training`'s
module docstring, recomputed by hand from the fields for one layout.
"""

from __future__ import annotations

import json
import math
from dataclasses import fields

import numpy as np
import pytest

from twofold.estimate import (
    BREAKDOWN_TERMS,
    HIDDEN_TERMS,
    MEMORY_TERMS,
    StepArrays,
    StepTerms,
    estimate_training,
    evaluate_layouts,
    model_flops_per_token,
)
from twofold.estimate.step import STEP_FIELDS
from twofold.hardware.catalog import get_chip, system_for
from twofold.parallel.layout import Layout, LayoutTable, TrainingWorkload
from twofold.search.plan import plan_training
from twofold.workload.registry import get_model

# The per-layout keys of `twofold plan --json` before the typed result, in their order.
KEYS_BEFORE = (
    "step_time_s",
    "tokens_per_s_per_chip",
    "mfu",
    "model_flops_per_step",
    "microbatches",
    "bubble_fraction",
    "memory_per_chip_bytes",
    "memory_per_chip_gib",
    "fits",
    *(f"breakdown_{t}_s" for t in BREAKDOWN_TERMS),
    *(f"hidden_{t}_s" for t in HIDDEN_TERMS),
    *(f"memory_{t}_bytes" for t in MEMORY_TERMS),
)
# Added since: the kernel time's compute-roofline and roofline shares (compare's factors read them
# instead of re-pricing the graph), at the end so every key before keeps its place.
KEYS_ADDED = ("kernel_compute_share", "kernel_roofline_share")
KEYS = (*KEYS_BEFORE, *KEYS_ADDED)
MODEL = get_model("llama3.1-8b")
H100 = get_chip("h100")
SYSTEM = system_for(H100)
WORKLOAD = TrainingWorkload(global_batch=1024, seq_len=4096, precision="bf16")
# `twofold estimate --model llama3.1-8b --chip h100 --chips 8`'s layout, and one with a pipeline.
LAYOUTS = (
    Layout(dp=8, zero=1),
    Layout(dp=2, tp=2, pp=4, vp=2, micro_batch=2, zero=1, recompute="selective"),
)


def _arrays() -> StepArrays:
    return evaluate_layouts(MODEL, SYSTEM, WORKLOAD, LayoutTable.from_layouts(list(LAYOUTS)), chip=H100)


def test_fields_are_the_keys_before_in_their_order() -> None:
    assert STEP_FIELDS == KEYS
    assert tuple(f.name for f in fields(StepArrays)) == KEYS
    arrays = _arrays()
    assert tuple(arrays.to_dict()) == KEYS
    assert tuple(arrays.row(0).to_dict()) == KEYS
    # A share of the op time: the compute roofline <= the roofline (max with memory) <= the op time.
    for i in range(len(arrays)):
        row = arrays.row(i)
        assert 0.0 < row.kernel_compute_share <= row.kernel_roofline_share <= 1.0


@pytest.mark.parametrize("i", range(len(LAYOUTS)))
def test_to_dict_is_the_fields_by_hand(i: int) -> None:
    """Every figure recomputed from the other fields and the layout (estimate.training docstring)."""
    layout, arrays = LAYOUTS[i], _arrays()
    row = arrays.row(i)
    d = row.to_dict()
    # the row is the arrays' entry i, as plain Python numbers (what JSON writes)
    for name in STEP_FIELDS:
        assert d[name] == getattr(arrays, name)[i]
        assert type(d[name]) is (bool if name == "fits" else float)
    json.dumps(d)
    chips = layout.dp * layout.tp * layout.pp * layout.cp
    m = WORKLOAD.global_batch / (layout.dp * layout.micro_batch)
    tokens = WORKLOAD.global_batch * WORKLOAD.seq_len
    flops = model_flops_per_token(MODEL, WORKLOAD.seq_len) * tokens
    # step = the breakdown terms added in order; hidden communication is not part of it
    assert d["step_time_s"] == sum(d[f"breakdown_{t}_s"] for t in BREAKDOWN_TERMS)
    assert d["step_time_s"] == sum(row.breakdown_s.values())
    assert d["tokens_per_s_per_chip"] == tokens / (d["step_time_s"] * chips)
    assert d["model_flops_per_step"] == flops
    peak = H100.peak_tflops("bf16") * 1e12
    assert d["mfu"] == flops / (d["step_time_s"] * chips * peak)
    assert d["microbatches"] == m
    assert d["bubble_fraction"] == (layout.pp - 1) / (layout.vp * m)
    parts = [d[f"memory_{t}_bytes"] for t in MEMORY_TERMS]
    assert d["memory_per_chip_bytes"] == pytest.approx(math.fsum(parts), rel=1e-12)
    assert d["memory_per_chip_gib"] == d["memory_per_chip_bytes"] / 2**30
    assert d["fits"] == (d["memory_per_chip_bytes"] <= 0.95 * H100.hbm_capacity_bytes)
    # the named groups read the same fields
    fwd, bwd, rc = (d[f"breakdown_compute_{t}_s"] for t in ("forward", "backward", "recompute"))
    assert row.kernel_s == fwd + bwd + rc
    assert row.exposed_comm_s == sum(d[f"breakdown_{t}_s"] for t in ("tp", "cp", "ep", "pp", "dp", "fsdp"))
    assert row.memory_gib == {t: d[f"memory_{t}_bytes"] / 2**30 for t in MEMORY_TERMS}
    assert row.hidden_s == {t: d[f"hidden_{t}_s"] for t in HIDDEN_TERMS}
    if layout.pp > 1:
        assert d["breakdown_bubble_s"] > 0 and d["hidden_pp_s"] > 0
    assert StepTerms.from_dict(json.loads(json.dumps(d))) == row


@pytest.mark.parametrize("i", range(len(LAYOUTS)))
def test_the_estimate_json_is_the_row(i: int) -> None:
    """`twofold estimate --json` (TrainingEstimate.to_dict) reports the row's fields, and
    TrainingEstimate.terms() gives the row back."""
    row = _arrays().row(i)
    est = estimate_training(MODEL, SYSTEM, LAYOUTS[i], WORKLOAD, chip=H100)
    d = est.to_dict()
    for name in ("step_time_s", "tokens_per_s_per_chip", "mfu", "model_flops_per_step", "bubble_fraction"):
        assert d[name] == getattr(row, name)
    assert d["microbatches"] == int(row.microbatches) and d["fits"] == row.fits
    assert d["memory_per_chip_gib"] == row.memory_per_chip_gib
    assert d["breakdown"] == {f"{t}_s": v for t, v in row.breakdown_s.items()}
    assert d["hidden_comm"] == {f"{t}_s": v for t, v in row.hidden_s.items()}
    assert d["memory"] == {f"{t}_gib": v for t, v in row.memory_gib.items()}
    assert est.terms() == row


def test_the_plan_json_is_the_row_of_its_layout() -> None:
    """`twofold plan --json`'s best layout: its layout, then exactly the row's `to_dict()`."""
    result = plan_training(MODEL, SYSTEM, 8, WORKLOAD, chip=H100, top_k=1)
    assert result.best is not None
    best = result.best.to_dict()
    table = LayoutTable.from_layouts([result.best.layout])
    row = evaluate_layouts(MODEL, SYSTEM, WORKLOAD, table, chip=H100).row(0)
    assert best == {"layout": best["layout"], **row.to_dict()}
    assert tuple(best)[1:] == KEYS


def test_take_and_concat_keep_rows() -> None:
    arrays = _arrays()
    both = StepArrays.concat([arrays.take(np.array([1])), arrays.take(np.array([0]))])
    assert len(both) == 2 and both.row(0) == arrays.row(1) and both.row(1) == arrays.row(0)
