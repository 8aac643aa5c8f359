"""How the CLI prints an estimate's uncertainty (`estimate.uncertainty`, JSON: "uncertainty")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["range_cell", "range_note"]


def range_cell(u: Mapping[str, Any] | None, figure: str, fmt: str = ",.0f") -> str:
    """ "930-1,260": the interval of `figure` in an estimate's `to_dict()["uncertainty"]`."""
    if not u or figure not in u:
        return "-"
    low, high = u[figure]
    return f"{low:{fmt}}-{high:{fmt}}"


def range_note(u: Mapping[str, Any] | None, figure: str, fmt: str = ",.0f") -> str:
    """ " (80%: 930-1,260, measured family)", or "" when the estimate carries no uncertainty."""
    if not u or figure not in u:
        return ""
    return f" ({u['coverage']:.0%}: {range_cell(u, figure, fmt)}, {u['evidence']['basis']})"
