"""Calibrate on one chip, predict another: `twofold calibrate` on the shipped rows of one stack.

The PyTorch FSDP rows of IBM fms-fsdp (stacks `fsdp` and `fsdp-compile`; Llama 2 7B/13B, a 34B and
Llama 2 70B at 4k tokens, on 128 A100 and 96 H100) are the shipped rows of one stack on two chips.
For each stack and each direction (A100 -> H100, H100 -> A100), the calibration chip's rows are the
team's runs: `validate.user_fit.fit_stack` fits the stack's software factors (its communication
factor, attention, memory-bound, per-op overhead, the FSDP overlap of its flavour) and the GEMM
factor of the runs' family from the base stack (default `auto`: Megatron on NVIDIA), and the other
chip's rows are predicted with the written stack.

The runs are the tokens/s/GPU rows (4 per chip and stack); the MFU rows the same source publishes
are the same runs in another unit, so they would count every run twice in the leave-one-run-out
error. Pass `--with-mfu` to fit both.

Two base calibrations, because the shipped one was fitted on every published row, these included:

- `shipped`: the transfer chip's rows were in the shipped fit (the Hopper GEMM factor saw them);
- `refit without fms-fsdp`: `validate.calibrate.fit` on every other shipped row (the same
  procedure as `benchmarks/validate_accuracy.py --fit`), so the transfer chip is out of sample.

    python benchmarks/calibrate_transfer.py [--base-stack auto|megatron|fsdp|...] [--with-mfu]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Sequence

import numpy

from twofold import __version__
from twofold.cost.calibration import UNCALIBRATED, TrainingCalibration, shipped_calibration
from twofold.errors import InputError
from twofold.validate import calibrate as cal
from twofold.validate.dataset import load_rows
from twofold.validate.mapping import Case, express, row_stack
from twofold.validate.metrics import THROUGHPUT_METRICS, predict_training_figure
from twofold.validate.predict import default_predictor
from twofold.validate.run import fit_row
from twofold.validate.user_fit import fit_stack

SOURCE = "IBM foundation-model-stack/fms-fsdp"
CHIPS = ("a100", "h100")


def _cases(stack: str, metrics: Sequence[str]) -> dict[str, list[Case]]:
    out: dict[str, list[Case]] = {chip: [] for chip in CHIPS}
    for row in load_rows():
        if row_stack(row) != stack or not row.source.startswith(SOURCE) or row.metric not in metrics:
            continue
        case = express(row)
        if isinstance(case, Case) and case.chip.id in out:
            out[case.chip.id].append(case)
    return out


def refit_without_source() -> tuple[TrainingCalibration, int]:
    """The shipped procedure's factors fitted on every expressible training-throughput row but fms-fsdp's."""
    rows = []
    for row in load_rows():
        if row.task != "train" or row.metric not in THROUGHPUT_METRICS or row.source.startswith(SOURCE):
            continue
        case = express(row)
        if not isinstance(case, Case) or case.kind != "train":
            continue
        try:
            rows.append(fit_row(case, default_predictor(case, UNCALIBRATED)))
        except (InputError, NotImplementedError):
            continue
    fitted = cal.fit(rows)
    return cal.to_training(fitted.theta, shipped_calibration()), len(rows)


def _mape(cases: Sequence[Case], calibration: TrainingCalibration) -> float:
    apes = []
    for case in cases:
        value = predict_training_figure(case, default_predictor(case, calibration).step_time_s)
        apes.append(abs(value - case.row.value) / case.row.value * 100.0)
    return statistics.fmean(apes)


def experiment(
    stack: str, base_name: str, base: TrainingCalibration, base_stack: str, metrics: Sequence[str]
) -> None:
    cases = _cases(stack, metrics)
    print(f"\n### stack `{stack}` ({sum(map(len, cases.values()))} rows), base calibration: {base_name}\n")
    header = (
        "calibrated on",
        "predicted",
        "rows",
        "own shipped stack",
        "base stack",
        "calibrated",
        "left out",
    )
    print("| " + " | ".join(header) + " |")
    print("|---|---|---:|---:|---:|---:|---:|")
    fits = {}
    for fit_chip in CHIPS:
        other = next(c for c in CHIPS if c != fit_chip)
        fit = fit_stack(cases[fit_chip], name=f"{stack}-{fit_chip}", base_stack=base_stack, base=base)
        fits[fit_chip] = fit
        calibrated = base.with_stack(fit.stack)
        loo = [r.loo_ape_pct for r in fit.runs if r.loo_ape_pct is not None]
        for chip in (fit_chip, other):
            rows = cases[chip]
            own = _mape(rows, base)  # each row with its own shipped stack (what validate reports)
            with_base = _mape(rows, base.with_stack(fit.base_stack))
            after = _mape(rows, calibrated)
            loo_cell = f"{statistics.fmean(loo):.1f}" if chip == fit_chip and loo else "-"
            label = "in-sample" if chip == fit_chip else "transfer"
            cells = (
                fit_chip,
                f"{chip} ({label})",
                len(rows),
                f"{own:.1f}",
                f"{with_base:.1f}",
                f"{after:.1f}",
            )
            print("| " + " | ".join(map(str, (*cells, loo_cell))) + " |")
    for fit_chip, fit in fits.items():
        print(
            f"\nfitted on {fit_chip} (base stack {fit.base_stack}; converged: {fit.converged}; moved: "
            f"{', '.join(fit.moved) or 'nothing'}):\n"
        )
        print("| parameter | prior theta | fitted theta | leave-one-run-out range |")
        print("|---|---:|---:|---|")
        for p, theta in fit.theta.items():
            lo_hi = fit.loo_theta_range.get(p)
            rng = f"{lo_hi[0]:.3f}-{lo_hi[1]:.3f}" if lo_hi else "-"
            print(f"| {p} | {fit.prior[p]:.3f} | {theta:.3f} | {rng} |")
        factors = {k: dict(v) if hasattr(v, "items") else v for k, v in fit.stack.factors.items()}
        print(f"\nstack file factors: {factors}")
        intervals = {k: dict(v) for k, v in fit.stack.intervals.items()} or "none (fewer than 4 runs)"
        print(f"leave-one-run-out interval (log measured / predicted, q10 q90): {intervals}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-stack", default="auto")
    parser.add_argument("--with-mfu", action="store_true", help="also fit the MFU rows (the same runs)")
    args = parser.parse_args(argv)
    metrics = ("tokens_per_s_per_chip", "mfu") if args.with_mfu else ("tokens_per_s_per_chip",)
    start = time.perf_counter()
    print(
        f"twofold {__version__}, Python {sys.version.split()[0]}, NumPy {numpy.__version__}, "
        f"{platform.platform()}, {platform.processor() or platform.machine()}"
    )
    print(f"rows: {SOURCE}, metrics {', '.join(metrics)}; base stack {args.base_stack}; mean APE %")
    refit, used = refit_without_source()
    bases = {
        "shipped (fms-fsdp rows in its fit)": shipped_calibration(),
        f"refit without fms-fsdp ({used} rows)": refit,
    }
    for stack in ("fsdp-compile", "fsdp"):
        for name, base in bases.items():
            experiment(stack, name, base, args.base_stack, metrics)
    print(f"\n{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
