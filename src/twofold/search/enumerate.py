"""Every valid parallel layout for a model, a workload and a chip count, generated as arrays.

Two NumPy stages, each a broadcast over candidate axes filtered by boolean masks (no Python loop per
layout): factorisations `chips = dp * tp * pp * cp` (`FACTORISATION_RULES`), then layouts crossed
with vp, ep, etp, zero, micro-batch and recompute (`LAYOUT_RULES`); `EnumerateOptions` bounds the
axes, and each rejected candidate is charged to the first rule it breaks (`RejectionSummary`). The
rules and where each comes from (Megatron-LM, the Llama 3 paper): docs/search.md, "The rules" and
"How the space is generated". A stack whose context parallelism is all-to-all (DeepSpeed-Ulysses,
`context_parallel="all-to-all"`) adds its head rules (`ALL_TO_ALL_CP_RULES`, the rules of
`parallel.rules.all_to_all_cp_rules`) to the factorisation rules.

A model that takes only data-parallel axes (`workload.protocol.TrainingModel.parallel_axes`: an
imported graph) has one factorisation, dp = chips, crossed with `zero` (`options.zero_stages`) and
its recorded micro-batch (`fixed_micro_batch`), without recompute; of the rules, `dp_batch`,
`micro_batch` and `zero_redundant` apply. A bound fixing one of its missing axes above 1 is an
InputError naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from twofold.checks import one_of, positive_int
from twofold.errors import InputError
from twofold.hardware.types import System
from twofold.parallel.layout import RECOMPUTE_MODES, LayoutTable, TrainingWorkload
from twofold.parallel.rules import (
    DATA_PARALLEL_ONLY,
    a2a_heads_ok,
    a2a_heads_rule,
    a2a_kv_heads_ok,
    a2a_kv_heads_rule,
)
from twofold.workload.layers import CP_ALGORITHMS
from twofold.workload.model import ModelConfig
from twofold.workload.protocol import ALL_AXES, TrainingModel

__all__ = [
    "ALL_TO_ALL_CP_RULES",
    "EnumerateOptions",
    "FACTORISATION_RULES",
    "LAYOUT_RULES",
    "RejectionSummary",
    "divisors",
    "enumerate_layouts",
    "fastest_domain_chips",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class EnumerateOptions:
    """Which parts of the layout space to search (see the module docstring for each rule)."""

    zero_stages: tuple[int, ...] = (0, 1, 2, 3)
    recompute: tuple[str, ...] = RECOMPUTE_MODES
    tp_within_fastest_domain: bool = True
    uneven_pipeline: bool = True
    max_micro_batch: int | None = None  # None: up to global_batch / dp
    # Bounds (module docstring): None leaves the axis free.
    tp: int | None = None
    pp: int | None = None
    cp: int | None = None
    ep: int | None = None
    vp: int | None = None
    max_vp: int | None = None
    max_cp: int | None = None


BOUND_FIELDS = ("tp", "pp", "cp", "ep", "vp", "max_vp", "max_cp", "max_micro_batch")


@dataclass(frozen=True, kw_only=True, slots=True)
class RejectionSummary:
    """Why candidates were dropped: per rule, how many it removed (first rule broken), per stage.

    `factorisations` counts the dp*tp*pp*cp factorisations of the chip count; `rejected_factorisations`
    maps a rule to the factorisations it removed; `violations` maps a rule to the factorisations that
    break it at all (a factorisation can break several), which is what says that one rule alone
    leaves nothing. `allowed` lists, per axis, the divisors of the chip count that pass the rules
    with every other axis at 1. `candidates` counts the layouts built from the surviving factorisations and
    `rejected_layouts` the ones each layout rule removed; `valid` are those left.
    """

    chips: int
    factorisations: int
    rejected_factorisations: Mapping[str, int]
    violations: Mapping[str, int]
    rule_text: Mapping[str, str]
    allowed: Mapping[str, tuple[int, ...]]
    candidates: int
    rejected_layouts: Mapping[str, int]
    valid: int

    def explain(self) -> list[str]:
        """Plain sentences: why layouts were rejected, and why none is valid if that is so."""
        lines: list[str] = []
        n = self.factorisations
        if self.valid == 0:
            allowed = ", ".join(f"{axis} in {{{', '.join(map(str, v))}}}" for axis, v in self.allowed.items())
            most = int(np.prod([max(v, default=0) for v in self.allowed.values()]))
            lines.append(f"no valid layout on chips={self.chips}; each axis alone allows {allowed}")
            if most < self.chips:
                lines.append(
                    f"together these split the work over at most {most} chips, fewer than {self.chips}"
                )
            else:
                lines.append(f"no combination of them multiplies to {self.chips} while meeting every rule")
        for rule, count in self.rejected_factorisations.items():
            if count:
                lines.append(f"{count} of {n} factorisations rejected: {self.rule_text[rule]}")
        if self.valid == 0:
            for rule, count in self.rejected_layouts.items():
                if count:
                    lines.append(
                        f"{count} of {self.candidates} candidate layouts rejected: {self.rule_text[rule]}"
                    )
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "chips": self.chips,
            "factorisations": self.factorisations,
            "rejected_factorisations": dict(self.rejected_factorisations),
            "violations": dict(self.violations),
            "allowed": {k: list(v) for k, v in self.allowed.items()},
            "candidates": self.candidates,
            "rejected_layouts": dict(self.rejected_layouts),
            "valid": self.valid,
            "explanation": self.explain(),
        }


def divisors(n: int) -> np.ndarray:
    """Positive divisors of n, ascending, as int64."""
    if n < 1:
        return np.zeros(0, dtype=np.int64)
    small = np.arange(1, int(np.sqrt(n)) + 2, dtype=np.int64)
    small = small[(small <= n) & (n % small == 0)]
    return np.unique(np.concatenate([small, n // small]))


@dataclass(frozen=True, kw_only=True, slots=True)
class _Ctx:
    """What the rules read besides the layout arrays."""

    # A ModelConfig for the architecture rules; the data-parallel rules read no model (any
    # `workload.protocol.TrainingModel`).
    model: Any
    workload: TrainingWorkload
    options: EnumerateOptions
    fastest_domain_chips: int | None = None
    context_parallel: str = "ring"  # the stack's CP algorithm (`workload.layers.CP_ALGORITHMS`)


# A rule: (name, text for messages, mask function returning True where the candidate is valid).
Rule = tuple[str, Callable[[_Ctx], str], Callable[[Mapping[str, np.ndarray], _Ctx], np.ndarray]]


def _tp_kv_ok(a: Mapping[str, np.ndarray], c: _Ctx) -> np.ndarray:
    # tp a multiple of num_kv_heads: each rank holds a replicated key/value head (parallel.rules).
    return np.asarray((c.model.num_kv_heads % a["tp"] == 0) | (a["tp"] % c.model.num_kv_heads == 0))


def _tp_ffn_ok(a: Mapping[str, np.ndarray], c: _Ctx) -> np.ndarray:
    m = c.model
    ok = m.intermediate_size % a["tp"] == 0
    if m.is_moe:
        if m.num_shared_experts:
            ok &= m.shared_expert_intermediate_size % a["tp"] == 0
    return np.asarray(ok)


def _pp_ok(a: Mapping[str, np.ndarray], c: _Ctx) -> np.ndarray:
    if c.options.uneven_pipeline:
        return np.asarray(a["pp"] <= c.model.num_layers)
    return np.asarray(c.model.num_layers % a["pp"] == 0)


def _tp_domain_ok(a: Mapping[str, np.ndarray], c: _Ctx) -> np.ndarray:
    if c.fastest_domain_chips is None or not c.options.tp_within_fastest_domain:
        return np.ones(a["tp"].shape, dtype=bool)
    return a["tp"] <= c.fastest_domain_chips


def _seq_cp_ok(a: Mapping[str, np.ndarray], c: _Ctx) -> np.ndarray:
    return np.asarray((a["cp"] == 1) | (c.workload.seq_len % (2 * a["cp"]) == 0))


def _seq_sp_ok(a: Mapping[str, np.ndarray], c: _Ctx) -> np.ndarray:
    s = c.workload.seq_len
    return np.asarray((a["tp"] == 1) | ((s % a["cp"] == 0) & ((s // a["cp"]) % a["tp"] == 0)))


FACTORISATION_RULES: tuple[Rule, ...] = (
    (
        "tp_heads",
        lambda c: f"tp does not divide num_attention_heads={c.model.num_attention_heads}",
        lambda a, c: c.model.num_attention_heads % a["tp"] == 0,
    ),
    ("tp_kv_heads", lambda c: f"tp does not divide num_kv_heads={c.model.num_kv_heads}", _tp_kv_ok),
    ("tp_ffn", lambda c: "tp does not divide the MLP width (intermediate_size)", _tp_ffn_ok),
    (
        "tp_domain",
        lambda c: f"tp exceeds the fastest interconnect domain ({c.fastest_domain_chips} chips)",
        _tp_domain_ok,
    ),
    (
        "pp_layers",
        lambda c: (
            f"pp {'exceeds' if c.options.uneven_pipeline else 'does not divide'}"
            f" num_layers={c.model.num_layers}"
        ),
        _pp_ok,
    ),
    ("cp_seq", lambda c: f"seq_len={c.workload.seq_len} is not a multiple of 2*cp", _seq_cp_ok),
    ("sp_seq", lambda c: f"seq_len={c.workload.seq_len} / cp is not a multiple of tp", _seq_sp_ok),
    (
        "dp_batch",
        lambda c: f"global_batch={c.workload.global_batch} is not divisible by dp",
        lambda a, c: c.workload.global_batch % a["dp"] == 0,
    ),
)

# All-to-all (DeepSpeed-Ulysses) context parallelism splits the heads over tp*cp
# (`parallel.rules.all_to_all_cp_rules`); added to the factorisation rules for such a stack only.
ALL_TO_ALL_CP_RULES: tuple[Rule, ...] = (
    (
        "cp_heads",
        lambda c: a2a_heads_rule(c.model),
        lambda a, c: a2a_heads_ok(c.model.num_attention_heads, a["tp"], a["cp"]),
    ),
    (
        "cp_kv_heads",
        lambda c: a2a_kv_heads_rule(c.model),
        lambda a, c: a2a_kv_heads_ok(c.model.num_kv_heads, a["tp"], a["cp"]) | c.model.is_mla,
    ),
)

LAYOUT_RULES: tuple[Rule, ...] = (
    (
        "etp_redundant",
        lambda c: "etp = 1 with tp = 1 is the same layout as etp = tp",
        lambda a, c: (a["etp_one"] == 0) | (a["tp"] > 1),
    ),
    ("vp_needs_pp", lambda c: "vp > 1 needs pp > 1", lambda a, c: (a["vp"] == 1) | (a["pp"] > 1)),
    (
        "vp_layers",
        lambda c: f"pp*vp exceeds num_layers+2={c.model.num_layers + 2}",
        lambda a, c: a["pp"] * a["vp"] <= c.model.num_layers + 2,
    ),
    (
        "etp_width",
        lambda c: f"etp does not divide moe_intermediate_size={c.model.moe_intermediate_size}",
        lambda a, c: (c.model.moe_intermediate_size % a["etp"] == 0) if c.model.is_moe else a["etp"] > 0,
    ),
    (
        "ep_ranks",
        lambda c: "ep*etp does not divide tp*cp*dp",
        lambda a, c: (a["tp"] * a["dp"] * a["cp"]) % (a["ep"] * a["etp"]) == 0,
    ),
    (
        "micro_batch",
        lambda c: f"global_batch={c.workload.global_batch} is not divisible by dp*micro_batch",
        lambda a, c: c.workload.global_batch % (a["dp"] * a["micro_batch"]) == 0,
    ),
    (
        "interleave_microbatches",
        lambda c: "with vp > 1 the number of micro-batches is not a multiple of pp",
        lambda a, c: (
            (a["vp"] == 1) | ((c.workload.global_batch // (a["dp"] * a["micro_batch"])) % a["pp"] == 0)
        ),
    ),
    (
        "zero_redundant",
        lambda c: "zero > 0 with dp*cp = 1 is the same layout as zero 0",
        lambda a, c: (a["zero"] == 0) | (a["dp"] * a["cp"] > 1),
    ),
)


def _apply(
    rules: tuple[Rule, ...], arrays: Mapping[str, np.ndarray], ctx: _Ctx
) -> tuple[np.ndarray, dict[str, int], dict[str, int]]:
    """Keep-mask, first-broken-rule counts and any-violation counts of `rules` over `arrays`."""
    shape = np.broadcast_shapes(*(v.shape for v in arrays.values()))
    alive = np.ones(shape, dtype=bool)
    first: dict[str, int] = {}
    anyv: dict[str, int] = {}
    for name, _, ok_fn in rules:
        ok = np.broadcast_to(ok_fn(arrays, ctx), shape)
        anyv[name] = int(ok.size - np.count_nonzero(ok))
        first[name] = int(np.count_nonzero(alive & ~ok))
        alive &= ok
    return alive, first, anyv


def _check_inputs(
    model: TrainingModel, workload: TrainingWorkload, chips: object, opts: EnumerateOptions
) -> int:
    if isinstance(chips, bool) or not isinstance(chips, (int, np.integer)) or chips < 1:
        raise InputError("chips", chips, "must be a positive integer")
    if workload.global_batch < 1:
        raise InputError("global_batch", workload.global_batch, "must be a positive integer")
    if workload.seq_len < 1:
        raise InputError("seq_len", workload.seq_len, "must be a positive integer")
    bad_zero = [z for z in opts.zero_stages if z not in (0, 1, 2, 3)]
    if bad_zero or not opts.zero_stages:
        raise InputError("zero_stages", opts.zero_stages, "must be a non-empty subset of 0, 1, 2, 3")
    bad_rc = [r for r in opts.recompute if r not in RECOMPUTE_MODES]
    if bad_rc or not opts.recompute:
        raise InputError(
            "recompute", opts.recompute, f"must be a non-empty subset of {', '.join(RECOMPUTE_MODES)}"
        )
    for name in BOUND_FIELDS:
        value = getattr(opts, name)
        if value is not None:
            positive_int(name, value)
    if isinstance(model, ModelConfig) and (
        model.num_layers < 1 or model.num_attention_heads < 1 or model.num_kv_heads < 1
    ):
        raise InputError("model", model.name, "needs num_layers, num_attention_heads, num_kv_heads >= 1")
    return int(chips)


def _bounded(values: np.ndarray, fixed: int | None, most: int | None, name: str, what: str) -> np.ndarray:
    """`values` kept to the fixed one (InputError if it is not among them) and to at most `most`."""
    if fixed is not None:
        if fixed not in values:
            raise InputError(name, fixed, f"must divide {what}")
        values = values[values == fixed]
    return values if most is None else values[values <= most]


def fastest_domain_chips(system: System | None) -> int | None:
    """Chips in one domain of the innermost topology level (None when unknown or unbounded)."""
    if system is None or not system.levels:
        return None
    return system.levels[0].domain_chips


def enumerate_layouts(
    model: TrainingModel,
    workload: TrainingWorkload,
    chips: int,
    *,
    system: System | None = None,
    options: EnumerateOptions | None = None,
    context_parallel: str = "ring",
) -> tuple[LayoutTable, RejectionSummary]:
    """All valid layouts of `model` for `workload` on `chips` chips, and why the others are not.
    `context_parallel`: the stack's CP algorithm (`workload.layers.CP_ALGORITHMS`); all-to-all
    adds `ALL_TO_ALL_CP_RULES`.

    Rows are ordered by (dp, tp, pp, cp) of the factorisation, then vp, ep, zero, micro_batch,
    recompute, each ascending (recompute in RECOMPUTE_MODES order restricted to `options.recompute`).
    A model without every axis gets the layouts of its own axes (module docstring).
    """
    opts = options or EnumerateOptions()
    n = _check_inputs(model, workload, chips, opts)
    ctx = _Ctx(
        model=model,
        workload=workload,
        options=opts,
        fastest_domain_chips=fastest_domain_chips(system),
        context_parallel=one_of("context_parallel", context_parallel, CP_ALGORITHMS),
    )
    if not isinstance(model, ModelConfig) or not ALL_AXES <= model.parallel_axes:
        return _data_parallel_layouts(model, n, ctx)

    # Stage 1: ordered factorisations chips = dp * tp * pp * cp.
    d = divisors(n)
    chips_text = f"the chip count {n}"
    tp_values = _bounded(d, opts.tp, None, "tp", chips_text)
    pp_values = _bounded(d, opts.pp, None, "pp", chips_text)
    cp_values = _bounded(d, opts.cp, opts.max_cp, "cp", chips_text)
    if ctx.context_parallel == "all-to-all" and opts.cp is not None:
        _check_fixed_cp(ctx, tp_values, opts.cp)
    tp, pp, cp = (g.ravel() for g in np.meshgrid(tp_values, pp_values, cp_values, indexing="ij"))
    inner = tp * pp * cp
    keep = n % inner == 0
    tp, pp, cp = tp[keep], pp[keep], cp[keep]
    dp = n // (tp * pp * cp)
    order = np.lexsort((cp, pp, tp, dp))
    fact = {"dp": dp[order], "tp": tp[order], "pp": pp[order], "cp": cp[order]}
    f_rules = FACTORISATION_RULES + (ALL_TO_ALL_CP_RULES if ctx.context_parallel == "all-to-all" else ())
    f_alive, f_first, f_any = _apply(f_rules, fact, ctx)
    allowed = {}
    searched = {"dp": d, "tp": tp_values, "pp": pp_values, "cp": cp_values}
    for axis, values in searched.items():
        alone = {a: (values if a == axis else np.ones_like(values)) for a in searched}
        allowed[axis] = tuple(values[_apply(f_rules, alone, ctx)[0]].tolist())
    fact = {k: v[f_alive] for k, v in fact.items()}

    # Stage 2: cross the surviving factorisations with the other axes (one broadcast axis each).
    gb = workload.global_batch
    max_mb = gb if opts.max_micro_batch is None else min(gb, opts.max_micro_batch)
    axes = {
        "vp": _bounded(
            divisors(model.num_layers), opts.vp, opts.max_vp, "vp", f"num_layers={model.num_layers}"
        ),
        "ep": _bounded(
            divisors(model.num_experts) if model.is_moe else np.ones(1, dtype=np.int64),
            opts.ep,
            None,
            "ep",
            f"num_experts={model.num_experts}" if model.is_moe else f"1 ({model.name} has no experts)",
        ),
        # 0 stands for "etp = tp" (the Megatron default), 1 for etp = 1 (MoE models only).
        "etp_one": np.arange(2 if model.is_moe else 1, dtype=np.int64),
        "zero": np.asarray(sorted(set(opts.zero_stages)), dtype=np.int64),
        "micro_batch": 2 ** np.arange(max_mb.bit_length(), dtype=np.int64),
        "recompute": np.asarray(
            sorted(RECOMPUTE_MODES.index(r) for r in set(opts.recompute)), dtype=np.int64
        ),
    }
    ndim = 1 + len(axes)
    grid: dict[str, np.ndarray] = {k: v.reshape((-1,) + (1,) * (ndim - 1)) for k, v in fact.items()}
    for i, (name, values) in enumerate(axes.items(), start=1):
        shape = [1] * ndim
        shape[i] = values.size
        grid[name] = values.reshape(shape)
    grid["etp"] = np.where(grid["etp_one"] == 1, 1, grid["tp"])
    l_alive, l_first, _ = _apply(LAYOUT_RULES, grid, ctx)

    idx = np.nonzero(l_alive)
    cols: dict[str, np.ndarray] = {k: fact[k][idx[0]] for k in fact}
    for i, (name, values) in enumerate(axes.items(), start=1):
        cols[name] = values[idx[i]]
    cols["etp"] = np.where(cols.pop("etp_one") == 1, 1, cols["tp"])
    cols["sequence_parallel"] = (cols["tp"] > 1).astype(np.int64)
    table = LayoutTable(**cols)

    summary = RejectionSummary(
        chips=n,
        factorisations=int(f_alive.size),
        rejected_factorisations=f_first,
        violations=f_any,
        rule_text={name: text(ctx) for name, text, _ in (*f_rules, *LAYOUT_RULES)},
        allowed=allowed,
        candidates=int(l_alive.size),
        rejected_layouts=l_first,
        valid=len(table),
    )
    return table, summary


def _check_fixed_cp(ctx: _Ctx, tp_values: np.ndarray, cp: int) -> None:
    """A cp bound (`--cp N`) that no searched tp gives whole heads per rank under all-to-all
    context parallelism admits no layout: an InputError naming cp and the rule it breaks at the
    smallest tp (the CLI exits 2), rather than an empty search."""
    if cp == 1 or not tp_values.size:
        return
    arrays = {"tp": tp_values, "cp": np.full_like(tp_values, cp)}
    oks = [np.broadcast_to(ok(arrays, ctx), tp_values.shape) for _, _, ok in ALL_TO_ALL_CP_RULES]
    if np.logical_and.reduce(oks).any():
        return
    for (_, text, _), ok in zip(ALL_TO_ALL_CP_RULES, oks, strict=True):
        if not ok[0]:
            raise InputError("cp", cp, text(ctx))


# The rules that apply to a model replicated or sharded whole (module docstring).
_DATA_PARALLEL_RULES = ("dp_batch", "micro_batch", "zero_redundant")


def _data_parallel_layouts(model: TrainingModel, n: int, ctx: _Ctx) -> tuple[LayoutTable, RejectionSummary]:
    """dp = `n` crossed with the ZeRO stages and the model's micro-batch (module docstring)."""
    opts, gb = ctx.options, ctx.workload.global_batch
    for name in ("tp", "pp", "cp", "ep", "vp"):
        value = getattr(opts, name)
        if value is not None and value != 1 and name not in model.parallel_axes:
            raise InputError(name, value, DATA_PARALLEL_ONLY)
    mb = model.fixed_micro_batch
    max_mb = gb if opts.max_micro_batch is None else min(gb, opts.max_micro_batch)
    micro = np.asarray([mb]) if mb is not None else 2 ** np.arange(max_mb.bit_length(), dtype=np.int64)
    zero = np.asarray(sorted(set(opts.zero_stages)), dtype=np.int64)
    z, m = (g.ravel() for g in np.meshgrid(zero, micro, indexing="ij"))
    one = np.ones_like(z)
    grid = {"dp": one * n, "tp": one, "pp": one, "cp": one, "vp": one, "ep": one, "zero": z, "micro_batch": m}
    rules = tuple(r for r in (*FACTORISATION_RULES, *LAYOUT_RULES) if r[0] in _DATA_PARALLEL_RULES)
    alive, first, _ = _apply(rules, grid, ctx)
    cols = {k: v[alive] for k, v in grid.items()}
    cols["recompute"] = np.zeros_like(cols["dp"])
    cols["sequence_parallel"] = np.zeros_like(cols["dp"])
    table = LayoutTable(**cols)
    split = int(gb % n != 0)  # the one factorisation, dp = n, rejected by dp_batch
    summary = RejectionSummary(
        chips=n,
        factorisations=1,
        rejected_factorisations={"dp_batch": split},
        violations={"dp_batch": split},
        rule_text={name: text(ctx) for name, text, _ in rules},
        allowed={"dp": () if split else (n,), "tp": (1,), "pp": (1,), "cp": (1,)},
        candidates=int(alive.size),
        rejected_layouts={k: v for k, v in first.items() if k != "dp_batch"},
        valid=len(table),
    )
    return table, summary
