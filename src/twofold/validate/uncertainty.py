"""The uncertainty every estimate carries: intervals from grouped out-of-sample residuals.

Per evidence level ("measured", "inherited", "specifications"), split-conformal quantiles of the
held-out log residuals (leave-one-stack-out, -chip-out, -family-out), with tails chosen by a
stack-held-out coverage check, made monotone across levels; serving has one in-sample level. Also
the row counts per chip, family and stack that `estimate.uncertainty` reports. Written by
`python benchmarks/validate_accuracy.py --fit` (or `--uncertainty-only`) to
`estimate/uncertainty.yaml`. The method, its citation (Angelopoulos and Bates, arXiv 2107.07511)
and its assumptions: docs/accuracy.md, "How the intervals are computed".
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from twofold.validate.run import RowResult, ValidationResult

__all__ = [
    "COVERAGE",
    "TAILS",
    "LEVELS",
    "QUANTILES",
    "conformal_quantile",
    "level_residuals",
    "grouped_tail",
    "stack_held_out_coverage",
    "uncertainty_document",
    "write_uncertainty",
]

COVERAGE = 0.8
QUANTILES = (0.1, 0.9)
# Lower-tail probabilities tried, narrowest interval first (module docstring).
TAILS = (0.10, 0.09, 0.08, 0.07, 0.06, 0.05, 0.04, 0.03, 0.02)
LEVELS = ("measured", "inherited", "specifications")
_LEVEL_SOURCE = {
    "measured": "leave-one-stack-out residuals of every training-throughput row",
    "inherited": "leave-one-chip-out residuals of the rows of families measured on two or more chips",
    "specifications": "leave-one-family-out residuals of every training-throughput row",
}
_TIME_METRICS = ("step_time_s", "time_to_train_min")


def conformal_quantile(values: Iterable[float], q: float) -> float:
    """The q-quantile of `values` with split conformal prediction's finite-sample correction
    (module docstring): for q >= 0.5 the ceil((n + 1) q)-th smallest value, for q < 0.5 the mirror
    (the same rule on -values), the rank clamped to [1, n]."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("no residuals")
    if q >= 0.5:
        rank = math.ceil((n + 1) * q)
    else:
        rank = n + 1 - math.ceil((n + 1) * (1.0 - q))
    return ordered[min(max(rank, 1), n) - 1]


def _residual(row: RowResult, predicted: float | None) -> float | None:
    if predicted is None or predicted <= 0 or row.published <= 0:
        return None
    r = math.log(row.published / predicted)
    return -r if row.metric in _TIME_METRICS else r


def level_residuals(result: ValidationResult) -> dict[str, list[float]]:
    """The held-out log residuals of each evidence level (module docstring), in row order."""
    return {level: [x for x, _ in pairs] for level, pairs in _tagged_residuals(result).items()}


def _tagged_residuals(result: ValidationResult) -> dict[str, list[tuple[float, str]]]:
    """(residual, stack of the row) of each evidence level, in row order."""
    train = [r for r in result.rows if r.throughput]
    chips_of: dict[str, set[str]] = {}
    for r in train:
        chips_of.setdefault(r.family, set()).add(r.chip)
    picks = {
        "measured": [(r, r.loso_predicted) for r in train],
        "inherited": [(r, r.loco_predicted) for r in train if len(chips_of[r.family]) >= 2],
        "specifications": [(r, r.lofo_predicted) for r in train],
    }
    return {
        level: [(x, row.stack) for row, pred in pairs if (x := _residual(row, pred)) is not None]
        for level, pairs in picks.items()
    }


def stack_held_out_coverage(tagged: Sequence[tuple[float, str]], tail: float = QUANTILES[0]) -> float | None:
    """Coverage of a level's own interval (tails `tail`, 1 - `tail`) on each stack's residuals when
    the quantiles are computed without that stack (a second, grouped hold-out: how often the interval
    covers rows of a stack it never saw); None with fewer than two stacks."""
    stacks = sorted({g for _, g in tagged})
    if len(stacks) < 2:
        return None
    covered = 0
    for g in stacks:
        low, high = _interval([x for x, h in tagged if h != g], tail)
        covered += sum(1 for x, h in tagged if h == g and low <= x <= high)
    return covered / len(tagged)


def grouped_tail(tagged: Sequence[tuple[float, str]]) -> float:
    """The largest tail of `TAILS` whose stack-held-out coverage reaches `COVERAGE` (the smallest
    tried when none does; the level's entry then records the shortfall)."""
    for tail in TAILS:
        held = stack_held_out_coverage(tagged, tail)
        if held is None or held >= COVERAGE:
            return tail
    return TAILS[-1]


