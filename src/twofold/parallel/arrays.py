"""A `LayoutTable` as float arrays plus the quantities every formula derives from it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twofold.parallel.layout import LayoutTable, TrainingWorkload
from twofold.workload.protocol import TrainingModel

__all__ = ["LayoutArrays"]


@dataclass(frozen=True, kw_only=True, slots=True)
class LayoutArrays:
    """Float columns of a layout table and derived per-layout quantities (one entry per layout).

    Groups are placed in Megatron-Core's default rank order tp-cp-ep-dp-pp (`megatron/core/
    parallel_state.py`, `order="tp-cp-ep-dp-pp"`): tp innermost (fastest level), then cp, then dp
    (whose innermost ranks form the expert-parallel groups), pp outermost, so that the bandwidth-
    hungry tp, cp, ep and dp groups get the fast levels and only the small point-to-point pipeline
    traffic crosses the slowest one. (Llama 3 used [TP, CP, PP, DP], Dubey et al. 2024, section
    3.3.2; not modelled, most published layouts here are Megatron's.)
    """

    dp: np.ndarray
    tp: np.ndarray
    pp: np.ndarray
    vp: np.ndarray
    cp: np.ndarray
    ep: np.ndarray
    zero: np.ndarray  # int
    micro_batch: np.ndarray
    recompute: np.ndarray  # int index into RECOMPUTE_MODES
    sp: np.ndarray  # bool: sequence parallelism on (only meaningful with tp > 1)
    etp: np.ndarray  # expert tensor-parallel size (tp unless the layout says otherwise)
    shard: np.ndarray  # ZeRO-3 shard group in dp ranks (dp unless hybrid sharding)
    microbatches: np.ndarray  # m = global_batch / (dp * micro_batch)
    stage_layers: np.ndarray  # layers on the largest pipeline stage
    chips: np.ndarray

    @classmethod
    def build(cls, table: LayoutTable, model: TrainingModel, workload: TrainingWorkload) -> LayoutArrays:
        f = {
            name: np.maximum(np.asarray(getattr(table, name), dtype=float), 1.0)
            for name in ("dp", "tp", "pp", "vp", "cp", "ep", "micro_batch")
        }
        chunks = f["pp"] * f["vp"]
        # Uneven pipelines: the largest stage holds ceil(L / (pp*vp)) layers per virtual chunk.
        stage_layers = np.ceil(model.num_layers / chunks) * f["vp"]
        return cls(
            **f,
            zero=np.asarray(table.zero, dtype=np.int64),
            recompute=np.asarray(table.recompute, dtype=np.int64),
            sp=(np.asarray(table.sequence_parallel) != 0) & (f["tp"] > 1),
            etp=np.maximum(np.asarray(table.expert_tp, dtype=float), 1.0) * np.ones_like(f["tp"]),
            shard=f["dp"] if table.shard is None else np.clip(np.asarray(table.shard, float), 1.0, f["dp"]),
            microbatches=np.maximum(workload.global_batch / (f["dp"] * f["micro_batch"]), 1.0),
            stage_layers=stage_layers,
            chips=f["dp"] * f["tp"] * f["pp"] * f["cp"],
        )

    @property
    def dp_group(self) -> np.ndarray:
        """Ranks holding replicas of the non-expert parameters (Megatron shards over DP x CP)."""
        return np.asarray(self.dp * self.cp)

    @property
    def shard_group(self) -> np.ndarray:
        """Ranks one copy of the non-expert states is sharded over: dp x cp, or with hybrid
        sharding (`Layout.shard`) shard x cp; ZeRO-1/2 shard over the whole dp x cp group."""
        return np.asarray(np.where(self.zero >= 3, self.shard * self.cp, self.dp * self.cp))

    @property
    def replicas(self) -> np.ndarray:
        """Copies of the sharded states across hybrid-sharding groups (1 without hybrid sharding)."""
        return np.asarray(self.dp_group / self.shard_group)

    @property
    def expert_dp_group(self) -> np.ndarray:
        """Ranks holding replicas of one expert shard: the stage's tp*cp*dp ranks refolded as
        etp*ep*edp (Megatron-Core expert parallel groups); dp*cp/ep when etp = tp."""
        return np.asarray(np.maximum(self.tp * self.dp * self.cp / (self.ep * self.etp), 1.0))
