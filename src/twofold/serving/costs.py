"""Step costs of the serving simulation: tables of `estimate.inference`'s own prefill and decode
figures over batch and length, interpolated (so that a step costs microseconds to price, and the
simulation prices every step as `estimate_inference` would).

- decode step: the TPOT of `evaluate_batches` at batch b and decode context c (one token per
  sequence attending to c keys), on a grid of b (powers of two times ep, and `max_batch`) and c
  (geometric, plus the exact lengths asked for). Between grid points it is linear in c (attention
  and the KV read are affine in the context) and in b (the GEMMs' rows and the KV read are
  affine in the batch while no operator changes bound).
- prefill step: the TTFT of k prompts of n tokens, on a grid of k and n, bilinear likewise.
- mixed step (chunked prefill, Sarathi-Serve, Agrawal et al., OSDI 2024, arXiv 2403.02310): the
  prefill of the chunk plus the decode step, less one step's weight read and launches (a fused step
  reads the weights once): max(P + D - floor, P, D) with floor = the decode step at batch 1 and
  the shortest context.
Left out: a decode step whose sequences differ in length is priced at their mean context (exact
for the KV read, which is linear in the total); prefix-cache hits shorten the prompt computed but
the attention over the cached part is not charged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from twofold.cost.calibration import TrainingCalibration
from twofold.cost.profile import CalibrationProfile
from twofold.estimate.inference import evaluate_batches
from twofold.estimate.inference_types import InferenceLayout, InferenceWorkload
from twofold.hardware.types import Chip, System
from twofold.workload.model import ModelConfig

__all__ = ["StepCosts", "step_costs"]


def _grid(top: int, extra: tuple[int, ...], points: int, start: int = 1) -> np.ndarray:
    top = max(int(top), start)
    geo = np.geomspace(start, top, num=max(points, 2)).round().astype(int)
    return np.unique(np.r_[geo, [e for e in extra if start <= e <= top], top]).astype(float)


def _batch_grid(max_batch: int, ep: int) -> np.ndarray:
    powers = [1 << i for i in range(max_batch.bit_length()) if (1 << i) <= max_batch]
    return np.unique(np.r_[powers, max_batch]).astype(float) * ep


def _lerp_rows(grid: np.ndarray, table: np.ndarray, x: float) -> np.ndarray:
    """The table's row at `x` (linear between the rows of `grid`, extrapolated past its ends)."""
    j = int(np.clip(np.searchsorted(grid, x) - 1, 0, len(grid) - 2)) if len(grid) > 1 else 0
    if len(grid) == 1:
        return table[0]
    w = (x - grid[j]) / (grid[j + 1] - grid[j])
    return table[j] + w * (table[j + 1] - table[j])


@dataclass(kw_only=True, slots=True)
class StepCosts:
    """Seconds of one step of one replica, from tables (module docstring). Sizes are per replica
    (batch counts sequences, with ep folded in)."""

    decode_batches: np.ndarray
    decode_contexts: np.ndarray
    decode_s: np.ndarray  # [batch, context]
    prefill_batches: np.ndarray
    prefill_lengths: np.ndarray
    prefill_s: np.ndarray  # [batch, length]
    kv_capacity_tokens: int
    _rows: dict[float, np.ndarray] = field(default_factory=dict, repr=False)
    _cols: dict[float, np.ndarray] = field(default_factory=dict, repr=False)

    def decode_row(self, batch: float) -> np.ndarray:
        """Decode step seconds at `batch` over the context grid (cached per batch)."""
        row = self._rows.get(batch)
        if row is None:
            row = _lerp_rows(self.decode_batches, self.decode_s, max(batch, float(self.decode_batches[0])))
            self._rows[batch] = row
        return row

    def decode(self, batch: float, contexts: np.ndarray | float) -> np.ndarray:
        """Decode step seconds at `batch` for each context of `contexts` (linear, clamped at the grid)."""
        return np.interp(contexts, self.decode_contexts, self.decode_row(batch))

    def prefill(self, batch: float, length: float) -> float:
        """Seconds to prefill `batch` prompts of `length` tokens each (fewer prompts than the ep groups
        cost what ep prompts cost: the idle groups wait)."""
        col = self._cols.get(batch)
        if col is None:
            col = _lerp_rows(self.prefill_batches, self.prefill_s, max(batch, float(self.prefill_batches[0])))
            self._cols[batch] = col
        return float(np.interp(length, self.prefill_lengths, col))

    def mixed(self, chunk_tokens: float, batch: float, context: float) -> float:
        """A chunked-prefill step: `chunk_tokens` of prompt beside `batch` decoding sequences."""
        p = self.prefill(1.0, chunk_tokens) if chunk_tokens > 0 else 0.0
        if batch <= 0:
            return p
        d = float(self.decode(batch, context))
        floor = float(self.decode_s[0, 0])
        return max(p + d - floor, p, d) if p > 0 else d


def step_costs(
    model: ModelConfig,
    system: System,
    layout: InferenceLayout,
    workload: InferenceWorkload,
    *,
    max_batch: int,
    max_context: int,
    max_prompt: int,
    exact_contexts: tuple[int, ...] = (),
    exact_prompts: tuple[int, ...] = (),
    chip: Chip | None = None,
    profile: CalibrationProfile | None = None,
    calibration: TrainingCalibration | None = None,
    kv_capacity_tokens: int = 0,
) -> StepCosts:
    """The tables for one replica of `layout` (`workload` gives the precisions; its shape is not used).
    Batches are per replica and multiples of ep."""
    one = replace(layout, dp=1)
    kw: dict[str, Any] = dict(chip=chip, profile=profile, calibration=calibration)
    batches = _batch_grid(max_batch, layout.ep)
    contexts = _grid(max_context, exact_contexts, 10, start=2)
    decode = np.empty((len(batches), len(contexts)))
    for j, c in enumerate(contexts):
        # decode_context_len = input + max(1, ceil(output/2)) = (c - 1) + 1 with output 2.
        w = replace(workload, batch=int(batches[0]), input_tokens=int(c) - 1, output_tokens=2)
        decode[:, j] = evaluate_batches(model, system, one, w, batches, **kw)["tpot_s"]
    prompts = _grid(max_prompt, exact_prompts, 10, start=16)
    prompts = np.unique(np.r_[1.0, prompts])
    pbatches = batches
    prefill = np.empty((len(pbatches), len(prompts)))
    for j, n in enumerate(prompts):
        w = replace(workload, batch=int(pbatches[0]), input_tokens=int(n), output_tokens=1)
        prefill[:, j] = evaluate_batches(model, system, one, w, pbatches, **kw)["ttft_s"]
    return StepCosts(
        decode_batches=batches,
        decode_contexts=contexts,
        decode_s=decode,
        prefill_batches=pbatches,
        prefill_lengths=prompts,
        prefill_s=prefill,
        kv_capacity_tokens=int(kv_capacity_tokens),
    )
