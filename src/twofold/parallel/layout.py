"""Parallel layouts: one (`Layout`) and many at once (`LayoutTable`, arrays for the vectorised search).

Chips = dp * tp * pp * cp. Expert parallelism reuses the data-parallel (and context-parallel)
chips for the MoE layers, as in Megatron-Core: ep must divide dp * cp and num_experts.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

import numpy as np

__all__ = ["Layout", "LayoutTable", "TrainingWorkload", "RECOMPUTE_MODES"]

RECOMPUTE_MODES: tuple[str, ...] = ("none", "selective", "full")


@dataclass(frozen=True, kw_only=True)
class TrainingWorkload:
    """What one optimizer step processes: `global_batch` sequences of `seq_len` tokens."""

    global_batch: int
    seq_len: int
    precision: str = "bf16"


@dataclass(frozen=True, kw_only=True)
class Layout:
    """One parallel layout.

    zero: 0 = plain DP (replicated optimizer), 1 = optimizer states sharded, 2 = + gradients,
    3 = + parameters (FSDP). micro_batch: sequences per micro-batch per data-parallel rank; the
    number of micro-batches per step is global_batch / (dp * micro_batch).
    """

    dp: int = 1
    tp: int = 1
    pp: int = 1
    vp: int = 1
    cp: int = 1
    ep: int = 1
    zero: int = 1
    micro_batch: int = 1
    recompute: Literal["none", "selective", "full"] = "none"
    sequence_parallel: bool = True

    @property
    def chips(self) -> int:
        return self.dp * self.tp * self.pp * self.cp


@dataclass(frozen=True, kw_only=True)
class LayoutTable:
    """Many layouts as parallel int64 arrays (one entry per layout); `recompute` holds the index
    into RECOMPUTE_MODES and `sequence_parallel` 0/1."""

    dp: np.ndarray
    tp: np.ndarray
    pp: np.ndarray
    vp: np.ndarray
    cp: np.ndarray
    ep: np.ndarray
    zero: np.ndarray
    micro_batch: np.ndarray
    recompute: np.ndarray
    sequence_parallel: np.ndarray

    def __len__(self) -> int:
        return int(self.dp.shape[0])

    @classmethod
    def from_layouts(cls, layouts: list[Layout]) -> LayoutTable:
        cols: dict[str, np.ndarray] = {}
        for f in fields(cls):
            if f.name == "recompute":
                values = [RECOMPUTE_MODES.index(lay.recompute) for lay in layouts]
            else:
                values = [int(getattr(lay, f.name)) for lay in layouts]
            cols[f.name] = np.asarray(values, dtype=np.int64)
        return cls(**cols)

    def row(self, i: int) -> Layout:
        kw = {f.name: int(getattr(self, f.name)[i]) for f in fields(self)}
        kw["recompute"] = RECOMPUTE_MODES[kw["recompute"]]
        kw["sequence_parallel"] = bool(kw["sequence_parallel"])
        return Layout(**kw)

    def take(self, index: np.ndarray) -> LayoutTable:
        return LayoutTable(**{f.name: getattr(self, f.name)[index] for f in fields(self)})
