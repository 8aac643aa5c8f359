"""How the CLI prints an estimate's uncertainty (`estimate.uncertainty`, JSON: "uncertainty")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["range_cell", "range_note", "short_range", "with_plan_uncertainty"]


def range_cell(u: Mapping[str, Any] | None, figure: str, fmt: str = ",.0f") -> str:
    """ "930-1,260": the interval of `figure` in an estimate's `to_dict()["uncertainty"]`."""
    if not u or figure not in u:
        return "-"
    low, high = u[figure]
    return f"{low:{fmt}}-{high:{fmt}}"


def short_range(u: Mapping[str, Any] | None, figure: str) -> str:
    """ "7.8k-17k": an interval in two significant digits, for narrow table columns."""
    if not u or figure not in u:
        return "-"
    return "-".join(_short(x) for x in u[figure])


def _short(x: float) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.2g}{suffix}"
    return f"{x:.2g}"


def range_note(u: Mapping[str, Any] | None, figure: str, fmt: str = ",.0f") -> str:
    """ " (80%: 930-1,260, measured family)", or "" when the estimate carries no uncertainty."""
    if not u or figure not in u:
        return ""
    return f" ({u['coverage']:.0%}: {range_cell(u, figure, fmt)}, {evidence_text(u['evidence'])})"


def evidence_text(evidence: Mapping[str, Any]) -> str:
    """An estimate's evidence block in words (`estimate.uncertainty.basis_text`)."""
    # lazy: start-up time
    from twofold.estimate.uncertainty import basis_text

    return basis_text(evidence)


def with_plan_uncertainty(
    d: dict[str, Any], chip: Any, stack: str | None, *, seq_len: int | None = None
) -> dict[str, Any]:
    """`twofold plan`'s JSON with an "uncertainty" block on every listed layout (best, top, pareto):
    the same intervals an estimate of that layout carries (`estimate.uncertainty`)."""
    # lazy: start-up time
    from twofold.cost.calibration import shipped_calibration
    from twofold.estimate.uncertainty import uncertainty_for

    stack_id = str(shipped_calibration().with_stack(stack).stack_for(chip).id)
    figures = ("tokens_per_s_per_chip", "step_time_s", "mfu")
    for row in [d["best"], *d["top"], *d["pareto"]]:
        if row is not None and all(row.get(k) is not None for k in figures):
            u = uncertainty_for(chip.id, None, stack_id, {k: float(row[k]) for k in figures}, seq_len=seq_len)
            row["uncertainty"] = u.to_dict()
    return d
