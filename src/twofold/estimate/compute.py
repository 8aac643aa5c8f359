"""Per-micro-batch compute time of a layout's pipeline stage, from the single-chip cost model.

The per-chip operator graph of one micro-batch (`workload.graph.training_ops`) depends only on
(tp, cp, ep, etp, micro_batch, sequence_parallel) for a given model, sequence length, precision
and context-parallel algorithm (the stack's, one per call: ring or all-to-all,
`workload.layers.CP_ALGORITHMS`; recompute reruns a subset of its forward ops), so it is built and
priced once per distinct combination (`np.unique` over those columns) and broadcast to every layout
that shares it; all distinct combinations are priced in a single `cost.op_time_terms` call.
Optimizer time is linear in the parameters a chip updates (the roofline of a memory-bound
elementwise op plus a fixed overhead), so it is priced at two sizes and interpolated.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from twofold.cost import op_time_terms, op_times_s
from twofold.cost.profile import CalibrationProfile
from twofold.hardware.types import Chip
from twofold.parallel.arrays import LayoutArrays
from twofold.workload.finetune import Finetune
from twofold.workload.graph import optimizer_ops, training_ops
from twofold.workload.model import ModelConfig
from twofold.workload.ops import Op

__all__ = ["ComputeTimes", "compute_times", "optimizer_time_s"]

# Categories an op's time is summed into (columns of the per-combination matrix).
_CATEGORIES = (
    "layers_forward",
    "layers_backward",
    "first_forward",
    "first_backward",
    "last_forward",
    "last_backward",
    "attention_forward",
    "attention_backward",
    "core_forward",
)
_INDEX = {name: i for i, name in enumerate(_CATEGORIES)}


@dataclass(frozen=True, kw_only=True, slots=True)
class ComputeTimes:
    """Seconds per micro-batch per chip, one entry per layout.

    layers_*: all the model's layers (scale by stage layers / num_layers for a stage); the
    recompute time is what `training_ops` reruns: every layer forward op (full) or the attention
    core's forward (selective, the `layer.attn.core*` ops). first_*: the ops before the layers
    (embedding); last_*: after them (final norm, LM head, loss). attention_*: the attention kernels
    of one (average) layer, the window ring attention overlaps with.
    """

    layers_forward: np.ndarray
    layers_backward: np.ndarray
    layers_recompute: np.ndarray
    first_forward: np.ndarray
    first_backward: np.ndarray
    last_forward: np.ndarray
    last_backward: np.ndarray
    attention_forward: np.ndarray
    attention_backward: np.ndarray
    # Of one micro-batch of the whole model (every layer, the ends, the recompute): the compute
    # roofline time and the roofline time (no per-op overhead) over the op time (`compare.factors`).
    compute_share: np.ndarray
    roofline_share: np.ndarray


@lru_cache(maxsize=4096)
def _ops(
    model: ModelConfig,
    micro_batch: int,
    seq_len: int,
    precision: str,
    tp: int,
    cp: int,
    ep: int,
    sp: bool,
    etp: int | None = None,
    finetune: Finetune | None = None,
    context_parallel: str = "ring",
) -> tuple[tuple[Op, ...], tuple[int, ...], tuple[int, ...]]:
    """The forward+backward ops of one combination (no recompute: it is derived from the forward
    ops), with each op's category and attention category (-1: none)."""
    ops = training_ops(
        model,
        micro_batch=micro_batch,
        seq_len=seq_len,
        precision=precision,
        recompute="none",
        tp=tp,
        cp=cp,
        ep=ep,
        etp=etp,
        sequence_parallel=sp,
        finetune=finetune,
        context_parallel=context_parallel,
    )
    cats, extra = [], []
    for op in ops:
        bwd = op.phase == "backward"
        if op.name.startswith("layer."):
            cats.append(_INDEX["layers_backward" if bwd else "layers_forward"])
        else:
            side = "first" if op.name.startswith("embedding") else "last"
            cats.append(_INDEX[f"{side}_{'backward' if bwd else 'forward'}"])
        if op.kind == "attention" and op.name.startswith("layer."):
            extra.append(_INDEX["attention_backward" if bwd else "attention_forward"])
        else:
            extra.append(-1)
    return ops, tuple(cats), tuple(extra)


