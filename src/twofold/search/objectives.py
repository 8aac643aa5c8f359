"""What `plan_training` ranks by: throughput, cost, energy or time to train, per layout, vectorised.

All four are computed from the evaluator's per-layout arrays in a few NumPy operations (no
Python loop per layout), with the formulas of `twofold.economics`:

- `throughput`: tokens per second per chip (larger is better).
- `cost`: dollars per million trained tokens = price per chip-hour / (tokens/s/chip * 3600) * 1e6
  (`economics.prices.usd_per_million_tokens`: every chip is billed for the whole step). For a
  fixed chip count and one price this orders layouts exactly as throughput does (division is
  monotone), so the best layout only changes on ties; the figure is what it adds.
- `energy`: joules per trained token = P(u) / (tokens/s/chip), with the linear power model
  P(u) = P_idle + (P_max - P_idle) * u of `economics.power` and u the compute-busy share of the
  step (the breakdown terms `economics.power.BUSY_TERMS` over the step time, clipped to [0, 1],
  the same definition as `economics.power.busy_fraction`). A layout that waits more (bubble,
  exposed communication) draws less power per second, so this ranking can differ from throughput.
- `time`: seconds to train `tokens` tokens = tokens / (tokens/s/chip * chips); default budget
  20 x (active) parameters (`workload.budget.default_tokens`, Chinchilla). Same order as throughput.

Unknown prices and TDPs are never guessed: asking for `cost` or `energy` without one is an
`InputError` naming the chip and the flag that supplies it. Left out: everything
`twofold.economics` leaves out (host power, PUE, discounts, networking charges).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from twofold.economics.power import BUSY_TERMS, PowerModel, power_model_for
from twofold.economics.prices import SECONDS_PER_HOUR, Price, price_for
from twofold.errors import InputError
from twofold.estimate.step import StepArrays
from twofold.hardware.types import Chip, System
from twofold.workload.budget import default_tokens
from twofold.workload.model import ModelConfig

if TYPE_CHECKING:  # loaded only with an imported model (start-up time)
    from twofold.workload.imported import ImportedModel

__all__ = [
    "OBJECTIVES",
    "ObjectiveArrays",
    "ObjectiveInputs",
    "ObjectiveTerms",
    "check_objective",
    "objective_inputs",
    "objective_metrics",
    "objective_scores",
]

# objective -> (metric ranked on, True when larger is better)
OBJECTIVES: dict[str, tuple[str, bool]] = {
    "throughput": ("tokens_per_s_per_chip", True),
    "cost": ("usd_per_million_tokens", False),
    "energy": ("energy_per_token_j", False),
    "time": ("time_to_train_s", False),
}
SECONDS_PER_DAY = 86400.0


def check_objective(objective: str) -> tuple[str, bool]:
    """The metric an objective ranks on and whether larger is better; InputError if unknown."""
    if objective in OBJECTIVES:
        return OBJECTIVES[objective]
    raise InputError("objective", objective, f"must be one of {', '.join(OBJECTIVES)}")


@dataclass(frozen=True, kw_only=True, slots=True)
class ObjectiveInputs:
    """What an objective needs besides the estimate: the price (cost), the power model (energy)
    or the token budget (time); None for the others."""

    objective: str
    price: Price | None = None
    power: PowerModel | None = None
    tokens: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.price is not None:
            out["price"] = self.price.to_dict()
        if self.power is not None:
            out["power"] = self.power.to_dict()
        if self.tokens is not None:
            out["tokens"] = self.tokens
        return out


def _refuse_unused(objective: str, **given: tuple[object, bool, str]) -> None:
    """An input of another objective is a mistake (it would change nothing), never ignored."""
    for name, (value, is_given, needs) in given.items():
        if is_given and objective != needs:
            raise InputError(name, value, f"applies to --objective {needs} only, not {objective}")


def objective_inputs(
    objective: str,
    model: ModelConfig | ImportedModel,
    system: System,
    chip: Chip,
    *,
    prices: Mapping[str, float] | None = None,
    powers: Mapping[str, float] | None = None,
    price_kind: str = "on-demand",
    idle_fraction: float | None = None,
    tokens: float | None = None,
    min_quality: str | None = None,
) -> ObjectiveInputs:
    """Resolve and validate the objective's inputs before any layout is evaluated.

    `prices` (USD per chip-hour) and `powers` (TDP in W) are keyed by chip id and win over the
    catalog; `price_kind` is one of `economics.PRICE_KINDS`; `min_quality` (A, B, C) makes a catalog
    price of a weaker grade unknown.
    """
    check_objective(objective)
    _refuse_unused(
        objective,
        price=(dict(prices or {}), bool(prices), "cost"),
        price_kind=(price_kind, price_kind != "on-demand", "cost"),
        min_quality=(min_quality, min_quality is not None, "cost"),
        power=(dict(powers or {}), bool(powers), "energy"),
        idle_fraction=(idle_fraction, idle_fraction is not None, "energy"),
        tokens=(tokens, tokens is not None, "time"),
    )
    if objective == "cost":
        price = price_for(system, chip, prices, price_kind, min_quality=min_quality)
        if price.usd_per_chip_hour is None:
            reason = price.note.removeprefix(f"{system.id}: ")
            raise InputError(
                "objective",
                objective,
                f"the price of {chip.id} on {system.id} is unknown ({reason}); pass --price {chip.id}=USD",
            )
        return ObjectiveInputs(objective=objective, price=price)
    if objective == "energy":
        power = power_model_for(chip, overrides_w=powers, idle_fraction=idle_fraction)
        if power.tdp_w is None:
            raise InputError(
                "objective",
                objective,
                f"the maximum power (TDP) of {chip.id} is unknown; pass --power {chip.id}=W",
            )
        return ObjectiveInputs(objective=objective, power=power)
    if objective == "time":
        if tokens is None:
            tokens = default_tokens(model)
        elif (
            isinstance(tokens, bool)
            or not isinstance(tokens, (int, float, np.integer, np.floating))
            or not np.isfinite(tokens)
            or tokens <= 0
        ):
            raise InputError("tokens", tokens, "must be a finite positive number of tokens")
        return ObjectiveInputs(objective=objective, tokens=float(tokens))
    return ObjectiveInputs(objective=objective)


def _per_layout(numerator: float | np.ndarray, tokens_per_s: np.ndarray) -> np.ndarray:
    """numerator / throughput; +inf where the throughput is not positive (such a layout ranks last;
    the estimator gives every valid layout a positive throughput)."""
    out = np.full(tokens_per_s.shape, np.inf)
    np.divide(numerator, tokens_per_s, out=out, where=tokens_per_s > 0)
    return out


def busy_fractions(step_terms: StepArrays) -> np.ndarray:
    """u per layout: `economics.power.busy_fraction` on the breakdown arrays."""
    step = np.asarray(step_terms.step_time_s, dtype=float)
    breakdown = step_terms.breakdown_s
    busy = np.zeros(step.shape)
    for term in BUSY_TERMS:
        busy = busy + np.asarray(breakdown[term], dtype=float)
    u = np.zeros(step.shape)
    np.divide(busy, step, out=u, where=step > 0)
    return np.clip(u, 0.0, 1.0)


@dataclass(frozen=True, kw_only=True, slots=True)
class ObjectiveTerms:
    """One layout's figures of the objective besides the estimator's: `usd_per_million_tokens`
    (cost), `power_w`, `busy_fraction` and `energy_per_token_j` (energy), `time_to_train_s` and
    `time_to_train_days` (time); None where the objective does not compute it."""

    usd_per_million_tokens: float | None = None
    power_w: float | None = None
    busy_fraction: float | None = None
    energy_per_token_j: float | None = None
    time_to_train_s: float | None = None
    time_to_train_days: float | None = None

    def to_dict(self) -> dict[str, float]:
        """The figures the objective computed, in field order (None ones left out)."""
        return {name: v for name in _OBJECTIVE_FIELDS if (v := getattr(self, name)) is not None}


@dataclass(frozen=True, kw_only=True, slots=True)
class ObjectiveArrays:
    """`ObjectiveTerms` of every layout: one array per figure the objective computed, else None."""

    usd_per_million_tokens: np.ndarray | None = None
    power_w: np.ndarray | None = None
    busy_fraction: np.ndarray | None = None
    energy_per_token_j: np.ndarray | None = None
    time_to_train_s: np.ndarray | None = None
    time_to_train_days: np.ndarray | None = None

    def row(self, i: int) -> ObjectiveTerms | None:
        """Layout `i`'s figures; None when the objective computes none (throughput)."""
        values = {name: float(v[i]) for name in _OBJECTIVE_FIELDS if (v := getattr(self, name)) is not None}
        return ObjectiveTerms(**values) if values else None


