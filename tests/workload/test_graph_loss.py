"""Megatron-Core's fp32 vocab-parallel cross-entropy in the training graph. Reference: a hand count
of the passes of `VocabParallelCrossEntropy` (megatron/core/tensor_parallel/cross_entropy.py):
forward `.float()`, max, subtract, exp, sum, divide; backward multiply in place, cast back."""

from __future__ import annotations

import pytest

from twofold.workload.graph import training_ops
from twofold.workload.model import ModelConfig

MODEL = ModelConfig(
    name="tiny-ce",
    family="llama",
    num_layers=2,
    hidden_size=256,
    num_attention_heads=8,
    num_kv_heads=2,
    head_dim=32,
    intermediate_size=512,
    vocab_size=1000,
)


@pytest.mark.parametrize("tp, precision, act", [(1, "bf16", 2.0), (4, "bf16", 2.0), (2, "fp8", 2.0)])
def test_cross_entropy_moves_the_fp32_passes(tp: int, precision: str, act: float) -> None:
    b, s = 2, 64
    ops = training_ops(MODEL, micro_batch=b, seq_len=s, precision=precision, tp=tp)
    fwd = [op for op in ops if op.kind == "loss" and op.phase == "forward"]
    bwd = [op for op in ops if op.kind == "loss" and op.phase == "backward"]
    assert len(fwd) == len(bwd) == 1
    tokens, vocab = b * s, -(-1000 // tp)  # Megatron pads the vocabulary to a multiple of tp
    e = tokens * vocab
    # Forward reads: logits (act), then fp32 max, subtract, exp, sum, divide: 5 fp32 reads.
    # Forward writes: the fp32 copy, subtract, exp, divide (4 fp32 writes) + one fp32 loss per token.
    assert fwd[0].bytes_read == pytest.approx(e * (act + 5 * 4))
    assert fwd[0].bytes_written == pytest.approx(e * 4 * 4 + 4 * tokens)
    # Backward: multiply in place (read + write fp32), cast back (read fp32, write act).
    assert bwd[0].bytes_read == pytest.approx(e * 2 * 4)
    assert bwd[0].bytes_written == pytest.approx(e * (4 + act))


def test_cross_entropy_dominates_the_non_gemm_traffic_of_a_large_vocabulary_head() -> None:
    # With V >> h the fp32 loss moves more than the LM head GEMM's own operands, which is why it
    # shows up as memory-bound time (the factor the calibration used to absorb).
    ops = training_ops(MODEL, micro_batch=2, seq_len=64)
    loss = sum(op.total_bytes for op in ops if op.kind == "loss")
    head = sum(op.total_bytes for op in ops if op.name.startswith("lm_head") and op.kind == "gemm")
    assert loss > head
