"""What the training and the serving estimate objects share: reading their per-term fields out of
an evaluator row, the "does not fit" note, and the keys that open their JSON."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from twofold.hardware.types import Chip

__all__ = ["fit_note", "gib_terms", "identity_dict", "seconds_terms", "usable_text", "with_unit"]

Row = Mapping[str, np.generic | float]


class _Identified(Protocol):
    """An estimate: what it ran and where (read-only, as the frozen estimates are)."""

    @property
    def model(self) -> str: ...
    @property
    def chip(self) -> str: ...
    @property
    def system(self) -> str: ...
    @property
    def chips(self) -> int: ...
    @property
    def layout(self) -> Any: ...
    @property
    def workload(self) -> Any: ...


def seconds_terms(row: Row, prefix: str, names: Iterable[str]) -> Mapping[str, float]:
    """`{name: row[f"{prefix}{name}_s"]}`, frozen."""
    return MappingProxyType({k: float(row[f"{prefix}{k}_s"]) for k in names})


def gib_terms(row: Row, names: Iterable[str]) -> Mapping[str, float]:
    """`{name: row[f"memory_{name}_bytes"]}` in GiB, frozen."""
    return MappingProxyType({k: float(row[f"memory_{k}_bytes"]) / 2**30 for k in names})


def fit_note(needed_gib: float, chip: Chip, *, mem_headroom: float = 0.0) -> str:
    """Why an estimate does not fit; with a headroom, against the usable part of the capacity."""
    if not mem_headroom:
        has = f"{chip.id} has {chip.hbm_capacity_gib:g} GiB"
    else:
        has = usable_text(chip, mem_headroom)
    return f"does not fit: needs {needed_gib:.1f} GiB per chip, {has}"


def usable_text(chip: Chip, mem_headroom: float) -> str:
    """The memory a layout may use, and why: "76 GiB usable (80 GiB on h100, 5% headroom)"."""
    usable, capacity = chip.hbm_capacity_gib * (1.0 - mem_headroom), chip.hbm_capacity_gib
    return f"{usable:.3g} GiB usable ({capacity:g} GiB on {chip.id}, {mem_headroom:.0%} headroom)"


def identity_dict(estimate: _Identified) -> dict[str, Any]:
    """The keys every estimate's `to_dict` starts with, in this order."""
    return {
        "model": estimate.model,
        "chip": estimate.chip,
        "system": estimate.system,
        "chips": estimate.chips,
        "layout": asdict(estimate.layout),
        # A training workload omits `finetune` for full training (`TrainingWorkload.to_dict`).
        "workload": to_dict()
        if (to_dict := getattr(estimate.workload, "to_dict", None))
        else asdict(estimate.workload),
    }


def with_unit(terms: Mapping[str, float], unit: str) -> dict[str, float]:
    """`{f"{name}_{unit}": value}`: a per-term mapping as JSON keys that carry their unit."""
    return {f"{k}_{unit}": v for k, v in terms.items()}
