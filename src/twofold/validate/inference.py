"""Inference rows of the published results: the serving estimator against published throughput.

Every row with task == "infer" (AWS Neuron Trainium1 / Inferentia2 Llama decoding, Transformers
NeuronX, Neuron 2.18) is predicted by `estimate.estimate_inference` with the row's conventions:
- tp in the rows counts NeuronCores; 2 NeuronCores per chip, so tp_chips = tp / 2 (trn1: 16,
  inf2: 12). Tensor-parallel degrees that do not divide the heads (12 and 16 for 40 or 64 heads)
  run with padded heads (`pad_heads=True`), as Transformers NeuronX pads them.
- "FP16 model, BF16 matmul, int8|bf16 weights": compute and KV cache bf16, weights int8 or bf16.
- "input N / output M tokens; batch B" in the notes; the published figure is the instance's output
  tokens/s = B * M / end-to-end latency (`InferenceEstimate.output_tokens_per_s`).

Serving rows measured under a load (`serving_call`) are simulated (`serving.simulate_serving`) and
compared on their own metric (TTFT p50, TPOT p50 or output tokens/s over the run):
- AWS Neuron Trainium2 (vLLM on NxD Inference, LLMPerf or `vllm bench serve`): "N input / M output
  tokens, concurrency K" or "N in / M out, P prompts, max-concurrency K" in the notes. The row's
  `chips` column is the replica (TP_DEGREE counts logical NeuronCores, 4 per chip at LNC=2); a
  closed loop of K requests with max batch K. Priced as vLLM's scheduler: the rows do not list the
  compiled sequence buckets, so bucket padding is not charged.
- TensorRT-LLM v1.0 `trtllm-bench throughput` (GPUs): "ISL/OSL=N/M; num_requests=R", every request
  queued at once: a closed loop of R with trtllm-bench's default max batch 2048 and max tokens per
  step 8192 (chunked context), FP8 weights, activations and KV cache for the FP8 checkpoints
  (ModelOpt FP8 checkpoints quantize the KV cache too: an assumption where the row does not say).
  NVFP4 checkpoints on chips with a catalog FP4 rate (B200, GB200) run FP4 GEMMs, NVFP4 weight
  bytes and an FP8 KV cache (`validate.serving_rows`).
The other serving rows on NVIDIA, AMD and TPU (TensorRT-LLM 0.9 static batches, vLLM on MI300X,
vLLM TPU on v6e, MLPerf) are mapped, or refused with the reason, in `validate.serving_rows`.
Speculative decoding (draft model or EAGLE heads not in the catalog), prefix-cache rows without
prompt lengths, and models missing from the catalog are unexpressible, with the reason.
"""

from __future__ import annotations

import re
from typing import Any

from twofold.errors import InputError
from twofold.validate.dataset import PublishedRow
from twofold.validate.serving_rows import (
    NotInferenceRow,
    chip_and_system,
    load_call,
    static_call,
    unexpressible_reason,
)

__all__ = ["NotInferenceRow", "inference_call", "predict_inference", "row_chip", "serving_call"]

_SHAPE = re.compile(r"input (\d+) / output (\d+) tokens; batch (\d+)")
_CHIPS = {"Trainium1": "trn1", "Inferentia2": "inf2"}
_CORES_PER_CHIP = 2