def compute_times(
    model: ModelConfig,
    chip: Chip,
    lay: LayoutArrays,
    *,
    seq_len: int,
    precision: str,
    profile: CalibrationProfile | None = None,
    finetune: Finetune | None = None,
    context_parallel: str = "ring",
) -> ComputeTimes:
    """Price every distinct (tp, cp, ep, micro_batch, sp, etp) combination of `lay` once.
    `finetune`: LoRA/QLoRA ops (`workload.finetune`) instead of full training's. `context_parallel`:
    how attention runs when cp > 1 (the stack's `context_parallel`, `workload.graph.forward_ops`)."""
    cols = [lay.tp, lay.cp, lay.ep, lay.micro_batch, lay.sp.astype(float), lay.etp]
    keys = np.stack([np.asarray(c, dtype=np.int64).reshape(-1) for c in cols])
    # One int64 per row (mixed radix over the columns' ranges), then a 1-D unique: the same
    # combinations in the same (lexicographic) order as np.unique(axis=0), ~20x faster.
    dims = tuple(int(k.max()) + 1 for k in keys) if keys.shape[1] else (1,) * len(cols)
    packed = np.ravel_multi_index(tuple(keys), dims)
    flat, inverse = np.unique(packed, return_inverse=True)
    combos = np.stack(np.unravel_index(flat, dims), axis=1)
    inverse = inverse.reshape(-1)
    all_ops: list[Op] = []
    seg: list[np.ndarray] = []
    cat: list[tuple[int, ...]] = []
    attn: list[tuple[int, ...]] = []
    core: list[bool] = []
    for i, (tp, cp, ep, mb, sp, etp) in enumerate(combos.tolist()):
        ops, cats, extra = _ops(
            model, mb, seq_len, precision, tp, cp, ep, bool(sp), etp, finetune, context_parallel
        )
        all_ops.extend(ops)
        seg.append(np.full(len(ops), i))
        cat.append(cats)
        attn.append(extra)
        # Selective recompute reruns these forward ops (see `workload.graph.training_ops`).
        core.extend(op.phase == "forward" and op.name.startswith("layer.attn.core") for op in ops)
    priced = op_time_terms(all_ops, chip, profile)
    op_counts = np.array([op.count for op in all_ops], dtype=float)
    times = priced.time_s * op_counts
    seg_a = np.concatenate(seg)
    cat_a = np.fromiter((c for cs in cat for c in cs), dtype=np.int64, count=len(all_ops))
    attn_a = np.fromiter((c for cs in attn for c in cs), dtype=np.int64, count=len(all_ops))
    core_a = np.asarray(core, dtype=bool)
    n_cat = len(_CATEGORIES)
    size = len(combos) * n_cat
    has = attn_a >= 0
    core_at = seg_a[core_a] * n_cat + _INDEX["core_forward"]

    def tabulate(seconds: np.ndarray) -> dict[str, np.ndarray]:
        """Per layout and category (`_CATEGORIES`): `seconds` (one per op) summed over a micro-batch."""
        t = np.bincount(seg_a * n_cat + cat_a, weights=seconds, minlength=size)
        t += np.bincount(seg_a[has] * n_cat + attn_a[has], weights=seconds[has], minlength=size)
        t += np.bincount(core_at, weights=seconds[core_a], minlength=size)
        t = t.reshape(len(combos), n_cat)[inverse]
        return {name: t[:, i] for i, name in enumerate(_CATEGORIES)}

    rc = lay.recompute

    def rerun(c: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(np.where(rc == 2, c["layers_forward"], np.where(rc == 1, c["core_forward"], 0.0)))

    def whole(c: dict[str, np.ndarray]) -> np.ndarray:
        """One micro-batch of the whole model: every layer, the ends and the recompute."""
        ends = sum(c[n] for n in _CATEGORIES if n.startswith(("first_", "last_")))
        return np.asarray(c["layers_forward"] + c["layers_backward"] + rerun(c) + ends)

    col = tabulate(times)
    layers = max(model.num_layers, 1)
    recompute = rerun(col)
    op_total = whole(col)
    compute_share = whole(tabulate(priced.compute_s * op_counts)) / op_total
    roofline_share = whole(tabulate(np.maximum(priced.compute_s, priced.memory_s) * op_counts)) / op_total
    return ComputeTimes(
        layers_forward=col["layers_forward"],
        layers_backward=col["layers_backward"],
        layers_recompute=recompute,
        first_forward=col["first_forward"],
        first_backward=col["first_backward"],
        last_forward=col["last_forward"],
        last_backward=col["last_backward"],
        attention_forward=col["attention_forward"] / layers,
        attention_backward=col["attention_backward"] / layers,
        compute_share=compute_share,
        roofline_share=roofline_share,
    )


def optimizer_time_s(
    num_params: np.ndarray, chip: Chip, precision: str, profile: CalibrationProfile | None = None
) -> np.ndarray:
    """AdamW step time for `num_params` parameters per chip: a + b * n, with a and b from pricing
    `optimizer_ops` at 0 and 1e9 parameters (exact for the roofline, which is linear in the bytes
    and FLOPs of the op plus a fixed per-op overhead)."""
    ref = 1e9
    ops = [*optimizer_ops(0.0, precision), *optimizer_ops(ref, precision)]
    t = op_times_s(ops, chip, profile)
    half = len(ops) // 2
    a, b = float(t[:half].sum()), float((t[half:].sum() - t[:half].sum()) / ref)
    return a + b * np.asarray(num_params, dtype=float)
