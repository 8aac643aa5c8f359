"""Which of a stack's factors a team's runs identify: forward selection by leave-one-run-out error.

Runs of one chip cannot tell the chip's GEMM factor from the software factors (attention, the
memory-bound factor, per-op overhead, the FSDP overlap, the stack's collectives) unless they vary
what each one scales: four FSDP runs of one chip at one sequence length all spend about the same
share of their step in attention, so a slower attention kernel and a slower GEMM fit them equally
well. A fit that frees both then splits the chip's error between them, and the software share of
that split travels to every other chip, where it does not belong. (On IBM fms-fsdp's eager rows,
freeing the FSDP overlap on A100 runs sets it to 0.56 and on H100 runs to 0.29:
`benchmarks/calibrate_transfer.py`.)

So the chip factors (the GEMM factor of each family the runs measured) are always free, and a
software factor is freed only when the runs show it predicts runs they did not see: forward
stepwise selection (Hastie, Tibshirani, Friedman, "The Elements of Statistical Learning", 2nd ed.,
3.3.2) scored by leave-one-run-out cross-validation (7.10). The path starts with the chip factors
alone and adds, one at a time, the candidate that gives the lowest mean leave-one-run-out APE,
until every candidate is in; the rule then takes the smallest model on the path within one
standard error of the path's best (the one-standard-error rule, ESL 7.10; Breiman et al. 1984,
"Classification and Regression Trees", 3.4.3), the error measured on the paired per-run
differences since every model is scored on the same runs:

    excess_i = ape_i(model) - ape_i(best model on the path)
    choose the first model with  mean(excess) <= max(se(excess), MIN_GAIN_PCT),
    se(excess) = std(excess, ddof=1) / sqrt(n)

i.e. a factor is freed only when it buys a gain larger than its own run-to-run noise; otherwise it
stays at the base stack's value (its prior). The path runs to the end, rather than stopping at the
first step that gains nothing, because two factors can be needed together (attention and the
stack's collectives on runs generated with both changed: either alone gains nothing). The floor
`MIN_GAIN_PCT` (0.1 point of APE) is the fit's own resolution: its re-anchoring stops when no
factor moves by more than 0.1% (`user_fit.ANCHOR_TOLERANCE`), so a smaller gain is the
procedure's noise, not the runs' evidence; without it, a factor the ridge holds near its prior
can win a consistent 0.01-point gain.

The rule is the same for every stack, chip and parameter and has no constant fitted to any rows.
What it leaves out: a factor whose gain is real but smaller than the noise of a handful of runs
stays at its prior (more runs, or runs that vary it, free it); and the leave-one-run-out error the
fit then reports was seen by the selection, so it is slightly optimistic
(`benchmarks/calibrate_transfer.py` reports the nested figure, selection included).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from twofold.validate import calibrate as cal

__all__ = [
    "MIN_GAIN_PCT",
    "RoundScore",
    "Score",
    "SelectionStep",
    "forward_select",
    "loo_score",
    "paired_excess",
]

# The smallest mean gain in leave-one-run-out APE (points) that frees a parameter (module docstring).
MIN_GAIN_PCT = 0.1

# Leave-one-run-out errors (APE %, one per run) of a fit with the given free parameters; None when
# they cannot be computed (fewer than two runs, or a fit that did not converge).
Score = Callable[[frozenset[str]], Sequence[float] | None]
# The score of one round of the selection, given the free set the round starts from.
RoundScore = Callable[[frozenset[str]], Score]


@dataclass(frozen=True, kw_only=True, slots=True)
class SelectionStep:
    """One model of the forward path: the parameter it adds, its leave-one-run-out error, how far
    that is above the path's best model (paired, with its standard error), and whether the rule
    chose a model that frees it."""

    parameter: str  # "" for the path's start: the chip factors alone
    loo_mean_ape_pct: float
    excess_pct: float  # mean per-run leave-one-run-out APE above the best model's (points)
    excess_se_pct: float  # its standard error
    freed: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "parameter": self.parameter,
            "loo_mean_ape_pct": self.loo_mean_ape_pct,
            "excess_pct": self.excess_pct,
            "excess_se_pct": self.excess_se_pct,
            "freed": self.freed,
        }


def paired_excess(model: Sequence[float], best: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the per-run excess model - best (se = inf with one run)."""
    excess = np.asarray(model, dtype=float) - np.asarray(best, dtype=float)
    if len(excess) < 2:
        return float(excess.mean()) if len(excess) else 0.0, math.inf
    return float(excess.mean()), float(excess.std(ddof=1) / math.sqrt(len(excess)))


def forward_select(
    always: Collection[str],
    candidates: Collection[str],
    round_score: RoundScore,
    *,
    min_gain_pct: float = MIN_GAIN_PCT,
) -> tuple[frozenset[str], tuple[SelectionStep, ...]]:
    """The free set (module docstring): `always` plus the candidates of the smallest model on the
    forward path within one standard error of the path's best, and the path (its start, then one
    step per candidate added, in order). `round_score(free)` scores free sets on the linearisation
    anchored at the fit of `free` (`loo_score`): each step picks its candidate with the score of
    the model it starts from, and each model on the path is then scored at its own anchor."""
    start = frozenset(always)
    path: list[tuple[frozenset[str], str]] = [(start, "")]
    left = sorted(set(candidates) - start)
    while left:
        current = path[-1][0]
        score = round_score(current)
        trials = {p: score(current | {p}) for p in left}
        scored = {p: float(np.mean(v)) for p, v in trials.items() if v is not None}
        if not scored:
            break
        p = min(scored, key=lambda q: (scored[q], q))
        path.append((current | {p}, p))
        left.remove(p)
    scores = [round_score(free)(free) for free, _ in path]
    if any(v is None for v in scores[1:]):
        path, scores = path[: scores.index(None, 1)], scores[: scores.index(None, 1)]
    if scores[0] is None:
        return start, ()
    own = [v for v in scores if v is not None]  # every entry, after the cut above
    means = [float(np.mean(v)) for v in own]
    best = own[int(np.argmin(means))]
    excess = [paired_excess(v, best) for v in own]
    chosen = next(k for k, (e, se) in enumerate(excess) if e <= max(se, min_gain_pct))
    steps = tuple(
        SelectionStep(parameter=p, loo_mean_ape_pct=m, excess_pct=e, excess_se_pct=se, freed=k <= chosen)
        for k, ((_, p), m, (e, se)) in enumerate(zip(path, means, excess, strict=True))
    )
    return path[chosen][0], steps


def loo_score(
    rows: Sequence[cal.FitRow],
    *,
    prior: Mapping[str, float],
    ridge_lambda: float = cal.RIDGE_LAMBDA,
    ridge_scale: Mapping[str, float] | None = None,
) -> Score:
    """Each run's leave-one-run-out APE (%) with a given free set: the fit on the other rows
    (`calibrate.fit` from `prior`) applied to the left-out row's linearisation. `rows` are anchored
    at the estimator's prediction with the fit a round starts from (`user_fit`), so the
    linearisation is exact there and the round compares moves from it without an estimator call;
    the fit finally selected reports its leave-one-run-out error with the estimator."""

    def score(free: frozenset[str]) -> list[float] | None:
        if len(rows) < 2:
            return None
        apes = []
        for i, row in enumerate(rows):
            held = cal.fit(
                [*rows[:i], *rows[i + 1 :]],
                prior=prior,
                free=free,
                ridge_lambda=ridge_lambda,
                ridge_scale=ridge_scale,
            )
            if not held.converged:
                return None
            apes.append(abs(math.expm1(cal.apply(row, held.theta))) * 100.0)
        return apes

    return score