def inference_call(row: PublishedRow) -> dict[str, Any]:
    """The keyword arguments of `estimate_inference` for one published inference row."""
    from twofold.estimate.inference_types import InferenceLayout, InferenceWorkload
    from twofold.hardware.catalog import get_chip, system_for
    from twofold.workload.registry import get_model

    match = _SHAPE.search(row.notes)
    if match is None:
        raise NotInferenceRow("no 'input N / output M tokens; batch B' in the notes")
    chip_id = next((c for key, c in _CHIPS.items() if key in row.hardware), None)
    if chip_id is None:
        raise NotInferenceRow(f"no catalog chip for {row.hardware!r}")
    n_in, n_out, batch = (int(g) for g in match.groups())
    chip = get_chip(chip_id)
    weights = "int8" if "int8 weights" in row.precision else "bf16"
    tp = (row.tp or _CORES_PER_CHIP) // _CORES_PER_CHIP
    return {
        "model": get_model(row.model),
        "system": system_for(chip),
        "layout": InferenceLayout(tp=tp, pad_heads=True),
        "workload": InferenceWorkload(
            batch=batch, input_tokens=n_in, output_tokens=n_out, precision="bf16", weight_precision=weights
        ),
        "chip": chip,
    }


_LOAD_SHAPES = (
    re.compile(r"(?P<n_in>\d+) input / (?P<n_out>\d+) (?:requested )?output tokens.*?concurrency (?P<k>\d+)"),
    re.compile(r"(?P<n_in>\d+) in / (?P<n_out>\d+) out, (?P<count>\d+) prompts, max-concurrency (?P<k>\d+)"),
)
_TRTLLM_BENCH = re.compile(r"ISL/OSL=(?P<n_in>\d+)/(?P<n_out>\d+); num_requests=(?P<count>\d+)")
_SERVING_MODELS = {
    "Llama 3.1 405B Instruct": "llama3.1-405b",
    "Llama 3.3 70B Instruct": "llama3.1-70b",  # Llama 3.3 70B has Llama 3.1 70B's config
    "Llama-3.3-70B-Instruct": "llama3.1-70b",
    "Llama 3.1 8B Instruct": "llama3.1-8b",
    "Llama-3.1-8B-Instruct": "llama3.1-8b",
    "Llama-3.1-405B-Instruct": "llama3.1-405b",
    "gpt-oss-120b": "gpt-oss-120b",
    "Qwen3-32B": "qwen3-32b",
}
_SERVING_METRICS = {
    "ttft_ms": "ttft_ms",
    "tpot_p50_ms": "tpot_ms",
    "output_tokens_per_s": "output_tokens_per_s",
    "tokens_per_s": "output_tokens_per_s",  # vLLM benchmark_throughput rows (validate.serving_rows)
}


