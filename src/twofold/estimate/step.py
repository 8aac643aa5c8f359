"""What the training estimator returns: every term of a step and of its memory, one field each.

`evaluate_layouts` (`estimate.training`) returns a `StepArrays`, one NumPy array per field, aligned
with the rows of the `LayoutTable` it priced; `StepArrays.row(i)` is that layout's `StepTerms`, the
same fields as plain numbers. The search ranks on the arrays, compare and the report read a row's
fields, and `TrainingEstimate` is built from the one row of a one-layout table, so every consumer
reads the same numbers by name, never by a string key.

Fields, all per chip on the most loaded pipeline stage, units in the names:
- `step_time_s`, `tokens_per_s_per_chip`, `mfu`, `model_flops_per_step`, `microbatches`,
  `bubble_fraction` (of the ideal time, (pp - 1) / (vp * m));
- `memory_per_chip_bytes` and `memory_per_chip_gib` (the same total), `fits` (the estimator's own
  rule: at most capacity * (1 - headroom); the search re-decides it with its own headroom);
- `breakdown_<term>_s` for each of `BREAKDOWN_TERMS`: the terms the step time is the sum of
  (compute forward, backward, recompute; the exposed part of each communication kind; bubble;
  optimizer; other);
- `hidden_<kind>_s` for each of `HIDDEN_TERMS`: communication overlapped with compute, not in the
  step time;
- `memory_<part>_bytes` for each of `MEMORY_TERMS`: they sum to `memory_per_chip_bytes`.

`to_dict()` is the one place these become JSON keys: the key is the field name, in field order
(the order `twofold plan --json` has always printed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

__all__ = ["BREAKDOWN_TERMS", "HIDDEN_TERMS", "MEMORY_TERMS", "STEP_FIELDS", "StepArrays", "StepTerms"]

# Terms of the step time, in the order they are summed (see estimate.training).
BREAKDOWN_TERMS: tuple[str, ...] = (
    "compute_forward",
    "compute_backward",
    "compute_recompute",
    "tp",
    "cp",
    "ep",
    "pp",
    "dp",
    "fsdp",
    "bubble",
    "optimizer",
    "other",
)
# Communication overlapped with compute (not part of the step time).
HIDDEN_TERMS: tuple[str, ...] = ("cp", "pp", "dp", "fsdp")
MEMORY_TERMS: tuple[str, ...] = ("weights", "gradients", "optimizer_states", "activations", "workspace")
# Kernel time K and exposed communication X of `compare.factors`, in the order they are added.
KERNEL_TERMS: tuple[str, ...] = ("compute_forward", "compute_backward", "compute_recompute")
EXPOSED_COMM_TERMS: tuple[str, ...] = ("tp", "cp", "ep", "pp", "dp", "fsdp")


@dataclass(frozen=True, kw_only=True, slots=True)
class StepTerms:
    """One layout's training step (module docstring): every term a number, `fits` a bool."""

    step_time_s: float
    tokens_per_s_per_chip: float
    mfu: float
    model_flops_per_step: float
    microbatches: float
    bubble_fraction: float
    memory_per_chip_bytes: float
    memory_per_chip_gib: float
    fits: bool
    breakdown_compute_forward_s: float
    breakdown_compute_backward_s: float
    breakdown_compute_recompute_s: float
    breakdown_tp_s: float
    breakdown_cp_s: float
    breakdown_ep_s: float
    breakdown_pp_s: float
    breakdown_dp_s: float
    breakdown_fsdp_s: float
    breakdown_bubble_s: float
    breakdown_optimizer_s: float
    breakdown_other_s: float
    hidden_cp_s: float
    hidden_pp_s: float
    hidden_dp_s: float
    hidden_fsdp_s: float
    memory_weights_bytes: float
    memory_gradients_bytes: float
    memory_optimizer_states_bytes: float
    memory_activations_bytes: float
    memory_workspace_bytes: float
    kernel_compute_share: float = math.nan
    kernel_roofline_share: float = math.nan

    @property
    def breakdown_s(self) -> dict[str, float]:
        """`{term: seconds}` over `BREAKDOWN_TERMS`, in order; the values sum to the step time."""
        return {t: getattr(self, f"breakdown_{t}_s") for t in BREAKDOWN_TERMS}

    @property
    def hidden_s(self) -> dict[str, float]:
        """`{kind: seconds}` of overlapped communication over `HIDDEN_TERMS`, in order."""
        return {t: getattr(self, f"hidden_{t}_s") for t in HIDDEN_TERMS}

    @property
    def memory_gib(self) -> dict[str, float]:
        """`{part: GiB}` over `MEMORY_TERMS`, in order; the values sum to `memory_per_chip_gib`."""
        return {t: getattr(self, f"memory_{t}_bytes") / 2**30 for t in MEMORY_TERMS}

    @property
    def kernel_s(self) -> float:
        """K: compute forward + backward + recompute (seconds per step, added in that order)."""
        return _sum(getattr(self, f"breakdown_{t}_s") for t in KERNEL_TERMS)

    @property
    def exposed_comm_s(self) -> float:
        """X: the exposed tp + cp + ep + pp + dp + fsdp communication (seconds, in that order)."""
        return _sum(getattr(self, f"breakdown_{t}_s") for t in EXPOSED_COMM_TERMS)

    def to_dict(self) -> dict[str, float | bool]:
        """`{field: value}` in field order: the JSON of one layout's terms (module docstring)."""
        return {name: getattr(self, name) for name in STEP_FIELDS}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> StepTerms:
        """Read back `to_dict()` (extra keys, such as a layout, are ignored). A figure stored as
        null (non-finite, `sweep.store.canonical_result`) reads back as NaN, unknown; `fits` may be
        stored as 0.0 or 1.0."""
        values: dict[str, Any] = {}
        for name in STEP_FIELDS:
            if name not in record and name in _ADDED_FIELDS:  # a record stored before they existed
                values[name] = math.nan
                continue
            v = record[name]
            values[name] = bool(v) if name == "fits" else (math.nan if v is None else float(v))
        return cls(**values)


