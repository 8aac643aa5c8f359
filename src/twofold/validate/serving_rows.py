"""Serving rows on NVIDIA, AMD and Google TPU (published_results_4): how each kind is expressed.

- TensorRT-LLM 0.9.0 `gptSessionBenchmark` (GT4097-GT4105): static batching, one batch of B
  prompts of ISL tokens decoded to OSL tokens together, which is `estimate_inference` itself. The
  peak-throughput tables give output tokens/s per GPU = B * OSL / end-to-end latency / GPUs; the
  low-latency table the first-token latency of one prompt (prefill, output length 1). FP8 rows
  run FP8 weights, activations and KV cache (an assumption: the doc names only "FP8"); FP16 rows
  FP16 throughout. The doc's A100 is the 80 GB part (validate/data/mapping.yaml says why).
- vLLM `benchmark_latency.py` on MI300X (GT4110-GT4113): end-to-end seconds of one static batch,
  `estimate_inference`'s `e2e_latency_s`; Quark FP8 weights, activations and KV cache.
- vLLM `benchmark_throughput.py` on MI300X (GT4106-GT4109): every prompt queued at once with
  `max_num_seqs` = the prompt count, simulated (`serving.simulate_serving`) as a closed loop of
  all prompts with chunked prefill at 8192 tokens per step (vLLM V1's default budget; an
  assumption, small beside the decode of these rows). The table does not say whether its tokens/s
  count the prompt tokens (vLLM prints both); the prediction is output tokens/s, and rows where
  the prompt tokens are more than 10% of all tokens are left out: at ISL/OSL = 128/2048 the two
  readings differ by 128/2176 = 5.9%, at 2048/2048 by 2x.
- vLLM TPU `vllm bench serve` on a v6e-8 (GT4114-GT4119): a closed loop of `max-concurrency`
  requests over the run's prompts, `--max-num-seqs` as the max batch and
  `--max-num-batched-tokens` as the chunked-prefill budget, BF16; compared on output tokens/s,
  median TTFT and median TPOT.
- TensorRT-LLM v1.0 `trtllm-bench` NVFP4 rows (B200, GB200): `validate.inference.serving_call`,
  with FP4 GEMMs where the chip's catalog entry has an FP4 rate, NVFP4 weight bytes (4-bit values
  plus one FP8 scale per 16) and an FP8 KV cache (ModelOpt FP4 checkpoints quantize it to FP8).

Not expressible, with the reason (`unexpressible_reason`): MLPerf llama2-70b and mixtral rows, whose
dataset input lengths are in neither the row nor its source (the throughput and the Server latency
limits depend on them), and MLPerf GPT-J on TPU v5e (GPT-J is not in the catalog either).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twofold.validate.dataset import PublishedRow

__all__ = [
    "NotInferenceRow",
    "StaticCall",
    "chip_and_system",
    "load_call",
    "row_engine",
    "static_call",
    "unexpressible_reason",
]


class NotInferenceRow(NotImplementedError):
    """The row lacks what the inference estimator needs (its reason is reported)."""


_MODELS = {
    "Llama-2-70B": "llama2-70b",
    "Llama-2-7B": "llama2-7b",
    "Mixtral-8x7B": "mixtral-8x7b",
    "Llama-3.1-70B-Instruct": "llama3.1-70b",
    "Llama-3.1-405B-Instruct": "llama3.1-405b",
    "Llama-3.3-70B-Instruct": "llama3.1-70b",  # Llama 3.3 70B has Llama 3.1 70B's config
}
_SESSION = re.compile(r"batch size (?P<b>\d+); ISL/OSL=(?P<n_in>\d+)/(?P<n_out>\d+)")
_FIRST_TOKEN = re.compile(r"1st-token latency at batch size (?P<b>\d+), input length (?P<n_in>\d+)")
_THROUGHPUT = re.compile(
    r"ISL/OSL=(?P<n_in>\d+)/(?P<n_out>\d+); num_prompts=(?P<count>\d+); max_num_seqs=(?P<k>\d+)"
)
_TPU_SERVE = re.compile(
    r"--max-num-batched-tokens (?P<chunk>\d+) --max-num-seqs (?P<seqs>\d+)"
    r".*?ISL/OSL=(?P<n_in>\d+)/(?P<n_out>\d+)"
    r".*?(?P<count>\d+) prompts, request rate inf with max-concurrency (?P<k>\d+)"
)
_PROMPT_SHARE_LIMIT = 0.10  # the most the prompt tokens may be of all tokens in an ambiguous figure
_VLLM_V1_CHUNK_TOKENS = 8192


@dataclass(frozen=True, kw_only=True, slots=True)
class StaticCall:
    """`estimate_inference` keyword arguments for a row, and how its figure reads off the estimate."""

    kwargs: dict[str, Any]
    figure: Callable[[Any], float]


def row_engine(row: PublishedRow) -> str:
    """The serving engine of a row, as the README's accuracy table groups them."""
    notes = row.notes
    if "MLPerf harness on TensorRT-LLM" in notes:
        return "TensorRT-LLM (MLPerf)"
    if "TensorRT-LLM" in notes:
        return "TensorRT-LLM"
    if "vLLM TPU" in notes:
        return "vLLM TPU"
    if "Saxml" in notes:
        return "Saxml"
    if "NxDI" in notes or "NxD Inference" in notes or "vllm-neuron" in notes:
        return "vLLM on NxD Inference"
    if "vLLM" in notes or "engine=vLLM" in notes:
        return "vLLM"
    if "Transformers NeuronX" in notes or row.hardware.startswith(("AWS Trainium1", "AWS Inferentia2")):
        return "Transformers NeuronX"
    return "other"


