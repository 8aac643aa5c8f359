"""Gradients reduced in the stack's precision (`cost.stack` grad_reduce_dtype): fp32 moves twice
the bytes of bf16 in every data-parallel gradient collective, and nothing else changes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from twofold.cost.stack import Mechanism, get_stack
from twofold.estimate import estimate_training
from twofold.hardware.catalog import get_chip, system_for
from twofold.parallel.layout import Layout, TrainingWorkload
from twofold.workload.registry import get_model


def _with_reduce(stack_id: str, dtype: str):  # noqa: ANN202
    stack = get_stack(stack_id)
    mechanisms = dict(stack.mechanisms) | {
        "grad_reduce_dtype": Mechanism(name="grad_reduce_dtype", value=dtype, source="test")
    }
    return replace(stack, id=f"{stack_id}-{dtype}", mechanisms=mechanisms)


def test_fp32_reduction_moves_twice_the_gradient_bytes() -> None:
    """ZeRO-0 on 32 H100s (4 nodes): the step's gradient all-reduce (exposed + hidden) of a 70B
    model is bandwidth-bound, so fp32 takes twice bf16's time to within the collective's latency;
    compute is the same."""
    chip = get_chip("h100")
    model, work = get_model("llama3.1-70b"), TrainingWorkload(global_batch=256, seq_len=4096)
    layout = Layout(tp=8, dp=4, pp=1, zero=0)
    system = system_for(chip)
    runs = {
        dtype: estimate_training(model, system, layout, work, chip=chip, stack=_with_reduce("megatron", dtype))  # noqa: E501
        for dtype in ("bf16", "fp32")
    }
    total = {k: r.breakdown["dp"] + r.hidden_comm["dp"] for k, r in runs.items()}
    assert total["fp32"] == pytest.approx(2.0 * total["bf16"], rel=0.02)
    forward = {k: r.breakdown["compute_forward"] for k, r in runs.items()}
    assert forward["fp32"] == pytest.approx(forward["bf16"])


def test_the_shipped_stacks_state_their_reduction_precision() -> None:
    assert get_stack("megatron").grad_reduce_fp32(None) and get_stack("torchtitan").grad_reduce_fp32(None)
    assert not get_stack("fsdp").grad_reduce_fp32(None)
    assert all(get_stack(s).mechanisms["grad_reduce_dtype"].source for s in ("megatron", "fsdp", "maxtext"))


def test_a_zero_stage_the_stack_lacks_is_priced_with_a_note() -> None:
    """`estimate` prices any stage asked for (a what-if) and says when the stack does not implement
    it; with one data-parallel rank the stage does not matter and nothing is said."""
    chip = get_chip("h100")
    model, work = get_model("llama3.1-8b"), TrainingWorkload(global_batch=64, seq_len=2048)
    system = system_for(chip)
    two = estimate_training(model, system, Layout(dp=8, zero=2), work, chip=chip, stack="nanotron")
    assert any("ZeRO-2 is not a stage stack nanotron implements" in n for n in two.notes)
    one = estimate_training(model, system, Layout(dp=8, zero=1), work, chip=chip, stack="nanotron")
    assert not any("ZeRO" in n for n in one.notes)
    alone = estimate_training(model, system, Layout(dp=1, zero=2), work, chip=chip, stack="nanotron")
    assert not any("ZeRO" in n for n in alone.notes)


def test_a_synchronous_parameter_gather_is_exposed_whole() -> None:
    """ZeRO-1 on 32 H100s (`cost.stack` param_gather_overlap): Megatron-Core hides the gather of
    the updated weights behind the next forward; nanotron's and DeepSpeed's optimizers run it inside
    `step()`. The same collective either way: the data-parallel total (exposed + hidden) does not
    move, only what is exposed, by the gather's hidden part; compute is the same."""
    chip = get_chip("h100")
    model, work = get_model("llama3.1-70b"), TrainingWorkload(global_batch=256, seq_len=4096)
    layout = Layout(tp=8, dp=4, pp=1, zero=1)
    system = system_for(chip)
    runs = {
        sid: estimate_training(model, system, layout, work, chip=chip, stack=sid)
        for sid in ("megatron", "megatron+param_gather_overlap=false")
    }
    hidden, exposed = runs["megatron"], runs["megatron+param_gather_overlap=false"]
    total = {k: r.breakdown["dp"] + r.hidden_comm["dp"] for k, r in runs.items()}
    assert total["megatron"] == pytest.approx(total["megatron+param_gather_overlap=false"])
    assert exposed.breakdown["dp"] > hidden.breakdown["dp"]
    assert exposed.hidden_comm["dp"] < hidden.hidden_comm["dp"]
    assert exposed.breakdown["compute_forward"] == pytest.approx(hidden.breakdown["compute_forward"])
    assert get_stack("nanotron").param_gather_overlap(None) is False
    assert get_stack("megatron").param_gather_overlap(None) is True
