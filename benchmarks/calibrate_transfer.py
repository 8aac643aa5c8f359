"""Calibrate on one chip, predict another: `twofold calibrate` on the shipped rows of one stack.

The PyTorch FSDP rows of IBM fms-fsdp (stacks `fsdp` and `fsdp-compile`; Llama 2 7B/13B, a 34B and
Llama 2 70B at 4k tokens, on 128 A100 and 96 H100) are the shipped rows of one stack on two chips.
For each stack and each direction (A100 -> H100, H100 -> A100), the calibration chip's rows are the
team's runs: `validate.user_fit.fit_stack` fits the GEMM factor of the runs' family and the
software factors its selection rule frees (`validate.user_select`: of the stack's communication
factor, attention, memory-bound, per-op overhead and the FSDP overlap of its flavour, those that
lower the leave-one-run-out error by more than its noise) from the base stack (default `auto`:
Megatron on NVIDIA), and the other chip's rows are predicted with the written stack. Three fits
are compared (`VARIANTS`): every factor free (before the rule), the rule, and the rule with a 100x
weaker prior on the chip's GEMM factor (the alternative evaluated). The "left out" row of a
selected fit is nested: each run is predicted by a fit, selection included, that never saw it.

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
from typing import Any

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


# The fits compared: every factor free (what `calibrate` did before the selection rule), the rule
# `calibrate` applies now (`validate.user_select`: forward selection by leave-one-run-out error,
# every factor worth one pseudo-run at its prior), and the alternative evaluated against it: the
# same selection with a 100x weaker prior on the chip's GEMM factor, so that a uniform error goes
# to the chip alone.
VARIANTS: dict[str, dict[str, Any]] = {
    "all free (before)": {"select": False},
    "selected (the rule)": {"select": True},
    "selected, weak chip prior": {"select": True, "ridge_scale": {"gemm": 0.01}},
}
RULE = "selected (the rule)"


def nested_loo(cases: Sequence[Case], base: TrainingCalibration, base_stack: str, **kw: Any) -> float:
    """Mean APE of each run predicted by a fit, selection included, that never saw it."""
    apes = []
    for i, case in enumerate(cases):
        fit = fit_stack([*cases[:i], *cases[i + 1 :]], name="held", base_stack=base_stack, base=base, **kw)
        apes.append(_mape([case], base.with_stack(fit.stack)))
    return statistics.fmean(apes)


def experiment(
    stack: str, base_name: str, base: TrainingCalibration, base_stack: str, metrics: Sequence[str]
) -> None:
    cases = _cases(stack, metrics)
    print(f"\n### stack `{stack}` ({sum(map(len, cases.values()))} rows), base calibration: {base_name}\n")
    header = ("calibrated on", "predicted", "rows", "own shipped stack", "base stack", *VARIANTS)
    print("| " + " | ".join(header) + " |")
    print("|---|---|" + "---:|" * (len(header) - 2))
    rule = {}
    for fit_chip in CHIPS:
        other = next(c for c in CHIPS if c != fit_chip)
        fits = {
            v: fit_stack(cases[fit_chip], name=f"{stack}-{fit_chip}", base_stack=base_stack, base=base, **kw)
            for v, kw in VARIANTS.items()
        }
        rule[fit_chip] = fits[RULE]
        base_stack_id = rule[fit_chip].base_stack
        for chip, label in ((fit_chip, "in-sample"), (fit_chip, "left out"), (other, "transfer")):
            rows = cases[chip]
            own = _mape(rows, base)  # each row with its own shipped stack (what validate reports)
            with_base = _mape(rows, base.with_stack(base_stack_id))
            cells = []
            for v, kw in VARIANTS.items():
                if label != "left out":
                    cells.append(_mape(rows, base.with_stack(fits[v].stack)))
                elif kw["select"]:  # the selection saw every run: leave each out of it too
                    cells.append(nested_loo(rows, base, base_stack, **kw))
                else:
                    cells.append(statistics.fmean(r.loo_ape_pct or 0.0 for r in fits[v].runs))
            first = (fit_chip, f"{chip} ({label})", len(rows))
            refs = ("-", "-") if label == "left out" else (f"{own:.1f}", f"{with_base:.1f}")
            print("| " + " | ".join(map(str, (*first, *refs, *(f"{c:.1f}" for c in cells)))) + " |")
    for fit_chip, fit in rule.items():
        where = f"{fit_chip} runs (base stack {fit.base_stack}; converged: {fit.converged})"
        print(f"\nthe rule on {where} freed: {', '.join(fit.freed)}")
        for step in fit.selection:
            verdict = ("freed" if step.freed else "kept at prior") if step.parameter else "always free"
            model = f"+ {step.parameter}" if step.parameter else "chip factors alone"
            print(
                f"- path: {model}: leave-one-run-out {step.loo_mean_ape_pct:.2f}%, "
                f"{step.excess_pct:.2f} (se {step.excess_se_pct:.2f}) points above the best: {verdict}"
            )
        print("\n| parameter | prior theta | fitted theta | leave-one-run-out range |")
        print("|---|---:|---:|---|")
        for p, theta in fit.theta.items():
            if p not in fit.freed:
                continue
            lo_hi = fit.loo_theta_range.get(p)
            rng = f"{lo_hi[0]:.3f}-{lo_hi[1]:.3f}" if lo_hi else "-"
            print(f"| {p} | {fit.prior[p]:.3f} | {theta:.3f} | {rng} |")
        intervals = {k: dict(v) for k, v in fit.stack.intervals.items()} or "none (fewer than 4 runs)"
        print(f"\nleave-one-run-out interval (log measured / predicted, q10 q90): {intervals}")


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
