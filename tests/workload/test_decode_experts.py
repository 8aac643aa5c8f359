"""MoE decode reads only the experts a step touches (issue 15 item 5).

Reference: the expected number of distinct experts hit by B tokens, each routed to k of E experts
uniformly, is E * (1 - (1 - k/E)^B) (a given expert is missed by one token with probability
1 - k/E); derived by hand below for Mixtral-8x7B (E = 8, k = 2) and Qwen3-30B-A3B (E = 128,
k = 8), and the expert weight bytes of a decode step are that count times one expert's weights.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twofold.workload.graph import decode_ops
from twofold.workload.layers import touched_experts
from twofold.workload.ops import EXPERT_GEMM_PREFIX
from twofold.workload.registry import get_model

MIXTRAL = get_model("mixtral-8x7b")
QWEN_MOE = get_model("qwen3-30b-a3b")


def _expert_weight_bytes(model, batch: int, *, tp: int = 1, ep: int = 1) -> float:  # noqa: ANN001
    """Bytes of expert weights a decode step reads per MoE layer on one chip (bf16)."""
    ops = decode_ops(model, batch=batch, context_len=512, tp=tp, ep=ep)
    experts = [op for op in ops if op.name.startswith(EXPERT_GEMM_PREFIX) and op.kind == "gemm"]
    per_layer = sum(op.dims["k"] * op.dims["n"] * 2.0 * op.count for op in experts)
    return per_layer / model.num_moe_layers


def _one_expert_bytes(model, *, tp: int = 1) -> float:  # noqa: ANN001
    return 3 * model.hidden_size * model.moe_intermediate_size / tp * 2.0


def test_expected_count_by_hand() -> None:
    assert touched_experts(8, 2, 1) == pytest.approx(2.0)  # one token: exactly its k experts
    # Mixtral, 4 tokens: 8 * (1 - 0.75^4) = 8 * 0.68359375 = 5.46875.
    assert touched_experts(8, 2, 4) == pytest.approx(5.46875)
    # Qwen3-30B-A3B, 16 tokens: 128 * (1 - (15/16)^16) = 128 * 0.6439... = 82.42.
    assert touched_experts(128, 8, 16) == pytest.approx(128 * (1 - (15 / 16) ** 16))
    assert touched_experts(128, 8, 4096) == pytest.approx(128.0)


def test_batch_one_reads_k_experts() -> None:
    for model in (MIXTRAL, QWEN_MOE):
        expected = model.num_experts_per_tok * _one_expert_bytes(model)
        assert _expert_weight_bytes(model, 1) == pytest.approx(expected)


def test_mixtral_batch_four_reads_five_experts() -> None:
    # 5.47 expected experts, rounded to 5 whole experts (balanced routing would read all 8).
    assert _expert_weight_bytes(MIXTRAL, 4) == pytest.approx(5 * _one_expert_bytes(MIXTRAL))


def test_large_batch_reads_every_expert() -> None:
    assert _expert_weight_bytes(QWEN_MOE, 256) == pytest.approx(128 * _one_expert_bytes(QWEN_MOE))


def test_expert_parallel_chip_reads_its_share() -> None:
    # ep 8: 16 local experts; 8 sequences per chip x 8 chips = 64 tokens in the EP group:
    # 128 * (1 - (15/16)^64) = 126.8 expected, 15.85 of them local, rounded to 16.
    local = round(touched_experts(128, 8, 64) / 8)
    assert _expert_weight_bytes(QWEN_MOE, 8, ep=8) == pytest.approx(local * _one_expert_bytes(QWEN_MOE))
    # tp 4 splits every expert's width: a quarter of the bytes per touched expert.
    assert _expert_weight_bytes(MIXTRAL, 1, tp=4) == pytest.approx(2 * _one_expert_bytes(MIXTRAL, tp=4))


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 300), extra=st.integers(1, 64))
def test_more_batch_never_reads_fewer_expert_bytes(batch: int, extra: int) -> None:
    assert touched_experts(128, 8, batch + extra) >= touched_experts(128, 8, batch)
    assert _expert_weight_bytes(QWEN_MOE, batch + extra) >= _expert_weight_bytes(QWEN_MOE, batch)
