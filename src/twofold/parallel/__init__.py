"""Parallel layouts: validity rules, memory per chip and collective costs on a system's topology."""

from twofold.parallel.layout import RECOMPUTE_MODES, Layout, LayoutTable, TrainingWorkload
from twofold.parallel.rules import check_layout, layout_violations, valid_mask

__all__ = [
    "RECOMPUTE_MODES",
    "Layout",
    "LayoutTable",
    "TrainingWorkload",
    "check_layout",
    "layout_violations",
    "valid_mask",
]
