"""The serving rows on NVIDIA, AMD and TPU (published_results_4) map onto the estimator and simulator.

References: the rows' own notes (batch, ISL/OSL, prompts, concurrency, engine flags, as quoted from
TensorRT-LLM's performance docs, ROCm's vLLM README and Google's tpu-recipes), and the memory
arithmetic of Llama-2-70B and Mixtral-8x7B in FP16 (parameters x 2 bytes / tp) for the A100 variant.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from twofold.estimate.inference import estimate_inference
from twofold.validate.dataset import load_rows
from twofold.validate.inference import predict_inference, serving_call
from twofold.validate.serving_rows import (
    NotInferenceRow,
    load_call,
    row_engine,
    static_call,
    unexpressible_reason,
)

ROWS = {r.id: r for r in load_rows()}


def test_the_doc_a100_is_the_80gb_part() -> None:
    # GT4097: Llama-2-70B FP16 TP4, batch 1024 x 256 tokens. Weights 69e9 x 2 / 4 = 34.5 GB per GPU
    # and KV 80 layers x 2 x (8 / 4) heads x 128 x 2 bytes x 262144 tokens = 21.5 GB: more than 40 GB.
    static = static_call(ROWS["GT4097"])
    assert static is not None and static.kwargs["chip"].id == "a100"
    est = estimate_inference(**static.kwargs)
    assert est.memory_per_chip_gib > 40
    # GT4099: Mixtral-8x7B FP16 TP2 holds 46.7e9 x 2 / 2 = 46.7 GB of weights per GPU.
    mixtral = static_call(ROWS["GT4099"])
    assert mixtral is not None and estimate_inference(**mixtral.kwargs).memory_per_chip_gib > 40


def test_static_session_rows_read_the_estimate() -> None:
    static = static_call(ROWS["GT4101"])  # H100 FP8 TP2, batch 1024, 128/128, per-GPU tokens/s
    assert static is not None
    w = static.kwargs["workload"]
    assert (w.batch, w.input_tokens, w.output_tokens, w.precision, w.kv) == (1024, 128, 128, "fp8", "fp8")
    est = estimate_inference(**static.kwargs)
    assert static.figure(est) == pytest.approx(1024 * 128 / est.e2e_latency_s / 2)
    first = static_call(ROWS["GT4104"])  # first-token latency, batch 1, input 128, output 1
    assert first is not None and first.kwargs["workload"].output_tokens == 1
    assert first.figure(estimate_inference(**first.kwargs)) == pytest.approx(
        estimate_inference(**first.kwargs).ttft_s * 1e3
    )
    latency = static_call(ROWS["GT4111"])  # vLLM benchmark_latency: batch 64, 128/2048, e2e seconds
    assert latency is not None and latency.kwargs["workload"].batch == 64
    assert latency.kwargs["chip"].id == "mi300x"


def test_offline_throughput_is_every_prompt_at_once_unless_the_figure_is_ambiguous() -> None:
    call = load_call(ROWS["GT4106"])  # 128/2048, num_prompts 3200, max_num_seqs 3200
    assert call is not None
    config = call["config"]
    assert (config.concurrency, config.num_requests, config.max_batch) == (3200, 3200, 3200)
    with pytest.raises(NotInferenceRow, match="may or may not count"):
        load_call(ROWS["GT4107"])  # 2048/2048: total vs output tokens differ 2x


def test_vllm_tpu_rows_are_the_serve_flags() -> None:
    call = serving_call(ROWS["GT4117"])
    assert call is not None and call["chip"].id == "tpu-v6e" and call["layout"].tp == 8
    config = call["config"]
    assert (config.max_batch, config.concurrency, config.chunked_prefill) == (256, 128, 512)
    assert (config.num_requests, config.input_tokens, config.output_tokens) == (3000, 1000, 1000)


def test_nvfp4_needs_an_fp4_rate_and_gb200_is_not_b200() -> None:
    call = serving_call(ROWS["GT4091"])
    assert call is not None and call["chip"].id == "gb200"
    w = call["workload"]
    assert (w.precision, w.weights, w.kv) == ("fp4", "nvfp4", "fp8")
    on_h200 = replace(ROWS["GT4086"], hardware="NVIDIA H200 SXM 141GB")
    with pytest.raises(NotInferenceRow, match="no FP4 rate"):
        serving_call(on_h200)


def test_mlperf_rows_are_refused_with_the_missing_input_lengths() -> None:
    for row_id in ("GT4001", "GT4010", "GT4019"):
        reason = unexpressible_reason(ROWS[row_id])
        assert reason is not None and "input lengths" in reason
        with pytest.raises(NotInferenceRow, match="input lengths"):
            predict_inference(ROWS[row_id])


def test_engines_for_the_readme_table() -> None:
    expected = {
        "GT4088": "TensorRT-LLM",
        "GT4097": "TensorRT-LLM",
        "GT4010": "TensorRT-LLM (MLPerf)",
        "GT4106": "vLLM",
        "GT4114": "vLLM TPU",
        "GT2019": "vLLM on NxD Inference",
        "GT0611": "Transformers NeuronX",
    }
    assert {row_id: row_engine(ROWS[row_id]) for row_id in expected} == expected
