"""Validity rules of a parallel layout, vectorised over a `LayoutTable`, and `check_layout` for one.

Each rule is a (field, rule text, mask) triple evaluated over arrays, so the single-layout check and
any vectorised filter share one definition. Megatron-LM is the reference implementation for the
rules on tp/pp/vp/cp/ep (its asserts in `megatron/core/parallel_state.py`,
`megatron/core/transformer/attention.py` and the interleaved 1F1B schedule):

- tp divides num_attention_heads and the MLP widths; tp divides num_kv_heads (whole query groups per
  rank) or is a multiple of it (each rank holds a replica of one key/value head, as Megatron-LM
  and vLLM do; `workload.layers` prices the replication).
- pp * vp <= num_layers + 2: stages may hold unequal layer counts (the estimator charges the
  largest stage, ceil(num_layers / (pp * vp)) layers per virtual chunk, as Llama 3 405B ran 126
  layers on pp=16; Megatron-Core allows uneven interleaved splits with `--decoder-first/last-
  pipeline-num-layers`). Megatron-Core's `--account-for-embedding-in-pipeline-split` and
  `--account-for-loss-in-pipeline-split` count the embedding and the loss as one layer each of the
  first and last virtual chunk, so up to num_layers + 2 chunks get work (NVIDIA's Llama 3.1 405B
  recipe: 126 layers on pp=16 x vp=8 = 128 chunks, one layer each, the embedding and the loss
  alone in the first and last); the estimator then charges one layer per chunk. With vp > 1 the
  micro-batch count must be a multiple of pp (the interleaved 1F1B schedule).
- cp > 1 needs seq_len to be a multiple of 2 * cp (load-balanced causal ring attention); with
  sequence parallelism (tp > 1) seq_len / cp must be a multiple of tp. All-to-all context
  parallelism (DeepSpeed-Ulysses, a stack's `context_parallel: all-to-all`; `check_layout(...,
  context_parallel=)`) splits the attention heads over the cp ranks as tensor parallelism does
  over tp: tp * cp divides num_attention_heads, and cp divides, or is a multiple of, the key/value
  heads of a TP rank (max(num_kv_heads / tp, 1); a multiple: the heads are replicated so that
  every rank receives one, DeepSpeed's `UlyssesSPAttentionHF`). The search applies the same rules
  (`search.enumerate`).
- ep divides num_experts, and ep * etp divides tp * cp * dp: Megatron-Core refolds a pipeline
  stage's tp*cp*dp ranks into etp x ep x edp for the MoE layers (`megatron/core/parallel_state.py`,
  the expert rank generator; `--expert-tensor-parallel-size`, default tp). etp = tp (the default)
  gives Megatron's "ep divides dp * cp"; etp = 1 lets ep span the TP ranks too (the recipes of
  Qwen3-235B on H100 tp 2 ep 32, DeepSeek-V3 ep 64). The estimator models etp = tp and etp = 1
  (expert GEMMs split over the whole TP group, or not at all), so other values are rejected; etp
  divides the routed-expert width. Dense models need ep = 1 and etp = tp.
- global_batch is a multiple of dp * micro_batch (whole micro-batches per step, gradient accumulation
  over global_batch / (dp * micro_batch) of them).

A model that takes fewer axes (`workload.protocol.TrainingModel.parallel_axes`: an imported graph
takes dp, ZeRO and hybrid sharding only) keeps every other axis at 1 (recompute at none, etp at
tp), and its micro-batch and sequence length at the ones its operators were recorded with
(`fixed_micro_batch`, `fixed_seq_len`); the architecture rules above apply to catalog models.

Not a layout rule but checked with them (`check_context_length`, called by `estimate_training` and
`plan_training`): seq_len is at most the model's `max_position_embeddings`, the context it was
trained for, unless the caller allows a longer one (`allow_long_context`, `--allow-long-context`:
continued pretraining with RoPE scaling). Without the check, `--seq-len 1000000000` priced a step
of 0 tokens/s and 21,991,113 GiB per chip instead of saying the question was off the model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from twofold.checks import one_of, positive_int
from twofold.errors import InputError
from twofold.parallel.layout import RECOMPUTE_MODES, Layout, LayoutTable, TrainingWorkload
from twofold.workload.graph import A2A_CP
from twofold.workload.layers import CP_ALGORITHMS
from twofold.workload.model import ModelConfig
from twofold.workload.protocol import TrainingModel

__all__ = [
    "DATA_PARALLEL_ONLY",
    "a2a_heads_ok",
    "a2a_heads_rule",
    "a2a_kv_heads_ok",
    "a2a_kv_heads_rule",
    "all_to_all_cp_rules",
    "check_context_length",
    "check_layout",
    "layout_violations",
    "valid_mask",
]

# Why an imported model refuses a model-parallel axis (`workload.protocol`).
DATA_PARALLEL_ONLY = "imported models support data parallel and ZeRO/FSDP layouts only"
# Axes a model may not take, with the value a layout must then keep (etp: equal to tp).
_AXIS_DEFAULTS: tuple[tuple[str, int | None], ...] = (
    ("tp", 1), ("pp", 1), ("vp", 1), ("cp", 1), ("ep", 1), ("etp", None), ("recompute", 0)
)  # fmt: skip

Cols = dict[str, np.ndarray]
# (field named in the message, rule text, ok-mask over the columns)
_Rule = tuple[str, str, Callable[[Cols], np.ndarray]]


def _rules(
    model: TrainingModel, workload: TrainingWorkload, chips: int | None, context_parallel: str = "ring"
) -> list[_Rule]:
    gb = workload.global_batch
    rules: list[_Rule] = [
        *(
            (name, "must be a positive integer", (lambda c, n=name: c[n] >= 1))
            for name in ("dp", "tp", "pp", "vp", "cp", "ep", "etp", "micro_batch")
        ),
        ("zero", "must be one of 0, 1, 2, 3", lambda c: (c["zero"] >= 0) & (c["zero"] <= 3)),
        (
            "recompute",
            f"must be one of {', '.join(RECOMPUTE_MODES)}",
            lambda c: (c["recompute"] >= 0) & (c["recompute"] < len(RECOMPUTE_MODES)),
        ),
    ]
    if chips is not None:
        rules.append(
            (
                "dp",
                f"dp*tp*pp*cp must equal chips={chips}",
                lambda c: c["dp"] * c["tp"] * c["pp"] * c["cp"] == chips,
            )
        )
    if isinstance(model, ModelConfig):
        rules += _architecture_rules(model, workload)
        if one_of("context_parallel", context_parallel, CP_ALGORITHMS) == "all-to-all":
            rules += all_to_all_cp_rules(model)
    else:
        rules += _fixed_rules(model, workload)
    rules += [
        (
            "global_batch",
            "is not divisible by dp*micro_batch",
            lambda c: gb % (c["dp"] * c["micro_batch"]) == 0,
        ),
        (
            "vp",
            "with vp > 1 the number of micro-batches global_batch/(dp*micro_batch) must be a multiple of pp",
            lambda c: (c["vp"] == 1) | ((gb // (c["dp"] * c["micro_batch"])) % c["pp"] == 0),
        ),
    ]
    return rules


def _fixed_rules(model: TrainingModel, workload: TrainingWorkload) -> list[_Rule]:
    """A model with fewer axes: the others at their default, the recorded micro-batch and sequence
    length kept (module docstring)."""
    rules: list[_Rule] = []
    for axis, default in _AXIS_DEFAULTS:
        if axis in model.parallel_axes:
            continue
        if default is None:  # etp: equal to tp
            rules.append((axis, DATA_PARALLEL_ONLY, lambda c: c["etp"] == c["tp"]))
        elif axis == "recompute":
            rules.append(
                (axis, f"{model.name} is estimated without recompute", lambda c: c["recompute"] == 0)
            )
        else:
            rules.append((axis, DATA_PARALLEL_ONLY, _at(axis, default)))
    mb = model.fixed_micro_batch
    if mb is not None:
        rule = f"must equal the batch {model.name} was imported with ({mb}); re-import to change it"
        rules.append(("micro_batch", rule, lambda c: c["micro_batch"] == mb))
    seq = model.fixed_seq_len
    s = workload.seq_len
    if seq is not None:
        rules.append(
            (
                "seq_len",
                f"must equal the imported sequence length {seq}",
                lambda c: np.full_like(c["dp"], s == seq, dtype=bool),
            )
        )
    return rules


def _at(axis: str, value: int) -> Callable[[Cols], np.ndarray]:
    """The mask of rows whose `axis` column equals `value`."""
    return lambda c: c[axis] == value


def _architecture_rules(m: ModelConfig, workload: TrainingWorkload) -> list[_Rule]:
    """The rules of a catalog architecture's model-parallel axes (module docstring)."""
    s = workload.seq_len
    rules: list[_Rule] = []
    widths = [("intermediate_size", m.intermediate_size)]
    if m.is_moe:
        if m.num_shared_experts:
            widths.append(("shared_expert_intermediate_size", m.shared_expert_intermediate_size))
    rules += [
        (
            "tp",
            f"does not divide num_attention_heads={m.num_attention_heads}",
            lambda c: m.num_attention_heads % c["tp"] == 0,
        ),
        (
            "tp",
            f"neither divides nor is a multiple of num_kv_heads={m.num_kv_heads}",
            lambda c: (m.num_kv_heads % c["tp"] == 0) | (c["tp"] % m.num_kv_heads == 0),
        ),
        *(
            ("tp", f"does not divide {name}={w}", (lambda c, w=w: w % c["tp"] == 0))
            for name, w in widths
            if w > 0
        ),
        ("pp", f"exceeds num_layers={m.num_layers}", lambda c: c["pp"] <= m.num_layers),
        (
            "vp",
            "vp > 1 needs pp > 1 (interleaving needs a pipeline)",
            lambda c: (c["vp"] == 1) | (c["pp"] > 1),
        ),
        (
            "vp",
            f"pp*vp exceeds num_layers+2={m.num_layers + 2} (embedding and loss counted as layers)",
            lambda c: c["pp"] * c["vp"] <= m.num_layers + 2,
        ),
        ("cp", f"seq_len={s} is not a multiple of 2*cp", lambda c: (c["cp"] == 1) | (s % (2 * c["cp"]) == 0)),
        (
            "tp",
            f"with sequence parallelism seq_len/cp (seq_len={s}) must be a multiple of tp",
            lambda c: (
                (c["tp"] == 1)
                | (c["sequence_parallel"] == 0)
                | ((s % c["cp"] == 0) & ((s // c["cp"]) % c["tp"] == 0))
            ),
        ),
    ]
    if m.is_moe:
        rules.append(
            ("ep", f"does not divide num_experts={m.num_experts}", lambda c: m.num_experts % c["ep"] == 0)
        )
        rules.append(("etp", "must be 1 or tp", lambda c: (c["etp"] == 1) | (c["etp"] == c["tp"])))
        rules.append(
            (
                "etp",
                f"does not divide moe_intermediate_size={m.moe_intermediate_size}",
                lambda c: m.moe_intermediate_size % c["etp"] == 0,
            )
        )
        rules.append(
            (
                "ep",
                "ep*etp does not divide tp*cp*dp",
                lambda c: (c["tp"] * c["dp"] * c["cp"]) % (c["ep"] * c["etp"]) == 0,
            )
        )
    else:
        rules.append(("ep", f"must be 1: {m.name} has no experts", lambda c: c["ep"] == 1))
        rules.append(("etp", f"must equal tp: {m.name} has no experts", lambda c: c["etp"] == c["tp"]))
    return rules


def all_to_all_cp_rules(m: ModelConfig) -> list[_Rule]:
    """The head rules of all-to-all (DeepSpeed-Ulysses) context parallelism (module docstring)."""
    heads, kv = m.num_attention_heads, m.num_kv_heads
    rules: list[_Rule] = [
        ("cp", a2a_heads_rule(m), lambda c: a2a_heads_ok(heads, c["tp"], c["cp"])),
    ]
    if not m.is_mla:
        rules.append(("cp", a2a_kv_heads_rule(m), lambda c: a2a_kv_heads_ok(kv, c["tp"], c["cp"])))
    return rules


def a2a_heads_rule(m: ModelConfig) -> str:
    return f"{A2A_CP}: tp*cp does not divide num_attention_heads={m.num_attention_heads}"


def a2a_kv_heads_rule(m: ModelConfig) -> str:
    return (
        f"{A2A_CP}: cp neither divides nor is a multiple of max(num_kv_heads/tp, 1)"
        f" (num_kv_heads={m.num_kv_heads})"
    )


def a2a_heads_ok(heads: int, tp: np.ndarray, cp: np.ndarray) -> np.ndarray:
    """All-to-all context parallelism: tp * cp divides the attention heads (module docstring)."""
    return np.asarray((cp == 1) | (heads % (tp * cp) == 0))


def a2a_kv_heads_ok(kv_heads: int, tp: np.ndarray, cp: np.ndarray) -> np.ndarray:
    """All-to-all context parallelism: cp divides the key/value heads of a TP rank or is a multiple
    of them (module docstring)."""
    per_rank = np.maximum(kv_heads // tp, 1)
    return np.asarray((cp == 1) | (per_rank % cp == 0) | (cp % per_rank == 0))


def _raw(table: LayoutTable) -> Cols:
    cols = {
        name: np.asarray(getattr(table, name), dtype=np.int64)
        for name in table.__dataclass_fields__
        if name not in ("etp", "shard")
    }
    cols["etp"] = np.asarray(table.expert_tp, dtype=np.int64) * np.ones_like(cols["tp"])
    cols["shard"] = cols["dp"] if table.shard is None else np.asarray(table.shard, dtype=np.int64)
    return cols


def _cols(table: LayoutTable) -> Cols:
    # Guard the divisions inside later rules against zeros that earlier rules already reject.
    cols = _raw(table)
    for name in ("dp", "tp", "pp", "vp", "cp", "ep", "etp", "micro_batch"):
        cols[name] = np.maximum(cols[name], 1)
    return cols


def layout_violations(
    model: TrainingModel,
    table: LayoutTable,
    workload: TrainingWorkload,
    chips: int | None = None,
    *,
    context_parallel: str = "ring",
) -> list[tuple[str, str, np.ndarray]]:
    """Every rule with the rows that break it: (field, rule text, bool mask of violating rows).
    `context_parallel`: the stack's CP algorithm (`workload.layers.CP_ALGORITHMS`; all-to-all
    adds its head rules)."""
    positive_int("global_batch", workload.global_batch)
    positive_int("seq_len", workload.seq_len)
    raw = _raw(table)
    cols = _cols(table)
    out = []
    for field, text, ok in _rules(model, workload, chips, context_parallel):
        use = raw if text == "must be a positive integer" else cols
        out.append((field, text, ~np.broadcast_to(ok(use), raw["dp"].shape)))
    return out


def valid_mask(
    model: TrainingModel,
    table: LayoutTable,
    workload: TrainingWorkload,
    chips: int | None = None,
    *,
    context_parallel: str = "ring",
) -> np.ndarray:
    """True for the rows of `table` that break no rule (`layout_violations`)."""
    bad = np.zeros(len(table), dtype=bool)
    for _, _, mask in layout_violations(model, table, workload, chips, context_parallel=context_parallel):
        bad |= mask
    return ~bad


def check_layout(
    model: TrainingModel,
    layout: Layout,
    workload: TrainingWorkload,
    chips: int | None = None,
    *,
    context_parallel: str = "ring",
) -> None:
    """Raise `InputError(field, value, rule)` for the first rule `layout` breaks (see module doc).
    `context_parallel`: the stack's CP algorithm (all-to-all adds its head rules)."""
    one_of("recompute", layout.recompute, RECOMPUTE_MODES)
    if layout.shard is not None:
        if layout.shard < 1 or layout.dp % layout.shard:
            raise InputError("shard", layout.shard, f"must divide dp={layout.dp} (hybrid sharding groups)")
        if layout.zero != 3:
            raise InputError("shard", layout.shard, f"hybrid sharding needs zero=3 (got zero={layout.zero})")
    table = LayoutTable.from_layouts([layout])
    for field, text, mask in layout_violations(
        model, table, workload, chips, context_parallel=context_parallel
    ):
        if mask[0]:
            value = getattr(layout, field, None)
            if field == "etp":
                value = layout.expert_tp
            if field == "global_batch":
                value = workload.global_batch
            if field == "seq_len":
                value = workload.seq_len
            raise InputError(field, value, text)


def check_context_length(model: TrainingModel, seq_len: int, *, allow_long_context: bool = False) -> None:
    """`InputError` for a `seq_len` past the model's `max_position_embeddings` (module docstring),
    unless `allow_long_context`; learned position tables are never extended (`workload.graph`).
    A model without an architecture (an imported graph) has its own sequence length (`_fixed_rules`)."""
    if not isinstance(model, ModelConfig):
        return
    limit = model.max_position_embeddings
    if seq_len > limit and not allow_long_context:
        raise InputError(
            "seq_len",
            seq_len,
            f"exceeds max_position_embeddings={limit} of {model.name}; "
            "--allow-long-context (allow_long_context=True) prices a context-extended model anyway",
        )
