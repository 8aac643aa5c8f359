"""How sure an estimate is: intervals at a stated coverage for its headline figures.

The intervals come from `estimate/uncertainty.yaml`, made by `validate.uncertainty` (method,
levels and citation there) from the held-out residuals of the shipped published rows: log
quantiles [q_lo, q_hi] of published / predicted throughput at 80% coverage, per evidence level.
The level of an estimate is the evidence its chip has in the shipped training rows:

- the chip has rows: "measured family" (leave-one-stack-out residuals);
- the chip has none, its hardware family (`cost.calibration` chip_families) has:
  "inherited from <family>" (leave-one-chip-out residuals);
- neither: "specifications only" (leave-one-family-out residuals).

A throughput-like figure x (tokens/s per chip, MFU, output tokens/s) gets [x e^q_lo, x e^q_hi]; a
time (step time, TTFT, TPOT) the inverse, [x e^-q_hi, x e^-q_lo]. Serving has one level only (the
serving rows' in-sample residuals); its evidence counts serving rows.

A workload outside what the shipped training rows cover is not exchangeable with them, so the
residuals of its level do not describe it: a sequence length above the longest validated training
row of its family (`rows.training.seq_len_max_by_family` of the file; attention's share of the
step grows with length, and no published row measures it there) drops the estimate one level
(measured -> inherited -> specifications), and the evidence names it (`extrapolated`). One level is
an assumption, stated: it is the widest interval the held-out passes measure short of the next.

A stack calibrated on a team's own runs (`twofold calibrate`, `cost.stack.Stack.intervals`) gives
its own interval on the families its runs measured: the 10% and 90% quantiles of the runs'
leave-one-run-out log(measured / predicted) throughput (basis "calibrated on N runs"). Other
families keep the shipped intervals above.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from twofold import yaml_strict

__all__ = [
    "Evidence",
    "THROUGHPUT_FIGURES",
    "TIME_FIGURES",
    "Uncertainty",
    "basis_text",
    "longest_validated_seq_len",
    "uncertainty_data",
    "uncertainty_for",
]

UNCERTAINTY_FILE = "uncertainty.yaml"
# Figures whose interval is the throughput's (x e^q) and those whose interval is its inverse.
THROUGHPUT_FIGURES = ("tokens_per_s_per_chip", "mfu", "output_tokens_per_s")
TIME_FIGURES = ("step_time_s", "ttft_ms", "tpot_ms")
_SERVING_FIGURES = frozenset({"ttft_ms", "tpot_ms", "output_tokens_per_s"})
_LEVEL_OF_BASIS = {"measured family": "measured", "specifications only": "specifications"}
_LEVELS = ("measured", "inherited", "specifications")


def basis_text(evidence: Mapping[str, Any]) -> str:
    """An evidence block (`Evidence.to_dict`) in words: its basis, then what is extrapolated."""
    beyond = list(evidence.get("extrapolated") or ())
    text = str(evidence["basis"])
    # No "; " inside: lists of chips' evidence are joined (and split) on it.
    return f"{text}, extrapolated (one level wider): {', '.join(beyond)}" if beyond else text


@dataclass(frozen=True, kw_only=True, slots=True)
class Evidence:
    """What the interval rests on: shipped rows on the chip, its family and its stack (None: the
    stack is not known), and the basis in words."""

    rows_chip: int
    rows_family: int
    rows_stack: int | None
    basis: str  # "measured family" | "inherited from <family>" | "specifications only"
    # What the workload asks beyond the validated rows (e.g. a longer sequence): each drops a level.
    extrapolated: tuple[str, ...] = ()

    @property
    def level(self) -> str:
        """The evidence level of `validate.uncertainty`: measured, inherited or specifications,
        one lower when the workload is extrapolated (module docstring)."""
        base = self._basis_level()
        if self.extrapolated and base in _LEVELS:
            return _LEVELS[min(_LEVELS.index(base) + 1, len(_LEVELS) - 1)]
        return base

    def describe(self) -> str:
        """The basis in words, with what is extrapolated (`basis_text` of the JSON form)."""
        return basis_text(self.to_dict())

    def _basis_level(self) -> str:
        if self.basis.startswith("calibrated on"):
            return "measured"
        return _LEVEL_OF_BASIS.get(self.basis, "inherited")

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_chip": self.rows_chip,
            "rows_family": self.rows_family,
            "rows_stack": self.rows_stack,
            "basis": self.basis,
            "extrapolated": list(self.extrapolated),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class Uncertainty:
    """Intervals `[low, high]` at `coverage` for the headline figures, and their evidence."""

    coverage: float
    intervals: Mapping[str, tuple[float, float]]
    evidence: Evidence
    # [q_lo, q_hi]: log(published / predicted) throughput, the interval every figure derives from.
    log_interval: tuple[float, float]

    @property
    def tokens_per_s_per_chip_range(self) -> tuple[float, float]:
        """The interval of a training estimate's throughput (KeyError for a serving estimate's)."""
        return self.intervals["tokens_per_s_per_chip"]

    @property
    def log_half_width(self) -> float:
        """(q_hi - q_lo) / 2: the spread `compare` combines across two chips."""
        return (self.log_interval[1] - self.log_interval[0]) / 2.0

    @property
    def log_center(self) -> float:
        """(q_lo + q_hi) / 2: the interval's shift from the point estimate, in log."""
        return (self.log_interval[0] + self.log_interval[1]) / 2.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "coverage": self.coverage,
            **{name: [low, high] for name, (low, high) in self.intervals.items()},
            "evidence": self.evidence.to_dict(),
        }


