"""Predicted vs published serving figures for the inference rows of the shipped dataset.

Run: `python benchmarks/inference_rows.py`. For every row with task == "infer" (AWS Neuron
Trainium1 / Inferentia2 Llama decoding, Transformers NeuronX, Neuron 2.18) it prints the published
output tokens/s of the instance and TTFT p50 (from the row's notes) beside `estimate_inference`'s
prediction, and the error. Each row is turned into an estimate the way `twofold validate` does it
(`validate.inference.inference_call`; that module's docstring states the rows' conventions: NeuronCores
per chip, padded heads, weight precision, the request shape in the notes).
"""

from __future__ import annotations

import platform
import sys

import numpy as np

from twofold.estimate.inference import estimate_inference
from twofold.validate.dataset import load_rows
from twofold.validate.inference import inference_call


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
