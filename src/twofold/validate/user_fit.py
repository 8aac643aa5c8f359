"""`twofold calibrate` as a function: refit a stack's software factors from a team's own runs.

The runs (`validate.user_runs`, or any training `Case`s) are predicted with the base stack (`auto`:
the chip vendor's reference stack) and the base calibration (the shipped one), and the fit
(`validate.calibrate.fit`) moves only what is the stack's, from the base values as its prior. The
linearisation of `validate.mechanisms` is anchored at the estimator: each run's error at the prior
is the estimator's with the base factors (the linearisation alone is several percent off there,
mostly in the hidden FSDP time), so that the fit moves the factors from where the estimator stands.
The parameters it moves:

- the stack's own communication factor (`comm_stack[<name>]`, on top of the shared collective
  efficiency; prior: the base stack's factor);
- attention, the memory-bound factor and the per-op overhead (these two only where the stack runs
  eager kernels: their groups are empty otherwise), the FSDP overlap of the stack's flavour;
- the GEMM factor of the families (and precision classes) the runs measured, because GEMM
  efficiency is per chip family (`cost.calibration`): other families keep theirs.

Everything else (the shared collective efficiency, ZeRO-3 efficiency, TP/EP overlap per family,
expert GEMMs) stays at the base value. The ridge term is centred on the base values
(`fit(prior=...)`).

Of those, the GEMM factors (the chip's) are always free, and a software factor is freed only when
forward selection by leave-one-run-out error frees it (`validate.user_select`): runs of one chip
that do not vary what a software factor scales cannot tell it from the chip's GEMM factor, and a
software factor fitted to such runs carries that chip's error to every other chip. So a handful of
runs frees few parameters and runs that vary models, sequence lengths and layouts free more;
`StackFit.freed` and `StackFit.selection` say which and why. `select=False` frees them all.

What comes back (`StackFit`) is a stack (`cost.stack.Stack`) carrying the fitted factors (those
not freed at their base values), with the in-sample and leave-one-run-out error of every run (each
run predicted by the estimator with the factors fitted without it), the range of each factor over
those fits, and per measured family the 10% and 90% quantiles of the leave-one-run-out
log(measured / predicted) throughput, the interval `estimate.uncertainty` then gives on that
family (`MIN_INTERVAL_RUNS` runs at least). A fit that does not converge is returned with
`converged=False` and is never written (`write_stack`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import yaml

from twofold.cost.calibration import UNCALIBRATED, TrainingCalibration, gemm_key, shipped_calibration
from twofold.cost.stack import AUTO, Stack, get_stack, list_stacks, stack_for_chip
from twofold.errors import InputError
from twofold.validate import calibrate as cal
from twofold.validate.mapping import Case
from twofold.validate.mechanisms import fsdp_overlap_parameter
from twofold.validate.metrics import THROUGHPUT_METRICS, predict_training_figure
from twofold.validate.predict import StepPrediction, default_predictor
from twofold.validate.run import fit_row
from twofold.validate.user_select import Score, SelectionStep, forward_select, loo_score

__all__ = [
    "ANCHOR_TOLERANCE",
    "MIN_INTERVAL_RUNS",
    "RunError",
    "StackFit",
    "fit_stack",
    "stack_document",
    "write_stack",
]

Predictor = Callable[[Case, TrainingCalibration], StepPrediction]
# A family's interval from fewer leave-one-run-out residuals than this is not stored: its 10% and
# 90% quantiles would be the extremes of two or three runs.
MIN_INTERVAL_RUNS = 4
# Ridge weight per parameter kind relative to `calibrate.RIDGE_LAMBDA` (1 when absent). The shipped
# fit holds the per-op overhead and the FSDP overlap with a 100x weaker prior because their
# defaults are assumptions; here the prior is the shipped fit itself (hundreds of rows), so every
# factor, the chip's GEMM factor included, is worth one pseudo-run. A uniform error the runs show
# is then shared between the GEMM factor and the software factors (two parameters pay less ridge
# than one for the same move), and leave-one-run-out selection keeps a software factor's share
# only where it predicts unseen runs better. The alternative, a 100x weaker prior on the chip's
# factor so that a chip's error goes to the chip alone, was evaluated and is worse out of sample
# on the published rows (`benchmarks/calibrate_transfer.py`, docs/calibrate.md).
RIDGE_SCALE: Mapping[str, float] = MappingProxyType({})
# Gauss-Newton fits of the linearisation, each anchored at the estimator's prediction with the last.
ANCHOR_PASSES = 4
# Re-anchoring stops once no factor's multiplier moves by more than this (log): 0.1%.
ANCHOR_TOLERANCE = 1e-3


@dataclass(frozen=True, kw_only=True, slots=True)
class RunError:
    """One run: measured figure, and predicted with the base stack, in-sample, and left out."""

    id: str
    chip: str
    family: str
    metric: str
    measured: float
    base_predicted: float
    calibrated_predicted: float
    loo_predicted: float | None

    @staticmethod
    def _ape(predicted: float | None, measured: float) -> float | None:
        return None if predicted is None else abs(predicted - measured) / measured * 100.0

    @property
    def base_ape_pct(self) -> float:
        return abs(self.base_predicted - self.measured) / self.measured * 100.0

    @property
    def ape_pct(self) -> float:
        return abs(self.calibrated_predicted - self.measured) / self.measured * 100.0

    @property
    def loo_ape_pct(self) -> float | None:
        return self._ape(self.loo_predicted, self.measured)

    def to_dict(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "base_ape_pct": self.base_ape_pct,
            "ape_pct": self.ape_pct,
            "loo_ape_pct": self.loo_ape_pct,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class StackFit:
    """A fitted stack and the evidence behind it (module docstring)."""

    stack: Stack
    base_stack: str
    converged: bool
    theta: Mapping[str, float]  # fitted time multipliers of the free parameters (validate.calibrate)
    prior: Mapping[str, float]  # their base values
    freed: tuple[str, ...]  # parameters the fit could move (`validate.user_select`)
    moved: tuple[str, ...]  # freed parameters whose multiplier moved by more than 1% from the prior
    selection: tuple[SelectionStep, ...] = ()  # the forward-selection rounds that chose `freed`
    runs: tuple[RunError, ...]
    loo_theta_range: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def summary(self) -> dict[str, Any]:
        def mean(values: list[float]) -> float | None:
            return float(np.mean(values)) if values else None

        loo = [r.loo_ape_pct for r in self.runs if r.loo_ape_pct is not None]
        return {
            "runs": len(self.runs),
            "base_mean_ape_pct": mean([r.base_ape_pct for r in self.runs]),
            "in_sample_mean_ape_pct": mean([r.ape_pct for r in self.runs]),
            "loo_mean_ape_pct": mean(loo),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack.to_dict(),
            "base_stack": self.base_stack,
            "converged": self.converged,
            "theta": dict(self.theta),
            "prior": dict(self.prior),
            "freed": list(self.freed),
            "moved": list(self.moved),
            "selection": [step.to_dict() for step in self.selection],
            "loo_theta_range": {k: list(v) for k, v in self.loo_theta_range.items()},
            "summary": self.summary(),
            "runs": [r.to_dict() for r in self.runs],
            "notes": list(self.notes),
        }


def _predicted(predictor: Predictor, case: Case, factors: TrainingCalibration) -> StepPrediction:
    """The prediction of a run, an estimator refusal naming the run (before anything is fitted)."""
    try:
        return predictor(case, factors)
    except InputError as exc:
        raise InputError(f"run {case.row.id}: {exc.field}", exc.value, exc.rule) from None


def _base_stack(cases: Sequence[Case], base_stack: str) -> Stack:
    if base_stack != AUTO:
        if base_stack not in list_stacks():
            raise InputError("base-stack", base_stack, f"must be a shipped stack: {', '.join(list_stacks())}")
        return get_stack(base_stack)
    picked = {stack_for_chip(c.chip).id for c in cases}
    if len(picked) > 1:
        rule = f"the runs' chips have different reference stacks ({', '.join(sorted(picked))}); name one"
        raise InputError("base-stack", base_stack, rule)
    return stack_for_chip(cases[0].chip)


def _renamed(groups: Mapping[str, float], base: str, name: str) -> dict[str, float]:
    """The base stack's communication groups as the new stack's own (`comm_stack[<name>]`)."""
    own = {
        "comm": f"comm*comm_stack[{name}]",
        "fsdp": f"fsdp*comm_stack[{name}]",
        f"comm*comm_stack[{base}]": f"comm*comm_stack[{name}]",
        f"fsdp*comm_stack[{base}]": f"fsdp*comm_stack[{name}]",
    }
    out: dict[str, float] = {}
    for group, seconds in groups.items():
        key = own.get(group, group)
        out[key] = out.get(key, 0.0) + seconds
    return out


def _prior_and_free(
    cases: Sequence[Case], base: TrainingCalibration, stack: Stack, name: str
) -> tuple[dict[str, float], set[str]]:
    prior = cal.theta_of(base)
    comm = f"comm_stack[{name}]"
    prior[comm] = 1.0 / float(base.collective_efficiency_by_stack.get(stack.calibration_id, 1.0))
    free = {comm, "attention", "memory_bound", "op_overhead"}
    for case in cases:
        family = base.stack_family(case.chip.id) or case.family
        flavour_param = fsdp_overlap_parameter(stack.fsdp_flavour(family))
        prior[flavour_param] = 2.0 - float(
            base.fsdp_comm_overlap_by_flavour.get(stack.fsdp_flavour(family), base.fsdp_comm_overlap)
        )
        free.add(flavour_param)
        gemm = f"gemm[{gemm_key(case.family, case.workload.precision)}]"
        prior[gemm] = 1.0 / base.gemm_factor(case.chip.id, case.workload.precision)
        free.add(gemm)
    return prior, free


def _factors(theta: Mapping[str, float], used: set[str], stack: Stack, name: str) -> dict[str, Any]:
    """The stack file's factors (`cost.stack.CALIBRATION_FACTORS`) of the fitted parameters."""
    out: dict[str, Any] = {"collective_efficiency_by_stack": {name: 1.0 / theta[f"comm_stack[{name}]"]}}
    gemm = {p[len("gemm[") : -1]: 1.0 / theta[p] for p in used if p.startswith("gemm[")}
    if gemm:
        out["gemm_efficiency_factor"] = gemm
    scalars = (
        ("attention", "attention_efficiency_factor", lambda t: 1.0 / t),
        ("memory_bound", "memory_bound_efficiency_factor", lambda t: 1.0 / t),
        ("op_overhead", "op_overhead_factor", lambda t: t),
    )
    for param, key, convert in scalars:
        if param in used:
            out[key] = convert(theta[param])
    flavours = {}
    for param in used:
        if param == "fsdp_overlap" or param.startswith("fsdp_overlap["):
            flavour = param[len("fsdp_overlap[") : -1] if "[" in param else stack.fsdp_flavour(None)
            flavours[flavour] = min(max(2.0 - theta[param], 0.0), 1.0)
    if flavours:
        out["fsdp_comm_overlap_by_flavour"] = flavours
    return {
        k: {a: round(b, 4) for a, b in v.items()} if isinstance(v, dict) else round(v, 4)
        for k, v in out.items()
    }