def _sum(values: Iterable[float]) -> float:
    """`sum()` as the callers always added these terms (from the int 0, left to right)."""
    return sum(values)


@dataclass(frozen=True, kw_only=True, slots=True)
class StepArrays:
    """The training step of every layout of a table: one array per `StepTerms` field, aligned with
    the table's rows (`fits` a bool array, the others float)."""

    step_time_s: np.ndarray
    tokens_per_s_per_chip: np.ndarray
    mfu: np.ndarray
    model_flops_per_step: np.ndarray
    microbatches: np.ndarray
    bubble_fraction: np.ndarray
    memory_per_chip_bytes: np.ndarray
    memory_per_chip_gib: np.ndarray
    fits: np.ndarray
    breakdown_compute_forward_s: np.ndarray
    breakdown_compute_backward_s: np.ndarray
    breakdown_compute_recompute_s: np.ndarray
    breakdown_tp_s: np.ndarray
    breakdown_cp_s: np.ndarray
    breakdown_ep_s: np.ndarray
    breakdown_pp_s: np.ndarray
    breakdown_dp_s: np.ndarray
    breakdown_fsdp_s: np.ndarray
    breakdown_bubble_s: np.ndarray
    breakdown_optimizer_s: np.ndarray
    breakdown_other_s: np.ndarray
    hidden_cp_s: np.ndarray
    hidden_pp_s: np.ndarray
    hidden_dp_s: np.ndarray
    hidden_fsdp_s: np.ndarray
    memory_weights_bytes: np.ndarray
    memory_gradients_bytes: np.ndarray
    memory_optimizer_states_bytes: np.ndarray
    memory_activations_bytes: np.ndarray
    memory_workspace_bytes: np.ndarray
    kernel_compute_share: np.ndarray
    kernel_roofline_share: np.ndarray

    def __len__(self) -> int:
        return len(self.step_time_s)

    def row(self, i: int) -> StepTerms:
        """Layout `i`'s terms as numbers."""
        values: dict[str, Any] = {name: float(getattr(self, name)[i]) for name in STEP_FIELDS}
        values["fits"] = bool(self.fits[i])
        return StepTerms(**values)

    def take(self, index: np.ndarray) -> StepArrays:
        """The rows at `index`, in its order."""
        return StepArrays(**{name: getattr(self, name)[index] for name in STEP_FIELDS})

    def with_fits(self, fits: np.ndarray) -> StepArrays:
        """The same terms with `fits` decided by another rule (the search's memory headroom)."""
        return replace(self, fits=fits)

    @property
    def breakdown_s(self) -> dict[str, np.ndarray]:
        """`{term: seconds per layout}` over `BREAKDOWN_TERMS`, in order."""
        return {t: getattr(self, f"breakdown_{t}_s") for t in BREAKDOWN_TERMS}

    @property
    def memory_bytes(self) -> dict[str, np.ndarray]:
        """`{part: bytes per layout}` over `MEMORY_TERMS`, in order."""
        return {t: getattr(self, f"memory_{t}_bytes") for t in MEMORY_TERMS}

    def to_dict(self) -> dict[str, np.ndarray]:
        """`{field: array}` in field order (the keys of `StepTerms.to_dict`)."""
        return {name: getattr(self, name) for name in STEP_FIELDS}

    @classmethod
    def concat(cls, parts: Sequence[StepArrays]) -> StepArrays:
        """The rows of `parts`, one after the other (one part is returned as it is)."""
        assert parts, "concat needs at least one part"  # programmer invariant: callers pass chunks
        if len(parts) == 1:
            return parts[0]
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in STEP_FIELDS})


STEP_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(StepTerms))
# Fields a stored record may lack (NaN: unknown), the kernel-time split of `compare.factors`.
_ADDED_FIELDS = frozenset({"kernel_compute_share", "kernel_roofline_share"})
assert STEP_FIELDS == tuple(f.name for f in fields(StepArrays))  # programmer invariant: one field list