@cache
def uncertainty_data() -> Mapping[str, Any]:
    """The shipped `estimate/uncertainty.yaml` (read once)."""
    text = resources.files("twofold.estimate").joinpath(UNCERTAINTY_FILE).read_text()
    return MappingProxyType(yaml_strict.load(text))


def _family_of(chip_id: str) -> str | None:
    from twofold.cost.calibration import shipped_calibration

    return shipped_calibration().family(chip_id)


def _evidence(rows: Mapping[str, Any], chip_id: str, family: str | None, stack: str) -> Evidence:
    on_chip = int(rows.get("chip", {}).get(chip_id, 0))
    on_family = int(rows.get("family", {}).get(family, 0)) if family else 0
    on_stack = None
    if "stack" in rows and stack != "auto":
        on_stack = int(rows["stack"].get(stack, 0))
    if on_chip:
        basis = "measured family"
    elif on_family:
        basis = f"inherited from {family}"
    else:
        basis = "specifications only"
    return Evidence(rows_chip=on_chip, rows_family=on_family, rows_stack=on_stack, basis=basis)


def _calibrated_interval(stack: str, family: str | None) -> Mapping[str, float] | None:
    """The leave-one-run-out interval a calibrated stack stores for `family`, if it has one."""
    from twofold.cost.stack import get_stack, list_stacks
    from twofold.errors import InputError

    if not family or stack in list_stacks():
        return None

    try:
        return get_stack(stack).intervals.get(family)
    except InputError:  # a stack known by id only where it was loaded from a path
        return None


def longest_validated_seq_len(family: str | None = None) -> int | None:
    """The longest sequence of the shipped training rows of `family`
    (`rows.training.seq_len_max_by_family`), or of all rows (`seq_len_max`) for a family without
    rows or None: a length validated on one family's chips says nothing of another's attention
    kernels (two TPU rows at 32k do not validate 32k on GPUs)."""
    rows = uncertainty_data()["rows"]["training"]
    own = (rows.get("seq_len_max_by_family") or {}).get(family) if family else None
    longest = own or rows.get("seq_len_max")
    return int(longest) if longest else None


def _extrapolated(seq_len: int | None, family: str | None) -> tuple[str, ...]:
    longest = longest_validated_seq_len(family)
    if seq_len is None or longest is None or seq_len <= longest:
        return ()
    return (f"seq_len {seq_len} > {longest}, the longest validated training row",)


def uncertainty_for(
    chip_id: str,
    family: str | None,
    stack: str,
    figures: Mapping[str, float],
    *,
    seq_len: int | None = None,
) -> Uncertainty:
    """The intervals of `figures` (headline name -> value) for an estimate on `chip_id`.

    `family`: the chip's hardware family, None to read it from the shipped calibration's
    chip_families; `stack`: the software stack id, "auto" when not known; `seq_len`: the training
    workload's sequence length (beyond the validated rows it drops a level, module docstring).
    Serving figures (ttft_ms, tpot_ms, output_tokens_per_s) use the serving interval and counts.
    """
    data = uncertainty_data()
    serving = bool(_SERVING_FIGURES & set(figures))
    family = _family_of(chip_id) if family is None else family
    kind = "serving" if serving else "training"
    evidence = _evidence(data["rows"][kind], chip_id, family, stack)
    if not serving:
        evidence = replace(evidence, extrapolated=_extrapolated(seq_len, family))
    entry = data["serving"]["all"] if serving else data["training"][evidence.level]
    # A team's own runs say nothing beyond what they ran either: extrapolated, the shipped levels.
    own = None if serving or evidence.extrapolated else _calibrated_interval(stack, family)
    if own is not None:
        entry = own
        evidence = replace(evidence, basis=f"calibrated on {int(own.get('runs', 0))} runs (stack {stack})")
    low, high = float(entry["log_low"]), float(entry["log_high"])
    intervals: dict[str, tuple[float, float]] = {}
    for name, value in figures.items():
        if name in TIME_FIGURES:
            intervals[name] = (value * math.exp(-high), value * math.exp(-low))
        else:
            intervals[name] = (value * math.exp(low), value * math.exp(high))
    if "mfu" in intervals:  # no step uses more than the chip's peak
        intervals["mfu"] = (min(intervals["mfu"][0], 1.0), min(intervals["mfu"][1], 1.0))
    return Uncertainty(
        coverage=float(data["coverage"]),
        intervals=MappingProxyType(intervals),
        evidence=evidence,
        log_interval=(low, high),
    )
