"""Predicted vs published serving figures for the inference rows of the shipped dataset.

Run: `python benchmarks/inference_rows.py`. For every row with task == "infer" (AWS Neuron
Trainium1 / Inferentia2 Llama decoding, Transformers NeuronX, Neuron 2.18) it prints the published
output tokens/s of the instance and TTFT p50 (from the row's notes) beside `estimate_inference`'s
prediction, and the error. Conventions applied to the rows (stated here, as `twofold validate` must
apply them too):
- tp in the rows counts NeuronCores; 2 NeuronCores per chip, so tp_chips = tp / 2 (trn1: 16,
  inf2: 12). Tensor-parallel degrees that do not divide the heads (12 and 16 for 40 or 64 heads)
  run with padded heads (`pad_heads=True`), as Transformers NeuronX pads them.
- "FP16 model, BF16 matmul, int8|bf16 weights": compute and KV cache bf16, weights int8 or bf16.
- "input N / output M tokens; batch B" in the notes; published throughput = B * M / latency.
"""

from __future__ import annotations

import platform
import re
import sys

import numpy as np

from twofold.estimate.inference import estimate_inference
from twofold.estimate.inference_types import InferenceLayout, InferenceWorkload
from twofold.hardware.catalog import get_chip, system_for
from twofold.validate.dataset import PublishedRow, load_rows
from twofold.workload.registry import get_model

_SHAPE = re.compile(r"input (\d+) / output (\d+) tokens; batch (\d+)")
_CHIPS = {"Trainium1": "trn1", "Inferentia2": "inf2"}
_CORES_PER_CHIP = 2


def inference_call(row: PublishedRow) -> dict:
    """The arguments of `estimate_inference` for one published inference row."""
    match = _SHAPE.search(row.notes)
    if match is None:
        raise ValueError(f"{row.id}: no 'input N / output M tokens; batch B' in the notes")
    n_in, n_out, batch = (int(g) for g in match.groups())
    chip = get_chip(next(c for key, c in _CHIPS.items() if key in row.hardware))
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


def main() -> None:
    import twofold

    print(
        f"twofold {twofold.__version__}, Python {sys.version.split()[0]}, NumPy {np.__version__}, "
        f"{platform.machine()}"
    )
    header = f"{'id':7} {'model':12} {'chip':5} {'tp':>3} {'B':>3} {'in':>5} {'out':>5} "
    header += (
        f"{'tok/s pub':>10} {'tok/s pred':>10} {'err':>7} {'ttft pub':>9} {'ttft pred':>9} {'tpot ms':>8}"
    )
    print(header)
    errors = []
    for row in load_rows():
        if row.task != "infer":
            continue
        call = inference_call(row)
        est = estimate_inference(**call)
        w = call["workload"]
        err = est.output_tokens_per_s / row.value - 1.0
        errors.append(abs(err))
        ttft_pub = row.note_values.get("ttft_p50_ms", "")
        print(
            f"{row.id:7} {row.model:12} {est.chip:5} {call['layout'].tp:>3} {w.batch:>3} {w.input_tokens:>5} "
            f"{w.output_tokens:>5} {row.value:>10.1f} {est.output_tokens_per_s:>10.1f} {err:>+7.1%} "
            f"{float(ttft_pub) if ttft_pub else float('nan'):>9.1f} {est.ttft_s * 1e3:>9.1f} "
            f"{est.tpot_s * 1e3:>8.2f}"
        )
    if errors:
        print(
            f"rows {len(errors)}, output tokens/s: median |error| {np.median(errors):.1%}, "
            f"mean {np.mean(errors):.1%}"
        )


if __name__ == "__main__":
    main()
