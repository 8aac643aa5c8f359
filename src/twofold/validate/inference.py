"""Inference rows of the published results: the serving estimator against published throughput.

Every row with task == "infer" (AWS Neuron Trainium1 / Inferentia2 Llama decoding, Transformers
NeuronX, Neuron 2.18) is predicted by `estimate.estimate_inference` with the row's conventions:
- tp in the rows counts NeuronCores; 2 NeuronCores per chip, so tp_chips = tp / 2 (trn1: 16,
  inf2: 12). Tensor-parallel degrees that do not divide the heads (12 and 16 for 40 or 64 heads)
  run with padded heads (`pad_heads=True`), as Transformers NeuronX pads them.
- "FP16 model, BF16 matmul, int8|bf16 weights": compute and KV cache bf16, weights int8 or bf16.
- "input N / output M tokens; batch B" in the notes; the published figure is the instance's output
  tokens/s = B * M / end-to-end latency (`InferenceEstimate.output_tokens_per_s`).
These rows are summarised apart from the training-throughput rows (another workload, another
metric) and are not used by the training-calibration fit.
"""

from __future__ import annotations

import re
from typing import Any

from twofold.errors import InputError
from twofold.validate.dataset import PublishedRow

__all__ = ["inference_call", "predict_inference"]

_SHAPE = re.compile(r"input (\d+) / output (\d+) tokens; batch (\d+)")
_CHIPS = {"Trainium1": "trn1", "Inferentia2": "inf2"}
_CORES_PER_CHIP = 2


class NotInferenceRow(NotImplementedError):
    """The row lacks what the inference estimator needs (its reason is reported)."""


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


def predict_inference(row: PublishedRow, calibration: Any = None) -> tuple[float, dict[str, float]]:
    """(predicted output tokens/s of the instance, TTFT/TPOT and breakdown seconds) for one row."""
    from twofold.estimate.inference import estimate_inference

    if row.metric != "output_tokens_per_s":
        raise NotInferenceRow(f"metric {row.metric} has no inference prediction")
    try:
        est = estimate_inference(**inference_call(row), calibration=calibration)
    except InputError as exc:
        raise NotInferenceRow(f"estimator: {exc}") from exc
    detail = {"ttft_s": float(est.ttft_s), "tpot_s": float(est.tpot_s)}
    return float(est.output_tokens_per_s), detail
