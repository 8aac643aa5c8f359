"""Operator fusion of a traced model: what a fusing compiler would run instead of the eager kernels.

Two passes over a trace's ops (`TracedOp`) in execution order: horizontal fusion of sibling GEMMs
that share their left operand (q/k/v -> qkv), and one op per maximal chain of memory-bound ops
between two compute ops (intermediates never reach HBM). Ops marked `fusible=False` (a custom
`torch.autograd.Function`) stay as traced. Both keep total FLOPs and never increase total bytes.
Why (torch.compile, XLA, the Neuron compiler), the byte rules and what is left out:
docs/bring-your-own-model.md, "The two passes in full".
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace

from twofold.workload.ops import Op

__all__ = ["FUSIBLE_KINDS", "TensorRef", "TracedOp", "fuse_trace", "fuse_memory_chains", "fuse_sibling_gemms"]

FUSIBLE_KINDS: frozenset[str] = frozenset({"elementwise", "norm", "softmax", "loss"})
# How far ahead (ops) to look for a sibling GEMM: q/k/v and gate/up sit within a few dozen ops.
SIBLING_WINDOW = 64


@dataclass(frozen=True, kw_only=True, slots=True)
class TensorRef:
    """One tensor an op reads or writes: the buffer (storage) it lives in, which view of it, the
    bytes this access moves and the bytes of the whole buffer (both in the priced precision)."""

    buffer: Hashable
    view: Hashable
    nbytes: float
    buffer_nbytes: float


@dataclass(frozen=True, kw_only=True, slots=True)
class TracedOp:
    """An op of one execution (count 1) with the tensors it read and wrote; `fusible` False keeps
    it out of both passes (module docstring)."""

    op: Op
    inputs: tuple[TensorRef, ...] = ()
    outputs: tuple[TensorRef, ...] = ()
    fusible: bool = True


def _is_compute(op: Op) -> bool:
    return op.kind not in FUSIBLE_KINDS


def _alone(t: TracedOp) -> bool:
    """An op that forms its own group: a compute op, or one kept as traced."""
    return _is_compute(t.op) or not t.fusible


def _operand(t: TracedOp, side: int) -> tuple[Hashable, Hashable] | None:
    """The left (`side` 0) or right (1) operand of a GEMM as (buffer, view); None otherwise."""
    if t.op.kind != "gemm" or len(t.inputs) <= side or not t.fusible:
        return None
    # addmm/baddbmm read (bias, a, b): the operands are the last two inputs.
    ref = t.inputs[len(t.inputs) - 2 + side] if len(t.inputs) >= 2 else t.inputs[0]
    return (ref.buffer, ref.view)


# side -> (the dimensions siblings share, the dimension they concatenate)
_SHARED = {0: (("m", "k"), "n"), 1: (("k", "n"), "m")}


def fuse_sibling_gemms(trace: Sequence[TracedOp]) -> list[TracedOp]:
    """Pass 1 (module docstring): sibling GEMMs merged at the position of the first of them."""
    out: list[TracedOp] = []
    taken: set[int] = set()
    for i, first in enumerate(trace):
        if i in taken:
            continue
        group: list[TracedOp] = [first]
        side = 0
        for side in (0, 1):
            group = [first, *_siblings(trace, i, side, taken)]
            if len(group) > 1:
                break
        out.append(first if len(group) == 1 else _merge_gemms(group, side))
    return out


def _siblings(trace: Sequence[TracedOp], i: int, side: int, taken: set[int]) -> list[TracedOp]:
    """GEMMs after `trace[i]` sharing its operand on `side` and independent of it (marked taken)."""
    first = trace[i]
    operand = _operand(first, side)
    if operand is None:
        return []
    same, _ = _SHARED[side]
    d = first.op.dims
    found: list[int] = []
    tainted = {r.buffer for r in first.outputs}
    for j in range(i + 1, min(i + 1 + SIBLING_WINDOW, len(trace))):
        cand = trace[j]
        reads = {r.buffer for r in cand.inputs}
        sibling = (
            j not in taken
            and cand.op.phase == first.op.phase
            and _operand(cand, side) == operand
            and all(cand.op.dims.get(x) == d.get(x) for x in same)
            and cand.op.dims.get("batch", 1) == d.get("batch", 1)
            and cand.op.dtype == first.op.dtype
            and not (reads & tainted)
        )
        if sibling:
            found.append(j)
        elif reads & tainted:  # depends on the group: so does whatever it writes
            tainted |= {r.buffer for r in cand.outputs}
    taken.update(found)
    return [trace[j] for j in found]


def _merge_gemms(group: Sequence[TracedOp], side: int) -> TracedOp:
    first = group[0].op
    _, grown = _SHARED[side]
    pos = len(group[0].inputs) - 2 + side
    shared_ref = group[0].inputs[pos]
    op = replace(
        first,
        name=f"{first.name}(+{len(group) - 1} siblings)",
        flops=sum(t.op.flops for t in group),
        bytes_read=sum(t.op.bytes_read for t in group) - shared_ref.nbytes * (len(group) - 1),
        bytes_written=sum(t.op.bytes_written for t in group),
        dims={**first.dims, grown: sum(t.op.dims[grown] for t in group)},
        count=1,
    )
    others = [
        r for t in group for r in t.inputs if (r.buffer, r.view) != (shared_ref.buffer, shared_ref.view)
    ]
    return TracedOp(op=op, inputs=(shared_ref, *others), outputs=tuple(r for t in group for r in t.outputs))


def _external_bytes(refs: Sequence[TensorRef]) -> float:
    """Bytes of a set of accesses: each distinct view once, at most the size of its buffer."""
    views: dict[Hashable, dict[Hashable, float]] = {}
    size: dict[Hashable, float] = {}
    for r in refs:
        seen = views.setdefault(r.buffer, {})
        seen[r.view] = max(seen.get(r.view, 0.0), r.nbytes)
        size[r.buffer] = max(size.get(r.buffer, 0.0), r.buffer_nbytes)
    return sum(min(sum(v.values()), size[b]) for b, v in views.items())


_KIND_PRIORITY = ("loss", "softmax", "norm", "elementwise")


def _fuse_group(
    trace: Sequence[TracedOp],
    members: Sequence[int],
    readers: dict[Hashable, list[int]],
    remat: dict[Hashable, tuple[TensorRef, ...]],
) -> TracedOp:
    """One group as one op. `remat` (filled by forward groups, used by later ones): for each
    output a forward group did not write (saved only for the backward), the external inputs it
    was computed from; a later group that reads it recomputes it, so it reads those instead."""
    if len(members) == 1:
        return trace[members[0]]
    inside = set(members)
    chain = [trace[i] for i in members]
    # depends[buffer]: the external inputs (rematerialised ones replaced by theirs) it derives from.
    depends: dict[Hashable, dict[tuple[Hashable, Hashable], TensorRef]] = {}
    external_in: list[TensorRef] = []
    for t in chain:
        sources: dict[tuple[Hashable, Hashable], TensorRef] = {}
        for r in t.inputs:
            if r.buffer in depends:
                sources |= depends[r.buffer]
                continue
            recomputed = remat.get(r.buffer, (r,))
            external_in.extend(recomputed)
            sources |= {(x.buffer, x.view): x for x in recomputed}
        for r in t.outputs:
            depends[r.buffer] = depends.get(r.buffer, {}) | sources
    forward = chain[0].op.phase == "forward"
    external_out = []
    for t in chain:
        for r in t.outputs:
            outside = [i for i in readers.get(r.buffer, []) if i not in inside]
            if outside and forward and all(trace[i].op.phase != "forward" for i in outside):
                # Saved only for the backward: rematerialised there (module docstring).
                remat[r.buffer] = tuple(depends[r.buffer].values())
                continue
            if not readers.get(r.buffer) or outside:
                external_out.append(r)
    ops = [t.op for t in chain]
    kind = next(k for k in _KIND_PRIORITY if any(op.kind == k for op in ops))
    read = min(_external_bytes(external_in), sum(op.bytes_read for op in ops))
    written = min(_external_bytes(external_out), sum(op.bytes_written for op in ops))
    elements = max(int(op.dims.get("elements", 0)) for op in ops)
    op = Op(
        name=f"{ops[0].name}..{ops[-1].name}({len(ops)} fused)",
        kind=kind,  # type: ignore[arg-type]
        phase=ops[0].phase,
        flops=sum(op.flops for op in ops),
        bytes_read=read,
        bytes_written=written,
        dims={"elements": elements, "fused_ops": len(ops)},
        dtype=ops[0].dtype,
    )
    return TracedOp(op=op, inputs=tuple(external_in), outputs=tuple(external_out))


def _memory_groups(trace: Sequence[TracedOp]) -> list[list[int]]:
    """Indices of each fused group (compute ops alone), ordered by their first member."""
    producer: dict[Hashable, int] = {}
    group_of: dict[int, int] = {}
    groups: list[list[int]] = []
    for i, t in enumerate(trace):
        gid: int | None = None
        if not _alone(t):
            prev = i - 1
            if prev >= 0 and not _alone(trace[prev]) and trace[prev].op.phase == t.op.phase:
                gid = group_of[prev]
            else:
                sources = [producer[r.buffer] for r in t.inputs if r.buffer in producer]
                for g in sorted({group_of[p] for p in sources if p in group_of}, reverse=True):
                    members = groups[g]
                    if trace[members[0]].op.phase != t.op.phase or _alone(trace[members[0]]):
                        continue
                    if all(p in members or p < members[0] for p in sources):
                        gid = g
                        break
        if gid is None:
            gid = len(groups)
            groups.append([])
        groups[gid].append(i)
        group_of[i] = gid
        for r in t.outputs:
            producer[r.buffer] = i
    return groups


def fuse_memory_chains(trace: Sequence[TracedOp]) -> list[TracedOp]:
    """Pass 2 (module docstring): memory-bound ops of one phase merged into one op per group."""
    readers: dict[Hashable, list[int]] = {}
    for i, t in enumerate(trace):
        for r in t.inputs:
            readers.setdefault(r.buffer, []).append(i)
    remat: dict[Hashable, tuple[TensorRef, ...]] = {}
    return [_fuse_group(trace, members, readers, remat) for members in _memory_groups(trace)]


def fuse_trace(trace: Sequence[TracedOp], *, siblings: bool = True) -> list[Op]:
    """Both passes (siblings first, so that the memory-bound ops between q, k and v join one run);
    one op per execution, in order (`workload.imported.merge_ops` folds repeated layers)."""
    staged = fuse_sibling_gemms(trace) if siblings else list(trace)
    return [t.op for t in fuse_memory_chains(staged)]