def unexpressible_reason(row: PublishedRow) -> str | None:
    """Why a serving row of this file cannot be expressed (module docstring), None when it can."""
    if "WITHOUT prefix caching" in row.notes and "NOT" in row.notes:
        return (
            "TTFT on a public dataset (prefix-caching comparison): the prompt lengths and the run's "
            "concurrency are not in the row"
        )
    if row.source.startswith("MLPerf Inference") and "gptj" in row.notes:
        return (
            "MLPerf GPT-J (catalog gpt-j-6b): the CNN/DailyMail input lengths are not in the row, "
            "and samples/s depend on them"
        )
    if row.source.startswith("MLPerf Inference"):
        return (
            "MLPerf Offline/Server: the dataset's input lengths are in neither the row nor its source "
            "(published_results_4.md: 'Mean input lengths are not in the results files'); throughput and "
            "the Server TTFT/TPOT limits depend on them"
        )
    match = _THROUGHPUT.search(row.notes)
    if match and "benchmark_throughput" in row.notes:
        n_in, n_out = int(match["n_in"]), int(match["n_out"])
        if n_in / (n_in + n_out) > _PROMPT_SHARE_LIMIT:
            return (
                f"the published tokens/s may or may not count the {n_in} prompt tokens (vLLM prints both; "
                f"the table does not say): at ISL/OSL={n_in}/{n_out} the readings differ by "
                f"{(n_in + n_out) / n_out:.2f}x"
            )
    return None


def _model(row: PublishedRow) -> Any:
    from twofold.workload.registry import get_model

    model_id = _MODELS.get(row.model)
    if model_id is None:
        raise NotInferenceRow(f"model {row.model!r} has no catalog mapping")
    return get_model(model_id)


def _precisions(row: PublishedRow, chip: Any) -> dict[str, Any]:
    text = row.precision
    if "NVFP4" in text:
        if chip.fp4_dense_tflops is None:
            raise NotInferenceRow(f"NVFP4 on {chip.id}: the catalog has no FP4 rate for it")
        return {"precision": "fp4", "weight_precision": "nvfp4", "kv_precision": "fp8"}
    if "FP8" in text:
        return {"precision": "fp8", "weight_precision": None, "kv_precision": "fp8"}
    if text.startswith("FP16"):
        return {"precision": "fp16", "weight_precision": None, "kv_precision": None}
    if text.startswith("BF16"):
        return {"precision": "bf16", "weight_precision": None, "kv_precision": None}
    raise NotInferenceRow(f"precision {text!r} has no serving mapping")


