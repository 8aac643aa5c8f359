"""KV-cache sizes against the published formulas, and invariants of the serving estimator (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _inference_fixtures import DENSE, MOE, toy_chip, toy_profile, toy_system
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twofold.estimate.inference import estimate_inference
from twofold.estimate.inference_types import InferenceLayout, InferenceWorkload
from twofold.estimate.kv import kv_bytes_per_token, kv_bytes_per_token_layer, kv_cache_bytes
from twofold.workload.registry import get_model


def test_gqa_kv_bytes_per_token() -> None:
    # Llama 3 8B: 32 layers, 8 KV heads of 128: 2 * 32 * 8 * 128 * 2 bytes = 128 KiB per token in bf16.
    assert kv_bytes_per_token(get_model("llama3-8b"), "bf16") == 2 * 32 * 8 * 128 * 2 == 131072
    # Llama 2 7B is MHA: 32 KV heads, 4x the cache of its GQA successor; fp8 halves it.
    assert kv_bytes_per_token(get_model("llama2-7b"), "fp8") == 2 * 32 * 32 * 128 * 1


def test_mla_kv_bytes_per_token() -> None:
    # DeepSeek-V2 (arXiv 2405.04434) table 1: MLA caches (d_c + d_h^R) elements per token and layer,
    # kv_lora_rank 512 + rope 64 = 576 for DeepSeek-V3's 61 layers.
    assert kv_bytes_per_token(get_model("deepseek-v3"), "bf16") == 61 * (512 + 64) * 2
    # The latent is not split by head: every tensor-parallel chip keeps all of it.
    assert kv_bytes_per_token_layer(get_model("deepseek-v3"), "bf16", tp=8) == 576 * 2


def test_kv_heads_are_split_then_replicated_over_tp() -> None:
    model = get_model("llama3-70b")  # 8 KV heads of 128
    per_head = 2 * 128 * 2
    assert kv_bytes_per_token_layer(model, "bf16", tp=4) == 2 * per_head
    assert kv_bytes_per_token_layer(model, "bf16", tp=8) == per_head
    assert kv_bytes_per_token_layer(model, "bf16", tp=16) == per_head  # one replicated head per chip


def test_sliding_window_layers_cap_their_context() -> None:
    mistral = get_model("mistral-7b")  # every layer slides over 4096 tokens
    per = 2 * 8 * 128 * 2
    assert float(kv_cache_bytes(mistral, "bf16", context_len=1000)) == 32 * 1000 * per
    assert float(kv_cache_bytes(mistral, "bf16", context_len=10000)) == 32 * 4096 * per
    oss = get_model("gpt-oss-120b")  # 18 of 36 layers slide over 128 tokens; 8 KV heads of 64
    per = 2 * 8 * 64 * 2
    assert (
        float(kv_cache_bytes(oss, "bf16", context_len=5000, sequences=3)) == 3 * (18 * 5000 + 18 * 128) * per
    )


@given(
    model=st.sampled_from(
        [DENSE, get_model("mistral-7b"), get_model("gpt-oss-120b"), get_model("deepseek-v3")]
    ),
    ctx=st.integers(1, 200_000),
    more=st.integers(0, 100_000),
    tp=st.sampled_from([1, 2, 4, 8, 16]),
)
def test_longer_context_never_shrinks_the_kv_cache(model, ctx, more, tp) -> None:
    short = float(kv_cache_bytes(model, "bf16", context_len=ctx, tp=tp))
    long = float(kv_cache_bytes(model, "bf16", context_len=ctx + more, tp=tp))
    assert 0 < short <= long


_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_layouts = st.sampled_from(
    [InferenceLayout(), InferenceLayout(tp=2), InferenceLayout(tp=4, pp=2), InferenceLayout(pp=4)]
)


def _estimate(layout, *, chip=None, model=DENSE, **work):
    return estimate_inference(
        model,
        toy_system(),
        layout,
        InferenceWorkload(**work),
        chip=chip or toy_chip(),
        profile=toy_profile(overhead_s=3e-6),
    )


@_SETTINGS
@given(
    layout=_layouts,
    batch=st.integers(1, 64),
    n_in=st.integers(1, 4096),
    n_out=st.integers(1, 2048),
    bw=st.floats(0.1, 10.0),
    factor=st.floats(1.0, 8.0),
)
def test_more_hbm_bandwidth_never_slows_serving(layout, batch, n_in, n_out, bw, factor) -> None:
    work = dict(batch=batch, input_tokens=n_in, output_tokens=n_out)
    slow = _estimate(layout, chip=toy_chip(bandwidth_tb_s=bw), **work)
    fast = _estimate(layout, chip=toy_chip(bandwidth_tb_s=bw * factor), **work)
    assert fast.tpot_s <= slow.tpot_s * (1 + 1e-12)
    assert fast.ttft_s <= slow.ttft_s * (1 + 1e-12)


@_SETTINGS
@given(
    layout=_layouts,
    batch=st.integers(1, 32),
    n_in=st.integers(1, 4096),
    n_out=st.integers(1, 2048),
    more=st.integers(1, 4096),
)
def test_longer_output_never_shrinks_kv_memory_nor_speeds_decode(layout, batch, n_in, n_out, more) -> None:
    short = _estimate(layout, batch=batch, input_tokens=n_in, output_tokens=n_out)
    long = _estimate(layout, batch=batch, input_tokens=n_in, output_tokens=n_out + more)
    assert long.memory_gib["kv_cache"] > short.memory_gib["kv_cache"]
    assert long.tpot_s >= short.tpot_s * (1 - 1e-12)
    assert long.max_batch <= short.max_batch


@_SETTINGS
@given(
    model_layout=st.sampled_from(
        [
            (DENSE, InferenceLayout()),
            (DENSE, InferenceLayout(tp=8, pp=2)),
            (MOE, InferenceLayout(ep=2)),
            (MOE, InferenceLayout(tp=2, ep=4)),
        ]
    ),
    per_ep=st.integers(1, 40),
    n_in=st.integers(1, 8192),
    n_out=st.integers(1, 4096),
    precision=st.sampled_from([("bf16", None), ("bf16", "int8"), ("fp8", "fp4")]),
)
def test_estimates_are_finite_non_negative_and_add_up(model_layout, per_ep, n_in, n_out, precision) -> None:
    model, layout = model_layout
    est = _estimate(
        layout, model=model, batch=per_ep * layout.ep, input_tokens=n_in, output_tokens=n_out,
        precision=precision[0], weight_precision=precision[1],
    )  # fmt: skip
    values = [est.ttft_s, est.tpot_s, est.e2e_latency_s, est.output_tokens_per_s, est.memory_per_chip_gib]
    values += [*est.breakdown_prefill.values(), *est.breakdown_decode.values(), *est.memory_gib.values()]
    assert all(math.isfinite(v) and v >= 0 for v in values)
    assert est.ttft_s > 0 and est.tpot_s > 0
    assert sum(est.breakdown_prefill.values()) == pytest.approx(est.ttft_s, rel=1e-12)
    assert sum(est.breakdown_decode.values()) == pytest.approx(est.tpot_s, rel=1e-12)
    assert est.max_batch % layout.ep == 0 and est.kv_capacity_tokens >= 0


@_SETTINGS
@given(capacity=st.floats(2.0, 200.0), extra=st.floats(0.0, 100.0), n_in=st.integers(1, 8192))
def test_more_hbm_never_lowers_the_batch_that_fits(capacity, extra, n_in) -> None:
    work = dict(batch=1, input_tokens=n_in, output_tokens=256)
    small = _estimate(InferenceLayout(), chip=toy_chip(capacity_gib=capacity), **work)
    big = _estimate(InferenceLayout(), chip=toy_chip(capacity_gib=capacity + extra), **work)
    assert big.max_batch >= small.max_batch and big.kv_capacity_tokens >= small.kv_capacity_tokens
    assert np.isfinite(big.memory_per_chip_gib)