def _interval(residuals: Sequence[float], tail: float = QUANTILES[0]) -> tuple[float, float]:
    return conformal_quantile(residuals, tail), conformal_quantile(residuals, 1.0 - tail)


def _covered(residuals: Sequence[float], low: float, high: float) -> float:
    return sum(1 for r in residuals if low <= r <= high) / len(residuals)


def _level_entry(
    residuals: Sequence[float], low: float, high: float, source: str, own: tuple[float, float] | None = None
) -> dict[str, Any]:
    """A level's interval (after the monotone widening), its own quantiles before it, n, coverage."""
    own_low, own_high = (low, high) if own is None else own
    return {
        "log_low": round(low, 6),
        "log_high": round(high, 6),
        "ratio_low": round(math.exp(low), 4),
        "ratio_high": round(math.exp(high), 4),
        "own_ratio_low": round(math.exp(own_low), 4),
        "own_ratio_high": round(math.exp(own_high), 4),
        "residuals": len(residuals),
        "empirical_coverage": round(_covered(residuals, low, high), 4) if residuals else None,
        "from": source,
    }


def _training_levels(result: ValidationResult) -> dict[str, dict[str, Any]]:
    tagged = _tagged_residuals(result)
    residuals = {level: [x for x, _ in pairs] for level, pairs in tagged.items()}
    if not residuals["measured"] or not residuals["specifications"]:
        raise ValueError("the validation result lacks leave-one-stack-out or leave-one-family-out rows")
    out: dict[str, dict[str, Any]] = {}
    previous: tuple[float, float] | None = None
    # From most to least evidence; an empty level (no family measured on two chips) takes the next
    # level's residuals, the more conservative of its neighbours.
    for i, level in enumerate(LEVELS):
        source = level if residuals[level] else LEVELS[i + 1]
        own = residuals[source]
        tail = grouped_tail(tagged[source])
        own_interval = _interval(own, tail)
        low, high = own_interval
        if previous is not None:
            low, high = min(low, previous[0]), max(high, previous[1])
        previous = (low, high)
        out[level] = _level_entry(own, low, high, _LEVEL_SOURCE[level], own_interval)
        out[level]["tail"] = tail
        held = stack_held_out_coverage(tagged[source], tail)
        out[level]["coverage_stack_held_out"] = None if held is None else round(held, 4)
    return out


def _counts(rows: Iterable[RowResult], key: str) -> dict[str, int]:
    return dict(sorted(Counter(getattr(r, key) for r in rows if getattr(r, key)).items()))


def _longest_by(rows: Sequence[Any], key: str) -> dict[str, int]:
    """The longest sequence of the rows of each `key` value (a family's validated range)."""
    out: dict[str, int] = {}
    for r in rows:
        group = getattr(r, key)
        if group and r.seq_len:
            out[group] = max(out.get(group, 0), int(r.seq_len))
    return dict(sorted(out.items()))


def uncertainty_document(result: ValidationResult) -> dict[str, Any]:
    """The contents of `estimate/uncertainty.yaml` from a result with all three held-out passes."""
    train = [r for r in result.rows if r.throughput]
    serving = [x for r in result.inference_rows if (x := _residual(r, r.predicted)) is not None]
    doc: dict[str, Any] = {
        "coverage": COVERAGE,
        "quantiles": list(QUANTILES),
        "method": (
            "split-conformal quantiles (ceil((n+1)q)-th order statistic; Angelopoulos & Bates, "
            "arXiv 2107.07511) of log(published / predicted) over held-out predictions, tails "
            "chosen so that a stack left out of the quantiles is covered at 80% (cross-conformal "
            "over stacks), made monotone across evidence levels (twofold.validate.uncertainty)"
        ),
        "calibration": dict(result.calibration.get("factors", {}).get("provenance", {}) or {}),
        "training": _training_levels(result),
        "rows": {
            "training": {
                "chip": _counts(train, "chip"),
                "family": _counts(train, "family"),
                "stack": _counts(train, "stack"),
                "seq_len_max": max((r.seq_len for r in train if r.seq_len), default=0),
                "seq_len_max_by_family": _longest_by(train, "family"),
            },
            "serving": {
                "chip": _counts(result.inference_rows, "chip"),
                "family": _counts(result.inference_rows, "family"),
            },
        },
    }
    if serving:
        low, high = _interval(serving)
        doc["serving"] = {
            "all": _level_entry(
                serving, low, high, "in-sample residuals of the serving rows (output tokens/s; one level)"
            )
        }
    return doc


def write_uncertainty(doc: Mapping[str, Any], path: Path, header: str) -> None:
    """Write `doc` as YAML with `header` as comment lines."""
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    path.write_text(comment + yaml.safe_dump(dict(doc), sort_keys=False, width=100))
