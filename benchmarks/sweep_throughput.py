"""Sweep throughput: scenarios planned per second in this process, on a local pool, and on Ray.

Runs one spec (default: 3 dense models x 6 chips x 4 chip counts x 2 sequence lengths = 144
training scenarios, each a full `twofold plan` layout search) into a fresh temporary store per
executor, and prints scenarios per second with the machine and the versions:

- `in-process`: `--workers 1` (no pool; the floor every executor is measured against);
- `local pool`: a spawned process pool of `--workers` processes (default: usable cores);
- `ray`: Ray tasks on a local cluster started here with the same number of CPUs (skipped when
  `ray` is not installed), or on `--ray-address`.

Each figure is wall clock including the executor's start-up (process spawn, Ray worker start), as
a user's sweep sees it; `ray.init` itself is timed on its own line, and a second Ray run shows the
rate once Ray's workers are warm.

    python benchmarks/sweep_throughput.py                 # the default spec
    python benchmarks/sweep_throughput.py --spec examples/sweep.yaml --workers 2
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import twofold
from twofold.sweep import SweepSpec, load_spec, parse_spec, run_sweep

DEFAULT_SPEC = {
    "name": "benchmark",
    "top_k": 3,
    "axes": {
        "models": ["llama-tiny", "llama3.1-8b", "qwen3-8b"],
        "chips": ["trn2", "h100", "h200", "b200", "tpu-v5p", "mi300x"],
        "chip_counts": [8, 64, 256, 1024],
        "seq_lens": [2048, 8192],
        "global_batches": [1024],
    },
}


def _usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {_usable_cores()} usable cores, {platform.system()} {platform.release()}"


def _time(spec: SweepSpec, label: str, **kwargs: object) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        t0 = time.perf_counter()
        summary = run_sweep(spec, db, **kwargs)  # type: ignore[arg-type]
        wall = time.perf_counter() - t0
    if not summary.complete:
        print(f"{label:<22} incomplete: {summary.to_dict()}", file=sys.stderr)
        return
    rate = summary.planned / wall
    print(f"{label:<22} {summary.planned:>6} scenarios in {wall:7.2f} s = {rate:7.1f} scenarios/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", help="a sweep spec YAML (default: the built-in 144-scenario spec)")
    parser.add_argument("--workers", type=int, default=_usable_cores(), help="local pool size and Ray CPUs")
    parser.add_argument("--ray-address", default=None, help="an existing Ray cluster (default: start one)")
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()

    spec = load_spec(args.spec) if args.spec else parse_spec(DEFAULT_SPEC)
    print(f"machine: {_machine()}")
    versions = f"python {platform.python_version()}, numpy {np.__version__}, twofold {twofold.__version__}"
    try:
        import ray
    except ImportError:
        ray = None
    print(versions + (f", ray {ray.__version__}" if ray else ", ray not installed"))
    print(f"spec: {spec.name}, {len(spec)} {spec.mode} scenarios")

    _time(spec, "in-process (1)", workers=1)
    _time(spec, f"local pool ({args.workers})", workers=args.workers)
    if ray is None or args.skip_ray:
        print("ray: skipped")
        return 0
    t0 = time.perf_counter()
    if args.ray_address:
        ray.init(address=args.ray_address, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    print(f"{'ray.init':<22} {time.perf_counter() - t0:7.2f} s (not counted below)")
    try:
        # The first tasks also start the Ray worker processes: timed as a user would see it.
        _time(spec, f"ray ({int(ray.cluster_resources().get('CPU', 0))} CPUs)", ray_address="auto")
        _time(spec, "ray, workers warm", ray_address="auto")
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
