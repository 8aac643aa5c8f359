"""How fast the serving simulation runs: 10,000 requests through the step-level event loop.

Run: `python benchmarks/serving_speed.py`. Builds the step-cost tables of Llama-3.1-70B at tp 8 on
H100 once (`serving.step_costs`, the same prefill and decode figures as `estimate_inference`), then
simulates 10,000 requests in each scenario and prints the wall time of the loop alone and of the
whole `simulate_serving` call (tables included), with the machine and versions.
"""

from __future__ import annotations

import os
import platform
import sys
import time

import numpy as np

from twofold.estimate.inference_types import InferenceLayout, InferenceWorkload
from twofold.hardware.catalog import get_chip, system_for
from twofold.serving import ServingConfig, simulate, simulate_serving, step_costs
from twofold.workload.registry import get_model

SCENARIOS: dict[str, dict[str, object]] = {
    "closed loop, concurrency 64, fixed lengths": dict(concurrency=64),
    "closed loop, concurrency 64, lengths +-25%": dict(concurrency=64, input_std=256, output_std=64),
    "Poisson 5 req/s, prefill-first": dict(request_rate=5.0, input_std=256, output_std=64),
    "Poisson 5 req/s, chunked prefill 2048": dict(request_rate=5.0, input_std=256, output_std=64,
                                                 chunked_prefill=2048),
    "Poisson 5 req/s, neuron buckets": dict(request_rate=5.0, input_std=256, output_std=64, engine="neuron"),
}  # fmt: skip


def main() -> None:
    import twofold

    print(
        f"twofold {twofold.__version__}, Python {sys.version.split()[0]}, NumPy {np.__version__}, "
        f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs"
    )
    chip = get_chip("h100")
    model, system, layout = get_model("llama3.1-70b"), system_for(chip), InferenceLayout(tp=8)
    precisions = InferenceWorkload(batch=1, input_tokens=1, output_tokens=1)
    base = dict(max_batch=64, num_requests=10_000, input_tokens=1024, output_tokens=256)
    started = time.perf_counter()
    one = ServingConfig(**{**base, "num_requests": 1}, concurrency=1)
    static, _ = simulate_serving(model, system, layout, precisions, one, chip=chip)
    costs = step_costs(
        model, system, layout, precisions, max_batch=64, max_context=1024 + 256 + 1300, max_prompt=2600,
        kv_capacity_tokens=static.kv_capacity_tokens, chip=chip,
    )  # fmt: skip
    print(f"step-cost tables (Llama-3.1-70B tp 8 on H100): {time.perf_counter() - started:.2f} s")
    print(f"{'scenario':45} {'loop s':>7} {'steps':>8} {'tok/s':>8} {'TTFT p99 ms':>11} {'ITL p50 ms':>10}")
    for name, extra in SCENARIOS.items():
        cfg = ServingConfig(**{**base, **extra})
        best = min((simulate(costs, cfg) for _ in range(3)), key=lambda r: r.simulation_wall_s)
        print(
            f"{name:45} {best.simulation_wall_s:7.3f} {best.steps:8d} {best.output_tokens_per_s:8.0f} "
            f"{best.ttft_ms.p99:11.1f} {best.itl_ms.p50:10.2f}"
        )


if __name__ == "__main__":
    main()