def chip_and_system(row: PublishedRow) -> tuple[Any, Any]:
    """The row's catalog chip and system (validate/data/mapping.yaml), or `NotInferenceRow`."""
    from twofold.validate.mapping import NotExpressible, row_hardware

    try:
        return row_hardware(row)
    except NotExpressible as exc:
        raise NotInferenceRow(str(exc)) from None


def static_call(row: PublishedRow) -> StaticCall | None:
    """The static-batch estimate of a TensorRT-LLM 0.9 or vLLM latency row, None for other rows."""
    from twofold.estimate.inference_types import InferenceLayout, InferenceWorkload

    notes = row.notes
    session = "gptSessionBenchmark" in notes
    latency = "benchmark_latency" in notes
    if not (session or latency):
        return None
    first = _FIRST_TOKEN.search(notes) if session else None
    shape = _SESSION.search(notes)
    if first is not None:
        batch, n_in, n_out = int(first["b"]), int(first["n_in"]), 1
    elif shape is not None:
        batch, n_in, n_out = int(shape["b"]), int(shape["n_in"]), int(shape["n_out"])
    else:
        raise NotInferenceRow("no 'batch size B; ISL/OSL=N/M' in the notes")
    figures: dict[str, Callable[[Any], float]] = {
        "output_tokens_per_s_per_chip": lambda est: float(est.output_tokens_per_s) / est.layout.chips,
        "ttft_ms": lambda est: float(est.ttft_s) * 1e3,
        "latency_s": lambda est: float(est.e2e_latency_s),
    }
    if row.metric not in figures:
        raise NotInferenceRow(f"metric {row.metric} has no static-batch prediction")
    chip, system = chip_and_system(row)
    tp = int(row.tp or row.chips or 1)
    precisions = _precisions(row, chip)
    workload = InferenceWorkload(batch=batch, input_tokens=n_in, output_tokens=n_out, **precisions)
    kwargs = {
        "model": _model(row),
        "system": system,
        "layout": InferenceLayout(tp=tp),
        "workload": workload,
        "chip": chip,
    }
    return StaticCall(kwargs=kwargs, figure=figures[row.metric])


def load_call(row: PublishedRow) -> dict[str, Any] | None:
    """`simulate_serving` keyword arguments for a vLLM offline-throughput or vLLM TPU serve row."""
    from twofold.estimate.inference_types import InferenceLayout, InferenceWorkload
    from twofold.serving import ServingConfig

    throughput = _THROUGHPUT.search(row.notes) if "benchmark_throughput" in row.notes else None
    serve = _TPU_SERVE.search(row.notes) if "vLLM TPU" in row.notes else None
    if throughput is None and serve is None:
        return None
    reason = unexpressible_reason(row)
    if reason is not None:
        raise NotInferenceRow(reason)
    match = throughput or serve
    assert match is not None  # one of the two matched
    n_in, n_out, count, k = (int(match[g]) for g in ("n_in", "n_out", "count", "k"))
    if throughput is not None:
        config = ServingConfig(
            max_batch=k, concurrency=count, num_requests=count, input_tokens=n_in, output_tokens=n_out,
            chunked_prefill=_VLLM_V1_CHUNK_TOKENS, engine="vllm",
        )  # fmt: skip
    else:
        config = ServingConfig(
            max_batch=int(match["seqs"]), concurrency=k, num_requests=count, input_tokens=n_in,
            output_tokens=n_out, chunked_prefill=int(match["chunk"]), engine="vllm",
        )  # fmt: skip
    chip, system = chip_and_system(row)
    precisions = {k: v for k, v in _precisions(row, chip).items() if v is not None}
    return {
        "model": _model(row),
        "system": system,
        "layout": InferenceLayout(tp=int(row.tp or row.chips or 1)),
        "workload": InferenceWorkload(batch=1, input_tokens=n_in, output_tokens=n_out, **precisions),
        "config": config,
        "chip": chip,
    }
