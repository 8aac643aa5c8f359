"""Parallel layouts: one (`Layout`) and many at once (`LayoutTable`, arrays for the vectorised search).

Chips = dp * tp * pp * cp. Expert parallelism reuses the chips of a pipeline stage for the MoE
layers, as in Megatron-Core: the tp * cp * dp ranks of a stage are refolded into etp * ep * edp
(expert tensor, expert and expert-data parallel), so ep * etp divides tp * cp * dp and ep divides
num_experts. `etp` (Megatron `--expert-tensor-parallel-size`) is None for "equal to tp", Megatron's
default; etp = 1 lets ep span the TP ranks too (`parallel.rules`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from twofold.workload.finetune import Finetune

__all__ = ["Layout", "LayoutTable", "TrainingWorkload", "RECOMPUTE_MODES"]

RECOMPUTE_MODES: tuple[str, ...] = ("none", "selective", "full")


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainingWorkload:
    """What one optimizer step processes: `global_batch` sequences of `seq_len` tokens.

    `finetune`: a LoRA/QLoRA run (`workload.finetune.Finetune`: frozen base, adapters, base
    weight format); None is full training (every weight trained)."""

    global_batch: int
    seq_len: int
    precision: str = "bf16"
    finetune: Finetune | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; `finetune` appears only for a fine-tuning run (full training unchanged)."""
        out: dict[str, Any] = {
            "global_batch": self.global_batch,
            "seq_len": self.seq_len,
            "precision": self.precision,
        }
        if self.finetune is not None:
            out["finetune"] = self.finetune.to_dict()
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class Layout:
    """One parallel layout.

    zero: 0 = plain DP (replicated optimizer), 1 = optimizer states sharded, 2 = + gradients,
    3 = + parameters (FSDP). micro_batch: sequences per micro-batch per data-parallel rank; the
    number of micro-batches per step is global_batch / (dp * micro_batch). shard: with zero = 3,
    the data-parallel ranks one copy of the model states is sharded over (hybrid sharding, PyTorch
    FSDP `HYBRID_SHARD` / FSDP2 HSDP, DeepSpeed ZeRO++ hpZ): states are sharded within groups of
    `shard` ranks and replicated across the dp / shard groups; None = over all dp ranks (full
    shard).
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
    etp: int | None = None  # expert tensor parallelism; None (canonical for etp == tp): equal to tp
    shard: int | None = None  # ZeRO-3 shard group in dp ranks; None (canonical for shard == dp): dp

    def __post_init__(self) -> None:
        # One spelling per layout: etp == tp is stored as None, so equal layouts compare equal.
        if self.etp is not None and self.etp == self.tp:
            object.__setattr__(self, "etp", None)
        if self.shard is not None and self.shard == self.dp:
            object.__setattr__(self, "shard", None)

    @property
    def shard_dp(self) -> int:
        """The data-parallel ranks the ZeRO-3 states are sharded over (dp unless hybrid)."""
        return self.dp if self.shard is None else self.shard

    @property
    def chips(self) -> int:
        return self.dp * self.tp * self.pp * self.cp

    @property
    def expert_tp(self) -> int:
        return self.tp if self.etp is None else self.etp


@dataclass(frozen=True, kw_only=True, slots=True)
class LayoutTable:
    """Many layouts as parallel int64 arrays (one entry per layout); `recompute` holds the index
    into RECOMPUTE_MODES and `sequence_parallel` 0/1. `etp` holds the expert tensor-parallel size
    (None: equal to tp on every row)."""

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
    etp: np.ndarray | None = None
    shard: np.ndarray | None = None  # ZeRO-3 shard group in dp ranks (None: dp on every row)

    def __len__(self) -> int:
        return int(self.dp.shape[0])

    @classmethod
    def from_layouts(cls, layouts: list[Layout]) -> LayoutTable:
        cols: dict[str, np.ndarray] = {}
        for f in fields(cls):
            if f.name == "recompute":
                values = [RECOMPUTE_MODES.index(lay.recompute) for lay in layouts]
            elif f.name == "etp":
                values = [lay.expert_tp for lay in layouts]
            elif f.name == "shard":
                if all(lay.shard is None for lay in layouts):
                    continue
                values = [lay.shard_dp for lay in layouts]
            else:
                values = [int(getattr(lay, f.name)) for lay in layouts]
            cols[f.name] = np.asarray(values, dtype=np.int64)
        return cls(**cols)

    def row(self, i: int) -> Layout:
        kw: dict[str, Any] = {
            f.name: int(getattr(self, f.name)[i]) for f in fields(self) if getattr(self, f.name) is not None
        }
        kw["recompute"] = RECOMPUTE_MODES[kw["recompute"]]
        kw["sequence_parallel"] = bool(kw["sequence_parallel"])
        return Layout(**kw)

    @property
    def expert_tp(self) -> np.ndarray:
        """The expert tensor-parallel size of every row (tp where `etp` is None)."""
        return self.tp if self.etp is None else self.etp

    def take(self, index: np.ndarray) -> LayoutTable:
        columns: dict[str, Any] = {
            f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[index]
            for f in fields(self)
        }
        return LayoutTable(**columns)
