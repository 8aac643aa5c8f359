"""The serving estimator against hand derivations: decode at batch 1 is weights + KV cache over the
achievable bandwidth, prefill is FLOPs over the achievable peak, TP/PP communication is the ring
and send/recv formulas, and the largest batch that fits is the largest that fits."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from _inference_fixtures import DENSE, LINK_BYTES_S, LINK_LATENCY_S, MOE, toy_chip, toy_profile, toy_system

from twofold.cost.calibration import UNCALIBRATED
from twofold.errors import InputError
from twofold.estimate.inference import estimate_inference
from twofold.estimate.inference_result import BREAKDOWN_TERMS
from twofold.estimate.inference_types import InferenceLayout, InferenceWorkload
from twofold.parallel.comm import HALF_BANDWIDTH_BYTES
from twofold.parallel.memory import DEFAULT_MEM_HEADROOM, FRAGMENTATION_FRACTION, WORKSPACE_FIXED_GIB
from twofold.workload.registry import get_model

AB = 2.0  # bf16 bytes per element


def _run(layout=None, *, model=DENSE, chip=None, overhead_s=0.0, **work):
    w = dict(batch=1, input_tokens=512, output_tokens=128) | work
    return estimate_inference(
        model,
        toy_system(),
        layout or InferenceLayout(),
        InferenceWorkload(**w),
        chip=chip or toy_chip(),
        profile=toy_profile(overhead_s=overhead_s),
        calibration=UNCALIBRATED,  # hand derivations below use the catalog's link figures as given
    )


def _linear_params(m) -> int:
    """Every GEMM weight of a llama-style layer stack plus the untied LM head (hand count)."""
    h, d, heads, kv, f = m.hidden_size, m.head_dim, m.num_attention_heads, m.num_kv_heads, m.intermediate_size
    return m.num_layers * (h * (heads + 2 * kv) * d + heads * d * h + 3 * h * f) + m.vocab_size * h


def test_decode_at_batch_one_is_weights_plus_kv_over_bandwidth_plus_overheads() -> None:
    m, o = DENSE, 7e-6
    est = _run(overhead_s=o, input_tokens=512, output_tokens=128)
    h, d, heads, kv, f, L, V = (
        m.hidden_size, m.head_dim, m.num_attention_heads, m.num_kv_heads, m.intermediate_size, m.num_layers,
        m.vocab_size,
    )  # fmt: skip
    bw = 2.0e12 * 0.75  # hbm_bandwidth x memory_efficiency
    ctx = 512 + 64  # mean context of the output: N + M/2
    assert est.decode_context_len == ctx
    # Weights read per token: every GEMM weight, and the one embedding row looked up.
    weights = (_linear_params(m) + h) * AB
    # KV cache: attention reads ctx keys+values per layer; the append reads the new k,v and writes them.
    kv_bytes = L * (ctx * 2 * kv * d * AB + 2 * kv * d * (AB + AB))
    # Activations (the modelled extra traffic at batch 1), per layer: norms 2x(read h, weight h, write h),
    # residuals 2x(read 2h, write h), QKV in h / out (H+2K)d, rope (H+K)d in and out, attention q and o
    # Hd each, output GEMM in Hd / out h, MLP up in h / out 2f, activation in 2f / out f, down in f / out h.
    per_layer = 16 * h + d * (6 * heads + 4 * kv) + 6 * f
    # Model level: embedding writes h, final norm reads h + weight h, writes h, LM head reads h, writes V.
    acts = (L * per_layer + 5 * h + V) * AB
    ops = 3 + 12 * L  # embedding, final norm, LM head + 12 ops per layer, each paying the overhead once
    dec = est.breakdown_decode
    assert dec["compute"] == 0.0  # batch 1: every operator is memory-bound on this chip
    assert dec["weight_read"] == pytest.approx(weights / bw, rel=1e-12)
    assert dec["kv_cache"] == pytest.approx(kv_bytes / bw, rel=1e-12)
    assert dec["overhead"] == pytest.approx(ops * o, rel=1e-12)
    assert est.tpot_s == pytest.approx((weights + kv_bytes + acts) / bw + ops * o, rel=1e-12)
    assert est.e2e_latency_s == pytest.approx(est.ttft_s + 127 * est.tpot_s, rel=1e-12)
    assert est.output_tokens_per_s == pytest.approx(128 / est.e2e_latency_s, rel=1e-12)


def test_prefill_compute_is_gemm_and_causal_attention_flops_over_achievable_peak() -> None:
    m = DENSE
    chip = toy_chip(tflops=20.0, bandwidth_tb_s=50.0)  # slow compute: GEMMs and attention compute-bound
    b, n = 4, 1024
    est = _run(chip=chip, batch=b, input_tokens=n, output_tokens=16)
    # GEMMs: 2 x tokens x weights for the layers, the LM head only on the last position of each prompt.
    gemm_flops = (
        2 * b * n * (_linear_params(m) - m.vocab_size * m.hidden_size) + 2 * b * m.vocab_size * m.hidden_size
    )
    # Causal attention: query i sees i+1 keys: n(n+1)/2 pairs, 2*(d_qk + d_v) FLOPs per pair and head.
    attn_flops = m.num_layers * b * m.num_attention_heads * 2 * (2 * m.head_dim) * n * (n + 1) / 2
    rate = 20e12 * 0.5
    expected = gemm_flops / rate + attn_flops / (rate * 0.8)
    assert est.breakdown_prefill["compute"] == pytest.approx(expected, rel=1e-12)
    # Every GEMM is compute-bound; the only weight bytes left on the memory side are the embedding rows.
    rows = b * n * m.hidden_size * AB
    assert est.breakdown_prefill["weight_read"] == pytest.approx(rows / (50e12 * 0.75), rel=1e-12)


def test_tensor_parallel_pays_two_ring_all_reduces_per_layer() -> None:
    tp, b, n = 4, 2, 256
    est = _run(InferenceLayout(tp=tp), batch=b, input_tokens=n, output_tokens=8)

    def ring(nbytes: float) -> float:  # Thakur et al. 2005 ring all-reduce inside one switched domain
        # at the call's size: bandwidth x S / (S + min(S, S_half)) (`parallel.comm.HALF_BANDWIDTH_BYTES`)
        half = HALF_BANDWIDTH_BYTES["switched"]
        bandwidth = LINK_BYTES_S * nbytes / (nbytes + min(nbytes, half))
        return 2 * (tp - 1) / tp * nbytes / bandwidth + 2 * (tp - 1) * LINK_LATENCY_S

    L, h = DENSE.num_layers, DENSE.hidden_size
    assert est.breakdown_decode["tp_allreduce"] == pytest.approx(2 * L * ring(b * h * AB), rel=1e-12)
    assert est.breakdown_prefill["tp_allreduce"] == pytest.approx(2 * L * ring(b * n * h * AB), rel=1e-12)


def test_pipeline_steps_bubble_and_send_recv() -> None:
    h = DENSE.hidden_size
    send = 1 * h * AB / LINK_BYTES_S + LINK_LATENCY_S  # one sequence's activation to the next stage
    one = _run(InferenceLayout(pp=2), batch=1)  # one micro-batch: half of each round is bubble
    two = _run(InferenceLayout(pp=2), batch=2)  # two micro-batches of one sequence: no decode bubble
    assert one.micro_batches == 1 and two.micro_batches == 2
    step_one = one.tpot_s / 2
    assert one.breakdown_decode["pipeline_bubble"] == pytest.approx(step_one, rel=1e-12)
    assert two.breakdown_decode["pipeline_bubble"] == 0.0
    assert two.breakdown_decode["pp_sendrecv"] == pytest.approx(2 * send, rel=1e-12)
    # Prefill: m + pp - 1 steps of which m are busy.
    step_p = two.ttft_s / 3
    assert two.breakdown_prefill["pipeline_bubble"] == pytest.approx(step_p, rel=1e-12)


@pytest.mark.parametrize(("layout", "batch"), [(InferenceLayout(), 3), (InferenceLayout(tp=2, pp=2), 6)])
def test_breakdowns_add_up(layout: InferenceLayout, batch: int) -> None:
    est = _run(layout, batch=batch)
    assert set(est.breakdown_decode) == set(BREAKDOWN_TERMS)
    assert sum(est.breakdown_prefill.values()) == pytest.approx(est.ttft_s, rel=1e-12)
    assert sum(est.breakdown_decode.values()) == pytest.approx(est.tpot_s, rel=1e-12)
    assert sum(est.memory_gib.values()) == pytest.approx(est.memory_per_chip_gib, rel=1e-12)


def test_kv_cache_memory_and_capacity_match_the_formula() -> None:
    m, b, n, out = DENSE, 6, 1000, 500
    est = _run(batch=b, input_tokens=n, output_tokens=out)
    per_token = 2 * m.num_layers * m.num_kv_heads * m.head_dim * AB  # 2 * L * kv_heads * head_dim * bytes
    assert est.memory_gib["kv_cache"] * 2**30 == pytest.approx(b * (n + out) * per_token, rel=1e-12)
    # Capacity: the tokens that fill the usable HBM (capacity less the fit rule's headroom) beside
    # the weights, activations and the documented workspace.
    cap = 16 * 2**30 * (1.0 - DEFAULT_MEM_HEADROOM)
    weights = est.memory_gib["weights"] * 2**30
    acts = est.memory_gib["activations"] * 2**30

    def total(tokens: int) -> float:
        return (weights + acts + tokens * per_token) * (
            1 + FRAGMENTATION_FRACTION
        ) + WORKSPACE_FIXED_GIB * 2**30

    assert total(est.kv_capacity_tokens) <= cap < total(est.kv_capacity_tokens + 1)


@pytest.mark.parametrize(
    ("model", "layout", "work"),
    [
        (DENSE, InferenceLayout(), dict(input_tokens=4000, output_tokens=4000)),
        (DENSE, InferenceLayout(tp=2, pp=2), dict(input_tokens=2048, output_tokens=512)),
        (MOE, InferenceLayout(ep=2), dict(input_tokens=512, output_tokens=512)),
    ],
)
def test_max_batch_is_the_largest_that_fits(model, layout, work) -> None:
    est = _run(layout, model=model, batch=layout.ep, **work)
    top = est.max_batch
    assert top >= layout.ep
    assert _run(layout, model=model, batch=top, **work).fits
    assert not _run(layout, model=model, batch=top + layout.ep, **work).fits


def test_weights_that_do_not_fit_give_max_batch_zero() -> None:
    est = _run(chip=toy_chip(capacity_gib=1.0))  # 1 GiB holds the fixed workspace and nothing else
    assert est.max_batch == 0 and not est.fits and est.kv_capacity_tokens == 0
    assert any("does not fit" in note for note in est.notes)


def test_lower_weight_and_kv_precision_read_fewer_bytes() -> None:
    bf16 = _run(batch=8)
    fp8 = _run(batch=8, weight_precision="fp8", kv_precision="fp8")
    assert fp8.breakdown_decode["weight_read"] == pytest.approx(
        bf16.breakdown_decode["weight_read"] / 2, rel=1e-3
    )
    assert fp8.memory_gib["kv_cache"] == pytest.approx(bf16.memory_gib["kv_cache"] / 2, rel=1e-12)


def test_pad_heads_allows_tp_that_does_not_divide_the_heads() -> None:
    model = get_model("llama3-70b")  # 64 heads, 8 kv heads: tp=12 divides neither
    with pytest.raises(InputError, match="num_attention_heads"):
        _run(InferenceLayout(tp=12), model=model)
    plain = _run(InferenceLayout(tp=8), model=model, chip=toy_chip(capacity_gib=96.0))
    padded = _run(InferenceLayout(tp=12, pad_heads=True), model=model, chip=toy_chip(capacity_gib=96.0))
    # 72 heads, 12 kv heads (one per chip), ffn 28680: the padded weights spread over 12 chips.
    assert any("heads 64->72" in note for note in padded.notes)
    assert padded.memory_gib["weights"] * 12 > plain.memory_gib["weights"] * 8


@pytest.mark.parametrize(
    ("layout", "work", "field"),
    [
        (InferenceLayout(), dict(batch=0), "batch"),
        (InferenceLayout(), dict(input_tokens=0), "input_tokens"),
        (InferenceLayout(tp=3), {}, "tp"),  # 16 heads
        (InferenceLayout(pp=9), {}, "pp"),  # 8 layers
        (InferenceLayout(ep=2), dict(batch=2), "ep"),  # dense model
        (InferenceLayout(), dict(weight_precision="int3"), "weight_precision"),
        (InferenceLayout(), dict(kv_precision="fp7"), "kv_precision"),
    ],
)
def test_bad_input_is_an_input_error(layout, work, field) -> None:
    with pytest.raises(InputError) as err:
        _run(layout, **work)
    assert err.value.field == field


def test_tp_neither_dividing_nor_multiple_of_kv_heads_is_refused() -> None:
    with pytest.raises(InputError, match="num_kv_heads=4"):
        _run(InferenceLayout(tp=14), model=get_model("qwen2.5-7b"))  # 28 heads, 4 kv heads


def test_batch_not_multiple_of_ep_and_encoders_are_refused() -> None:
    with pytest.raises(InputError, match="multiple of ep"):
        _run(InferenceLayout(ep=2), model=MOE, batch=3)
    with pytest.raises(InputError, match="encoder"):
        _run(model=replace(DENSE, causal=False))


def test_to_dict_is_json_with_units_in_names() -> None:
    d = json.loads(json.dumps(_run(InferenceLayout(tp=2), batch=4).to_dict()))
    assert d["tpot_ms"] == pytest.approx(d["tpot_s"] * 1e3)
    assert set(d["breakdown_decode"]) == {f"{k}_s" for k in BREAKDOWN_TERMS}
    assert d["layout"]["tp"] == 2 and d["workload"]["batch"] == 4
    # $ per million tokens from the system's price per chip-hour and tokens/s per chip.
    assert d["usd_per_million_output_tokens"] == pytest.approx(
        2.0 / 3600 / d["output_tokens_per_s_per_chip"] * 1e6, rel=1e-12
    )
    assert math.isfinite(d["kv_capacity_tokens"])
