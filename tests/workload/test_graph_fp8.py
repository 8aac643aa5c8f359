"""FP8 training recipe in the operator graph: only GEMMs run in FP8 (Transformer Engine; Micikevicius
et al. 2022, arXiv 2209.05433, section 4), everything else in BF16, plus one cast per GEMM input.
Reference: hand derivation of the cast traffic and the BF16 graph of the same model."""

from __future__ import annotations

from twofold.workload.graph import training_ops
from twofold.workload.model import ModelConfig

MODEL = ModelConfig(
    name="tiny-gqa",
    family="llama",
    num_layers=2,
    hidden_size=256,
    num_attention_heads=8,
    num_kv_heads=2,
    head_dim=32,
    intermediate_size=512,
    vocab_size=1024,
)


def test_fp8_runs_only_gemms_in_fp8() -> None:
    ops = training_ops(MODEL, micro_batch=2, seq_len=64, precision="fp8")
    kinds_dtypes = {(op.kind, op.dtype) for op in ops}
    assert {dt for kind, dt in kinds_dtypes if kind == "gemm"} == {"fp8"}
    assert {dt for kind, dt in kinds_dtypes if kind != "gemm"} == {"bf16"}


def test_fp8_gemm_flops_equal_bf16_and_casts_match_gemm_inputs() -> None:
    fp8 = training_ops(MODEL, micro_batch=2, seq_len=64, precision="fp8")
    bf16 = training_ops(MODEL, micro_batch=2, seq_len=64, precision="bf16")
    gemm_flops = [sum(op.flops * op.count for op in g if op.kind == "gemm") for g in (fp8, bf16)]
    assert gemm_flops[0] == gemm_flops[1]
    attn = [sum(op.flops * op.count for op in g if op.kind == "attention") for g in (fp8, bf16)]
    assert attn[0] == attn[1]
    # One forward cast per forward GEMM: reads m*k BF16 elements (2 B), writes them in FP8 (1 B).
    gemms = {op.name: op for op in fp8 if op.kind == "gemm" and op.phase == "forward"}
    casts = {op.name: op for op in fp8 if op.name.endswith(".cast") and op.phase == "forward"}
    assert set(casts) == {f"{name}.cast" for name in gemms}
    for name, g in gemms.items():
        c = casts[f"{name}.cast"]
        elements = g.dims["m"] * g.dims["k"]
        assert (c.bytes_read, c.bytes_written, c.count) == (2.0 * elements, 1.0 * elements, g.count)
    # The FP8 GEMM reads its activation in FP8 and writes BF16: qkv has m=128 tokens, k=256, n=(8+4)*32.
    qkv = gemms["layer.attn.qkv"]
    assert qkv.bytes_read == 128 * 256 * 1.0 + 256 * 384 * 1.0
    assert qkv.bytes_written == 128 * 384 * 2.0