_OBJECTIVE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ObjectiveTerms))


def objective_metrics(inputs: ObjectiveInputs, step_terms: StepArrays, chips: int) -> ObjectiveArrays:
    """The objective's per-layout figures (module docstring), aligned with the evaluator's arrays;
    none for throughput, which the evaluator already returns."""
    thr = np.asarray(step_terms.tokens_per_s_per_chip, dtype=float)
    if inputs.price is not None and inputs.price.usd_per_chip_hour is not None:
        usd_per_chip_s = inputs.price.usd_per_chip_hour / SECONDS_PER_HOUR
        return ObjectiveArrays(usd_per_million_tokens=_per_layout(usd_per_chip_s, thr) * 1e6)
    if inputs.power is not None and inputs.power.tdp_w is not None and inputs.power.idle_w is not None:
        u = busy_fractions(step_terms)
        power_w = inputs.power.idle_w + (inputs.power.tdp_w - inputs.power.idle_w) * u
        return ObjectiveArrays(power_w=power_w, busy_fraction=u, energy_per_token_j=_per_layout(power_w, thr))
    if inputs.tokens is not None:
        seconds = _per_layout(inputs.tokens / chips, thr)
        return ObjectiveArrays(time_to_train_s=seconds, time_to_train_days=seconds / SECONDS_PER_DAY)
    return ObjectiveArrays()


def objective_scores(objective: str, step_terms: StepArrays, extra: ObjectiveArrays) -> np.ndarray:
    """The per-layout figure `objective` ranks on (`OBJECTIVES`), from the estimator's arrays or
    the objective's own."""
    scores = {
        "throughput": step_terms.tokens_per_s_per_chip,
        "cost": extra.usd_per_million_tokens,
        "energy": extra.energy_per_token_j,
        "time": extra.time_to_train_s,
    }[objective]
    assert scores is not None  # programmer invariant: objective_metrics computed the objective's figure
    return scores
