"""Mechanism calibration: the fit of the training factors in `cost/calibration.yaml`.

Time multipliers theta per mechanism group of the step's breakdown, per chip family or mechanism
(never per row or source), fitted by ridge-regularised Huber regression on the log error of the
published figures, projected onto physical bounds (`BOUNDS`), and converted to the efficiency
factors the estimator applies (`to_training`); `fit(prior=..., free=...)` refits from a prior for
`twofold calibrate`. The objective, the bounds and their reasons, and the citations:
docs/accuracy.md, "The fit".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from twofold.cost.calibration import TrainingCalibration

__all__ = [
    "FitRow",
    "Calibration",
    "fit",
    "apply",
    "calibrated_step_time",
    "held_out",
    "loso",
    "stack_of",
    "RIDGE_LAMBDA",
    "HUBER_DELTA",
    "RIDGE_SCALE",
    "to_training",
    "theta_of",
    "bounded_phi",
    "group_parameters",
]

RIDGE_LAMBDA = 1.0
HUBER_DELTA = math.log(1.5)
# Ridge weight per parameter relative to `ridge_lambda` (1 when absent). The per-op overhead's
# default (`op_overhead_s`, a few microseconds) is an order-of-magnitude assumption, not a
# measurement, and the full FSDP overlap of the prefetch model is an assumption too, so the priors
# that hold them at 1 are 100x weaker than the one holding the efficiency factors at their
# microbenchmark values.
RIDGE_SCALE = {"op_overhead": 0.01, "fsdp_overlap": 0.01, "comm_stack": 0.1}


def bounded_phi(names: Sequence[str], phi: np.ndarray) -> np.ndarray:
    """Project phi = log theta onto the bounds of the module docstring."""
    out = phi.copy()
    index = {name: j for j, name in enumerate(names)}
    for name in ("comm", "fsdp"):
        if name in index:
            out[index[name]] = max(out[index[name]], 0.0)
    for name, j in index.items():  # theta in [1, 2]: an overlap fraction 2 - theta in [0, 1]
        if name == "fsdp_overlap" or name.startswith("fsdp_overlap["):
            out[j] = min(max(out[j], 0.0), math.log(2.0))
    comm = out[index["comm"]] if "comm" in index else 0.0
    for name, j in index.items():
        if name.startswith(("tp[", "ep[")):
            out[j] = min(out[j], comm)
        if name.startswith("comm_stack["):  # theta_comm * theta_stack >= 1: links still bound it
            out[j] = max(out[j], -comm)
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class FitRow:
    """What the fit needs from one row: the uncalibrated log error, how the figure scales with the
    step time (-1: figure ~ 1/t, +1: figure ~ t), the raw step time and its mechanism groups."""

    id: str
    source: str
    log_error: float  # log(predicted_raw / published)
    time_sign: int
    step_time_s: float
    groups: Mapping[str, float]  # parameter name -> seconds of the step it scales
    # What held-out validation groups by (`held_out`): the software stack (the source where the row
    # has no stack id), the hardware family and the chip id.
    stack: str = ""
    family: str = ""
    chip: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Calibration:
    """Fitted multipliers (parameter name -> theta) and how they were obtained."""

    theta: Mapping[str, float] = field(default_factory=dict)
    rows_used: int = 0
    excluded_source: str | None = None
    excluded_group: str | None = None  # the group `held_out` left out of this fit
    ridge_lambda: float = RIDGE_LAMBDA
    # Whether the last Gauss-Newton step moved every phi by less than the tolerance (and all
    # multipliers are finite); a fit that did not converge is not to be written anywhere.
    converged: bool = True
    iterations: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "theta": {k: round(v, 4) for k, v in sorted(self.theta.items())},
            "rows_used": self.rows_used,
            "excluded_source": self.excluded_source,
            "excluded_group": self.excluded_group,
            "ridge_lambda": self.ridge_lambda,
            "converged": self.converged,
            "procedure": "ridge-regularised Huber regression on log error (validate.calibrate)",
            "huber_delta": HUBER_DELTA,
        }


def group_parameters(group: str) -> tuple[str, ...]:
    """The parameters whose product scales a group: "a*b" is scaled by theta_a * theta_b (the
    routed-expert GEMMs run at the family's GEMM factor times the expert-GEMM factor)."""
    return tuple(group.split("*"))


def _group_theta(group: str, theta: Mapping[str, float]) -> float:
    return math.prod(theta.get(name, 1.0) for name in group_parameters(group))


def calibrated_step_time(row: FitRow, theta: Mapping[str, float]) -> float:
    """t_cal = t_raw + sum_g (prod_{p in g} theta_p - 1) * T_g."""
    delta = sum((_group_theta(group, theta) - 1.0) * seconds for group, seconds in row.groups.items())
    return max(row.step_time_s + delta, 1e-12)


def apply(row: FitRow, theta: Mapping[str, float]) -> float:
    """The calibrated log error of one row."""
    ratio = calibrated_step_time(row, theta) / row.step_time_s
    return row.log_error + row.time_sign * math.log(ratio)


def fit(
    rows: Iterable[FitRow],
    *,
    exclude_source: str | None = None,
    ridge_lambda: float = RIDGE_LAMBDA,
    huber_delta: float = HUBER_DELTA,
    iterations: int = 100,
    prior: Mapping[str, float] | None = None,
    free: Collection[str] | None = None,
    ridge_scale: Mapping[str, float] | None = None,
) -> Calibration:
    """Fit theta on `rows` (minus `exclude_source`) by ridge Gauss-Newton in phi = log theta.

    `prior`: parameter -> theta the ridge pulls towards and the fit starts from (absent: 1);
    `free`: the parameters the fit may move (None: all); the others stay at their prior;
    `ridge_scale`: ridge weight per parameter kind relative to `ridge_lambda` (None:
    `RIDGE_SCALE`; a prior that is itself a fit may deserve the same weight for every kind). The
    result's theta holds every parameter of the rows' groups and every parameter of `prior`."""
    used = [r for r in rows if r.source != exclude_source]
    prior = dict(prior or {})
    groups = sorted({g for r in used for g, seconds in r.groups.items() if seconds > 0})
    names = sorted({p for g in groups for p in group_parameters(g)} | set(prior))
    if not used or not names:
        return Calibration(
            theta=prior, rows_used=len(used), excluded_source=exclude_source, ridge_lambda=ridge_lambda
        )
    index = {name: j for j, name in enumerate(names)}
    column = {g: j for j, g in enumerate(groups)}
    # incidence[g, p] = 1 when parameter p scales group g (phi of a group = sum of its phis).
    incidence = np.zeros((len(groups), len(names)))
    for g, j in column.items():
        for p in group_parameters(g):
            incidence[j, index[p]] = 1.0
    centre = np.array([math.log(prior.get(name, 1.0)) for name in names])
    phi = centre.copy()
    movable = np.array([free is None or name in free for name in names])
    scale = RIDGE_SCALE if ridge_scale is None else ridge_scale
    ridge = ridge_lambda * np.array([scale.get(name.split("[")[0], 1.0) for name in names])
    t_raw = np.array([r.step_time_s for r in used])
    sign = np.array([r.time_sign for r in used], dtype=float)
    e0 = np.array([r.log_error for r in used])
    terms = np.zeros((len(used), len(groups)))
    for i, r in enumerate(used):
        for g, seconds in r.groups.items():
            if g in column:
                terms[i, column[g]] += seconds
    rest = t_raw - terms.sum(axis=1)  # seconds no parameter scales
    converged = False
    done = 0
    for _ in range(iterations):
        done += 1
        scaled = terms * np.exp(incidence @ phi)[None, :]  # theta_g * T_ig
        t_cal = np.maximum(rest + scaled.sum(axis=1), 1e-12)
        resid = e0 + sign * np.log(t_cal / t_raw)
        # d resid_i / d phi_p = sign_i * sum_{g containing p} theta_g * T_ig / t_cal_i
        jac = sign[:, None] * (scaled @ incidence) / t_cal[:, None]
        # Huber as iteratively reweighted least squares: weight delta/|e| beyond delta.
        weight = np.minimum(1.0, huber_delta / np.maximum(np.abs(resid), 1e-300))
        lhs = jac.T @ (weight[:, None] * jac) + np.diag(ridge)
        rhs = jac.T @ (weight * resid) + ridge * (phi - centre)
        step = np.zeros(len(names))
        if movable.any():  # held parameters keep their prior: solve for the free ones only
            sub = np.ix_(movable, movable)
            step[movable] = np.linalg.solve(lhs[sub], rhs[movable])
        new = bounded_phi(names, phi - step)
        new[~movable] = phi[~movable]
        moved = np.max(np.abs(new - phi))
        phi = new
        if not np.all(np.isfinite(phi)):
            break
        if moved < 1e-10:
            converged = True
            break
    return Calibration(
        theta={name: float(np.exp(phi[j])) for name, j in index.items()},
        rows_used=len(used),
        excluded_source=exclude_source,
        ridge_lambda=ridge_lambda,
        converged=converged and bool(np.all(np.isfinite(phi))),
        iterations=done,
    )


def to_training(theta: Mapping[str, float], base: TrainingCalibration) -> TrainingCalibration:
    """The efficiency factors (1 / theta) of fitted multipliers, on `base`'s chip families.

    gemm[<family> <bits>] -> gemm_efficiency_factor["<family> <bits>"], expert_gemm ->
    expert_gemm_efficiency_factor, attention ->
    attention_efficiency_factor, memory_bound -> memory_bound_efficiency_factor, comm ->
    collective_efficiency, fsdp -> fsdp_collective_efficiency, tp[<family>] ->
    tp_comm_overlap[<family>] = 1 - theta_tp / theta_comm, op_overhead -> op_overhead_factor =
    theta (a time multiplier on the per-op overhead itself), fsdp_overlap -> fsdp_comm_overlap =
    2 - theta. A parameter
    without a fitted value stays 1 (overlap 0)."""
    gemm = {name[len("gemm[") : -1]: 1.0 / value for name, value in theta.items() if name.startswith("gemm[")}
    comm = theta.get("comm", 1.0)

    def overlap(prefix: str) -> dict[str, float]:
        return {
            name[len(prefix) : -1]: min(max(1.0 - value / comm, 0.0), 1.0)
            for name, value in theta.items()
            if name.startswith(prefix)
        }

    return base.with_factors(
        gemm_efficiency_factor=gemm,
        expert_gemm_efficiency_factor=1.0 / theta.get("expert_gemm", 1.0),
        attention_efficiency_factor=1.0 / theta.get("attention", 1.0),
        memory_bound_efficiency_factor=1.0 / theta.get("memory_bound", 1.0),
        collective_efficiency=1.0 / comm,
        fsdp_collective_efficiency=1.0 / theta.get("fsdp", 1.0),
        tp_comm_overlap=overlap("tp["),
        ep_comm_overlap=overlap("ep["),
        op_overhead_factor=theta.get("op_overhead", 1.0),
        fsdp_comm_overlap=min(max(2.0 - theta.get("fsdp_overlap", 1.0), 0.0), 1.0),
        collective_efficiency_by_stack={
            name[len("comm_stack[") : -1]: 1.0 / value
            for name, value in theta.items()
            if name.startswith("comm_stack[")
        },
        fsdp_comm_overlap_by_flavour={
            name[len("fsdp_overlap[") : -1]: min(max(2.0 - value, 0.0), 1.0)
            for name, value in theta.items()
            if name.startswith("fsdp_overlap[")
        },
    )


def theta_of(c: TrainingCalibration) -> dict[str, float]:
    """The inverse of `to_training`: time multipliers of the factors that differ from 1."""
    out = {f"gemm[{k}]": 1.0 / v for k, v in c.gemm_efficiency_factor.items()}
    for name, value in (
        ("expert_gemm", c.expert_gemm_efficiency_factor),
        ("attention", c.attention_efficiency_factor),
        ("memory_bound", c.memory_bound_efficiency_factor),
        ("comm", c.collective_efficiency),
        ("fsdp", c.fsdp_collective_efficiency),
    ):
        if value != 1.0:
            out[name] = 1.0 / value
    comm = 1.0 / c.collective_efficiency
    for prefix, fractions in (("tp", c.tp_comm_overlap), ("ep", c.ep_comm_overlap)):
        for family, overlap in fractions.items():
            out[f"{prefix}[{family}]"] = comm * (1.0 - overlap)
    if c.op_overhead_factor != 1.0:
        out["op_overhead"] = c.op_overhead_factor
    if c.fsdp_comm_overlap != 1.0:
        out["fsdp_overlap"] = 2.0 - c.fsdp_comm_overlap
    for stack, factor in c.collective_efficiency_by_stack.items():
        out[f"comm_stack[{stack}]"] = 1.0 / factor
    for flavour, overlap in c.fsdp_comm_overlap_by_flavour.items():
        out[f"fsdp_overlap[{flavour}]"] = 2.0 - overlap
    return out


def held_out(
    rows: Sequence[FitRow], key: Callable[[FitRow], str], ridge_lambda: float = RIDGE_LAMBDA
) -> dict[str, Calibration]:
    """One calibration per group of `key` (a stack, a hardware family, a chip), each fitted without
    that group's rows: grouped cross-validation, the fit never sees the group it is scored on
    (Hastie, Tibshirani, Friedman, "The Elements of Statistical Learning", 2nd ed., section 7.10).
    A family left out loses its own GEMM and overlap parameters, so its chips fall back to the
    priors of `TrainingCalibration.gemm_factor`: the situation of a chip known only from its
    specifications."""
    groups = sorted({key(r) for r in rows})
    return {
        g: replace(fit([r for r in rows if key(r) != g], ridge_lambda=ridge_lambda), excluded_group=g)
        for g in groups
    }


def stack_of(row: FitRow) -> str:
    """The leave-one-stack-out group of a row: its stack id, its source where it has none."""
    return row.stack or row.source


def loso(rows: Sequence[FitRow], ridge_lambda: float = RIDGE_LAMBDA) -> dict[str, Calibration]:
    """One calibration per software stack (`stack_of`), each fitted without that stack's rows."""
    return held_out(rows, stack_of, ridge_lambda)