def _with_factors(stack: Stack, factors: Mapping[str, Any]) -> Stack:
    frozen = {k: MappingProxyType(dict(v)) if isinstance(v, Mapping) else v for k, v in factors.items()}
    return replace(stack, factors=MappingProxyType(frozen))


def _residual(row: cal.FitRow, case: Case, predicted: float) -> float:
    """log(measured / predicted) throughput (a time figure: predicted / measured)."""
    e = math.log(predicted / case.row.value)
    return row.time_sign * e


def fit_stack(
    cases: Sequence[Case],
    *,
    name: str,
    base_stack: str = AUTO,
    base: TrainingCalibration | None = None,
    predictor: Predictor | None = None,
    select: bool = True,
    leave_one_out: bool = True,
    provenance: Mapping[str, Any] | None = None,
    ridge_lambda: float = cal.RIDGE_LAMBDA,
    ridge_scale: Mapping[str, float] = RIDGE_SCALE,
    anchor_passes: int = ANCHOR_PASSES,
) -> StackFit:
    """Fit the stack `name` from training `cases` (module docstring). `base`: the calibration the
    prior comes from and the other factors stay at (None: the shipped one). `select`: free the
    chip factors and only the software factors forward selection by leave-one-run-out error frees
    (`validate.user_select`); False frees every factor of the stack the runs touch.
    `leave_one_out`: report each run's leave-one-run-out prediction (the estimator's).
    `ridge_scale`: the prior's weight per parameter kind (`RIDGE_SCALE`). The linearisation is
    re-anchored at the estimator's prediction with the last fit up to `anchor_passes` times (until
    no factor moves by 0.1%); leave-one-run-out fits reuse the last anchor."""
    if not cases:
        raise InputError("runs", 0, "no run to fit")
    predictor = predictor or default_predictor
    base = shipped_calibration() if base is None else base
    stack0 = _base_stack(cases, base_stack)
    summary = f"{stack0.summary} Calibrated by `twofold calibrate` on {len(cases)} runs."
    own = replace(stack0, id=name, name=f"{name} (calibrated from {stack0.id})", summary=summary, path="")
    cases = [replace(c, stack=stack0.id) for c in cases]
    fit_cases = [c for c in cases if c.row.metric in THROUGHPUT_METRICS]
    raw = [_predicted(predictor, c, UNCALIBRATED.with_stack(stack0)) for c in fit_cases]
    rows = []
    for case, pred in zip(fit_cases, raw, strict=True):
        row = fit_row(case, pred)
        rows.append(replace(row, groups=_renamed(row.groups, stack0.id, name), stack=name))
    prior, stack_free = _prior_and_free(fit_cases, base, stack0, name)

    def figure(case: Case, factors: TrainingCalibration) -> float:
        return predict_training_figure(case, predictor(case, factors).step_time_s)

    def stack_of(theta: Mapping[str, float]) -> Stack:
        return _with_factors(own, _factors(theta, used, stack0, name))

    def anchored(at: Mapping[str, float], figures: Sequence[float]) -> list[cal.FitRow]:
        """The rows with the linearisation anchored at `at`: each row's error there is the
        estimator's (`figures`), so the fit moves the factors from where the estimator stands."""
        return [
            replace(r, log_error=r.log_error + math.log(value / case.row.value) - cal.apply(r, at))
            for r, case, value in zip(rows, fit_cases, figures, strict=True)
        ]

    touched = {
        p for r in rows for g, s in r.groups.items() if s > 0 for p in cal.group_parameters(g)
    } & stack_free
    used = touched | {f"comm_stack[{name}]"}  # the stack file names its own collective factor
    base_figures = [figure(case, base.with_stack(stack0)) for case in fit_cases]
    fits: dict[frozenset[str], tuple[cal.Calibration, list[cal.FitRow]]] = {}

    def fit_free(free: frozenset[str]) -> tuple[cal.Calibration, list[cal.FitRow]]:
        """The fit with `free` freed, and the rows anchored where its last pass started."""
        if free not in fits:
            anchor, figures = dict(prior), base_figures
            for _ in range(anchor_passes):
                rows_at = anchored(anchor, figures)
                fitted = cal.fit(
                    rows_at, prior=prior, free=free, ridge_lambda=ridge_lambda, ridge_scale=ridge_scale
                )
                change = max(abs(math.log(fitted.theta[p] / anchor.get(p, 1.0))) for p in used)
                anchor = {**prior, **fitted.theta}
                if not fitted.converged or change < ANCHOR_TOLERANCE:
                    break
                figures = [figure(case, base.with_stack(stack_of(fitted.theta))) for case in fit_cases]
            fits[free] = (fitted, rows_at)
        return fits[free]

    def round_score(free: frozenset[str]) -> Score:
        fitted, rows_at = fit_free(free)
        if not fitted.converged:
            return lambda _: None
        return loo_score(rows_at, prior=prior, ridge_lambda=ridge_lambda, ridge_scale=ridge_scale)

    chip = {p for p in touched if p.startswith("gemm[")}
    steps: tuple[SelectionStep, ...] = ()
    if select:  # a software factor no run spends time in has nothing to gain: not a candidate
        free, steps = forward_select(chip, touched - chip, round_score)
    else:
        free = frozenset(used)
    fitted, rows_at = fit_free(free)
    rows = rows_at
    theta = {p: fitted.theta[p] for p in sorted(used)}
    freed = tuple(sorted(free & used))
    moved = tuple(p for p in freed if abs(math.log(theta[p] / prior[p])) > 0.01)
    stack = stack_of(fitted.theta)
    if not fitted.converged:
        note = f"the fit did not converge in {fitted.iterations} iterations; nothing is written"
        return StackFit(
            stack=stack,
            base_stack=stack0.id,
            converged=False,
            theta=theta,
            prior={p: prior[p] for p in used},
            freed=freed,
            moved=moved,
            selection=steps,
            runs=(),
            notes=(note,),
        )

    loo_pred: list[float | None] = [None] * len(fit_cases)
    ranges: dict[str, list[float]] = {}
    if leave_one_out and len(rows) > 1:
        for i, case in enumerate(fit_cases):
            held = cal.fit(
                rows[:i] + rows[i + 1 :],
                prior=prior,
                free=free,
                ridge_lambda=ridge_lambda,
                ridge_scale=ridge_scale,
            )
            for p in used:
                ranges.setdefault(p, []).append(held.theta.get(p, prior[p]))
            loo_pred[i] = figure(case, base.with_stack(stack_of(held.theta)))
    intervals = _intervals(rows, fit_cases, loo_pred)
    stack = replace(
        stack, intervals=MappingProxyType(intervals), provenance=MappingProxyType(dict(provenance or {}))
    )
    calibrated = base.with_stack(stack)
    errors = tuple(
        RunError(
            id=case.row.id,
            chip=case.chip.id,
            family=case.family,
            metric=case.row.metric,
            measured=case.row.value,
            base_predicted=base_figures[i],
            calibrated_predicted=figure(case, calibrated),
            loo_predicted=loo_pred[i],
        )
        for i, case in enumerate(fit_cases)
    )
    fitted_ids = {c.row.id for c in fit_cases}
    notes = tuple(
        f"run {c.row.id}: {c.row.metric} is not a time or throughput figure; not fitted"
        for c in cases
        if c.row.id not in fitted_ids
    )
    result = StackFit(
        stack=stack,
        base_stack=stack0.id,
        converged=True,
        theta=theta,
        prior={p: prior[p] for p in used},
        freed=freed,
        moved=moved,
        selection=steps,
        runs=errors,
        loo_theta_range={p: (min(v), max(v)) for p, v in ranges.items()},
        notes=notes,
    )
    fit_info = {
        "fit": {**result.summary(), "freed": list(freed), "moved": list(moved), "base_stack": stack0.id}
    }
    return replace(
        result, stack=replace(stack, provenance=MappingProxyType({**stack.provenance, **fit_info}))
    )