def serving_call(row: PublishedRow) -> dict[str, Any] | None:
    """The keyword arguments of `serving.simulate_serving` for a row measured under a load (module
    docstring), None for the static rows; `NotInferenceRow` when it is a load row twofold cannot express."""
    from twofold.estimate.inference_types import InferenceLayout, InferenceWorkload
    from twofold.hardware.catalog import get_chip, system_for
    from twofold.serving import ServingConfig
    from twofold.workload.registry import get_model

    other = load_call(row)
    if other is not None:
        return other
    load = next((m for m in (p.search(row.notes) for p in _LOAD_SHAPES) if m), None)
    bench = _TRTLLM_BENCH.search(row.notes) if "trtllm-bench throughput" in row.notes else None
    if load is None and bench is None:
        return None
    if "speculat" in row.model.lower() or "EAGLE" in row.model or "APC" in row.model:
        raise NotInferenceRow("speculative decoding with a draft or EAGLE head not in the model catalog")
    if row.model not in _SERVING_MODELS:
        raise NotInferenceRow(f"model {row.model!r} not in the catalog (issue 15 item 5 adds it)")
    if row.metric not in _SERVING_METRICS:
        raise NotInferenceRow(f"metric {row.metric} has no serving prediction")
    model = get_model(_SERVING_MODELS[row.model])
    if load is not None:
        if "Trainium2" not in row.hardware or not row.chips:
            raise NotInferenceRow(f"no serving mapping for {row.hardware!r}")
        chip, k = get_chip("trn2"), int(load["k"])
        system = system_for(chip)
        count = int(load["count"]) if "count" in load.groupdict() and load["count"] else 10
        n_in, n_out, precision = int(load["n_in"]), int(load["n_out"]), "bf16"
        config = ServingConfig(
            max_batch=k, concurrency=k, num_requests=min(count, 20), input_tokens=n_in, output_tokens=n_out
        )
        tp = int(row.chips)
    else:
        assert bench is not None  # one of the two matched
        if not ("FP8" in row.precision or "NVFP4" in row.precision):
            raise NotInferenceRow(f"no serving mapping for {row.hardware!r} in {row.precision!r}")
        chip, system = chip_and_system(row)  # mapping.yaml: GB200 is the NVL72 part, not a B200
        precision = "fp8"
        if "NVFP4" in row.precision:
            if chip.fp4_dense_tflops is None:
                raise NotInferenceRow(f"NVFP4 on {chip.id}: the catalog has no FP4 rate for it")
            precision = "fp4"
        n_in, n_out, count = int(bench["n_in"]), int(bench["n_out"]), int(bench["count"])
        config = ServingConfig(
            max_batch=2048, concurrency=count, num_requests=count, input_tokens=n_in, output_tokens=n_out,
            chunked_prefill=8192, engine="trtllm",
        )  # fmt: skip
        tp = int(row.tp or 1)
    return {
        "model": model,
        "system": system,
        "layout": InferenceLayout(tp=tp),
        "workload": InferenceWorkload(
            batch=1,
            input_tokens=n_in,
            output_tokens=n_out,
            precision=precision,
            # ModelOpt NVFP4 checkpoints: one FP8 scale per 16 weights, the KV cache in FP8.
            weight_precision="nvfp4" if precision == "fp4" else None,
            kv_precision="fp8" if precision == "fp4" else None,
        ),
        "config": config,
        "chip": chip,
    }


def predict_inference(row: PublishedRow, calibration: Any = None) -> tuple[float, dict[str, float]]:
    """(predicted output tokens/s of the instance, TTFT/TPOT and breakdown seconds) for one row."""
    from twofold.estimate.inference import estimate_inference

    reason = unexpressible_reason(row)
    if reason is not None:
        raise NotInferenceRow(reason)
    call = serving_call(row)
    if call is not None:
        from twofold.serving import simulate_serving

        try:
            static, load = simulate_serving(**call, calibration=calibration)
        except InputError as exc:
            raise NotInferenceRow(f"estimator: {exc}") from exc
        figure = getattr(load, _SERVING_METRICS[row.metric])
        value = figure if isinstance(figure, float) else figure.p50
        detail = {"ttft_s": load.ttft_ms.p50 / 1e3, "tpot_s": load.tpot_ms.p50 / 1e3}
        return float(value), detail
    fixed = static_call(row)
    if fixed is not None:
        try:
            est = estimate_inference(**fixed.kwargs, calibration=calibration)
        except InputError as exc:
            raise NotInferenceRow(f"estimator: {exc}") from exc
        return fixed.figure(est), {"ttft_s": float(est.ttft_s), "tpot_s": float(est.tpot_s)}
    if row.metric != "output_tokens_per_s":
        raise NotInferenceRow(f"metric {row.metric} has no inference prediction")
    try:
        est = estimate_inference(**inference_call(row), calibration=calibration)
    except InputError as exc:
        raise NotInferenceRow(f"estimator: {exc}") from exc
    detail = {"ttft_s": float(est.ttft_s), "tpot_s": float(est.tpot_s)}
    return float(est.output_tokens_per_s), detail


def row_chip(row: PublishedRow) -> str:
    """The catalog chip a serving row is predicted on ("" where none can be named)."""
    for call in (lambda: serving_call(row), lambda: static_call(row), lambda: inference_call(row)):
        try:
            found = call()
        except (InputError, NotImplementedError):
            continue
        if found is not None:
            chip = found.kwargs["chip"] if hasattr(found, "kwargs") else found["chip"]
            return str(chip.id)
    return ""
