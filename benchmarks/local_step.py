"""Closed loop on the local device: measure, fit, then predict training steps the fit never saw.

Runs the same sweep as `twofold measure` (quick by default, `--full` for the full plan), fits the
calibration profile, and prints predicted vs measured step time for every timed training step
(the held-out ones use other model sizes, batch sizes and sequence lengths than the fit ones),
with the median and maximum absolute error over the held-out steps, the machine and the versions.

    python benchmarks/local_step.py            # quick plan, ~1 minute on a 2-core CPU
    python benchmarks/local_step.py --full     # full plan, a few minutes
    python benchmarks/local_step.py --save     # also record the run and save the profile

Without `--save` the database and profile go to a temporary folder, so the benchmark never
replaces the profile `--chip local` reads.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the full plan (default: quick)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="PyTorch threads (default: all usable)")
    parser.add_argument(
        "--rounds", type=int, default=None, help="interleaved passes (default 3 quick, 5 full)"
    )
    parser.add_argument("--save", action="store_true", help="record in the default database and profile")
    args = parser.parse_args(argv)

    from twofold.measure.bench import TorchDevice
    from twofold.measure.run import measure

    quick = not args.full
    device = TorchDevice(
        args.device, threads=args.threads, repeats=7 if quick else 11, min_sample_s=0.01 if quick else 0.02
    )
    with tempfile.TemporaryDirectory() as tmp:
        where = (
            {}
            if args.save
            else {"db_path": Path(tmp) / "results.db", "profile_path": Path(tmp) / "local.yaml"}
        )
        start = time.perf_counter()
        result = measure(device, quick=quick, rounds=args.rounds, **where)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - start

    info, prof, chip = result.info, result.fit.profile, result.fit.chip
    versions = ", ".join(f"{k} {v}" for k, v in info.versions.items())
    print(f"machine: {info.name} ({info.kind}, {info.threads} threads, {info.memory_gib:.0f} GiB)")
    print(f"versions: {versions}")
    print(f"plan: {'quick' if quick else 'full'}, run {result.run_id}, {elapsed:.0f} s")
    bf16 = f", bf16 {chip.bf16_dense_tflops:.3f}" if chip.bf16_dense_tflops else ""
    print(
        f"fitted: peak fp32 {chip.fp32_dense_tflops:.3f}{bf16} TFLOPS, bandwidth "
        f"{chip.hbm_bandwidth_tb_s * 1e3:.1f} GB/s, gemm_efficiency {dict(prof.gemm_efficiency)}, "
        f"gemm_half_flops {prof.gemm_half_flops:.3g}, memory_efficiency {prof.memory_efficiency:.3f}, "
        f"attention_efficiency {prof.attention_efficiency:.3f}, op_overhead_s {prof.op_overhead_s:.3g}"
    )
    print()
    print(
        f"{'model':14s} {'batch':>5s} {'seq':>5s} {'role':8s} "
        f"{'predicted_s':>12s} {'measured_s':>11s} {'error':>8s}"
    )
    for r in result.validation:
        print(
            f"{r.model:14s} {r.micro_batch:5d} {r.seq_len:5d} {r.role:8s} "
            f"{r.predicted_s:12.4f} {r.measured_s:11.4f} {r.error_pct:+7.1f}%"
        )
    summary = result.summary()
    if summary["heldout_steps"]:
        print()
        print(
            f"held-out steps: {summary['heldout_steps']}, median |error| "
            f"{summary['heldout_median_abs_error_pct']:.1f}%, "
            f"max |error| {summary['heldout_max_abs_error_pct']:.1f}%"
        )
    for warning in result.warnings:
        print(f"warning: {warning}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