def _intervals(
    rows: Sequence[cal.FitRow], cases: Sequence[Case], loo: Sequence[float | None]
) -> dict[str, dict[str, float]]:
    by_family: dict[str, list[float]] = {}
    for row, case, predicted in zip(rows, cases, loo, strict=True):
        if predicted is not None:
            by_family.setdefault(case.family, []).append(_residual(row, case, predicted))
    out = {}
    for family, residuals in sorted(by_family.items()):
        if len(residuals) >= MIN_INTERVAL_RUNS:
            low, high = np.quantile(residuals, [0.1, 0.9])
            out[family] = {
                "log_low": round(float(low), 6),
                "log_high": round(float(high), 6),
                "runs": len(residuals),
            }
    return out


def stack_document(fit: StackFit) -> dict[str, Any]:
    """The YAML form of the fitted stack (`cost.stack.stack_from_dict` reads it back)."""
    s = fit.stack
    return {
        "id": s.id,
        "name": s.name,
        "summary": s.summary,
        "mechanisms": {k: m.to_dict() for k, m in s.mechanisms.items()},
        "calibration": s.calibration_dict(),
        "provenance": dict(s.provenance),
    }


def write_stack(fit: StackFit, path: Path | str) -> Path:
    """Write the fitted stack to `path` atomically; refuses a fit that did not converge."""
    if not fit.converged:
        raise InputError("fit", fit.stack.id, "did not converge; nothing written")
    out = Path(path).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    text = "# Written by `twofold calibrate`; read by `--stack` (cost.stack).\n" + yaml.safe_dump(
        _plain(stack_document(fit)), sort_keys=False, allow_unicode=True
    )
    handle, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj
