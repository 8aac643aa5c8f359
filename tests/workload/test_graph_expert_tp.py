"""Expert tensor parallelism (Megatron-Core `--expert-tensor-parallel-size`) in the operator graph.

Hand derivation: with tp = 2 and sequence parallelism, etp = tp splits each expert's width over the
two ranks and both ranks serve all of the TP group's tokens; etp = 1 keeps the full width and each
rank serves its own half of the tokens. Per chip the routed-expert FLOPs are the same
(2 x tokens x top_k x (hidden x 2f + f x hidden) for a gated MLP, divided by 2 either way), the
GEMM shapes are not (m halves, n doubles).
"""

from __future__ import annotations

import pytest

from twofold.errors import InputError
from twofold.workload.graph import forward_ops
from twofold.workload.model import ModelConfig

MOE = ModelConfig(
    name="moe-16e",
    family="mixtral",
    num_layers=2,
    hidden_size=256,
    num_attention_heads=8,
    num_kv_heads=8,
    head_dim=32,
    intermediate_size=512,
    vocab_size=1024,
    num_experts=16,
    num_experts_per_tok=2,
    moe_intermediate_size=128,
)


def _experts(etp: int | None):
    ops = forward_ops(MOE, batch=1, seq_len=64, tp=2, ep=4, etp=etp)
    return [op for op in ops if op.name.startswith("layer.moe.experts.") and op.kind == "gemm"]


def test_expert_flops_per_chip_do_not_depend_on_etp() -> None:
    tokens, k, h, f = 64, 2, 256, 128
    # ep = 4 ranks of the expert group each hold 4 of 16 experts and, balanced, receive the
    # tokens*k*ep/E = tokens*k/4 routed copies of every rank in the group: tokens*k copies in all.
    expected = 2 * tokens * k * (h * 2 * f + f * h) * 2 / 2  # 2 layers, split over tp = 2
    for etp in (None, 1):
        assert sum(op.flops * op.count for op in _experts(etp)) == pytest.approx(expected)


def test_etp_one_halves_m_and_doubles_n() -> None:
    up_tp = next(op for op in _experts(None) if op.name.endswith("up_gate"))
    up_one = next(op for op in _experts(1) if op.name.endswith("up_gate"))
    assert up_one.dims["m"] * 2 == up_tp.dims["m"]
    assert up_one.dims["n"] == 2 * up_tp.dims["n"] == 2 * 128


def test_etp_must_divide_tp_and_dense_models_have_none() -> None:
    with pytest.raises(InputError, match="etp"):
        forward_ops(MOE, batch=1, seq_len=64, tp=2, ep=4, etp=4)
    dense = ModelConfig(
        name="dense",
        family="llama",
        num_layers=2,
        hidden_size=256,
        num_attention_heads=8,
        num_kv_heads=8,
        head_dim=32,
        intermediate_size=512,
        vocab_size=1024,
    )
    with pytest.raises(InputError, match="etp"):
        forward_ops(dense, batch=1, seq_len=64, tp=2, etp=1)
