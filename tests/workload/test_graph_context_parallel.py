"""Context parallelism in the operator graph: ring attention and all-to-all (DeepSpeed-Ulysses) do
the same work per chip in other kernels. Compared against the attention FLOPs written out here
(FlopCounterMode's sdpa count, 2 * b * heads * (d_qk + d_v) per (query, key) pair, causal pairs
s (s + 1) / 2) and against each other op by op."""

from __future__ import annotations

import pytest

from twofold.errors import InputError
from twofold.workload.graph import training_ops
from twofold.workload.model import ModelConfig
from twofold.workload.registry import get_model

S, CP = 32768, 8


def _ops(model: ModelConfig, algorithm: str, **kw: object) -> dict[tuple[str, str], object]:
    ops = training_ops(model, micro_batch=1, seq_len=S, cp=CP, context_parallel=algorithm, **kw)
    return {(op.name, op.phase): op for op in ops}


def test_ring_and_all_to_all_do_the_same_flops_per_chip() -> None:
    model = get_model("llama3.1-8b")  # 32 layers, 32 query heads, 8 key/value heads, head_dim 128
    ring, a2a = _ops(model, "ring"), _ops(model, "all-to-all")
    # Every GEMM, norm and elementwise op is the same: token-wise work runs on S/cp tokens either way.
    shared = {k for k in ring if not k[0].startswith(("layer.attn.core", "layer.attn.cp_merge"))}
    assert shared == {k for k in a2a if not k[0].startswith("layer.attn.core")}
    for key in shared:
        assert ring[key] == a2a[key], key
    # Attention forward on one chip: a 1/cp share of the whole sequence's causal pairs, all heads.
    pairs = S * (S + 1) // 2
    per_chip = 2 * 32 * (128 + 128) * pairs / CP * model.num_layers
    for ops in (ring, a2a):
        fwd = ops[("layer.attn.core", "forward")]
        assert fwd.useful_flops * fwd.count == pytest.approx(per_chip, rel=1e-12)
        assert fwd.flops * fwd.count == pytest.approx(2 * 32 * 256 * S * S / CP * 32, rel=1e-12)
    for phase in ("forward", "backward"):
        r, a = ring[("layer.attn.core", phase)], a2a[("layer.attn.core", phase)]
        assert r.useful_flops * r.count == pytest.approx(a.useful_flops * a.count, rel=1e-12)
    # The kernels differ: ring runs cp kernels per layer on S/cp queries and an S/cp key chunk;
    # all-to-all one kernel per layer on the full sequence for 32/8 query heads and 8/8 kv heads.
    r, a = ring[("layer.attn.core", "forward")], a2a[("layer.attn.core", "forward")]
    assert (r.count, r.dims["q_len"], r.dims["kv_len"], r.dims["heads"]) == (32 * CP, S // CP, S // CP, 32)
    assert (a.count, a.dims["q_len"], a.dims["kv_len"], a.dims["heads"], a.dims["kv_heads"]) == (
        32,
        S,
        S,
        4,
        1,
    )


def test_all_to_all_heads_follow_tensor_parallelism_and_replicate_kv() -> None:
    # tp 2 leaves 16 query and 4 key/value heads per rank; cp 8 then gives 2 query heads and one
    # replicated key/value head per rank (8 > 4).
    a2a = _ops(get_model("llama3.1-8b"), "all-to-all", tp=2)
    core = a2a[("layer.attn.core", "forward")]
    assert (core.dims["heads"], core.dims["kv_heads"], core.dims["q_len"]) == (2, 1, S)


def test_the_graph_refuses_heads_that_do_not_split() -> None:
    model = get_model("llama3.1-8b")
    with pytest.raises(InputError) as info:
        training_ops(model, micro_batch=1, seq_len=S, tp=2, cp=32, context_parallel="all-to-all")
    assert info.value.field == "cp" and "num_attention_heads=32" in str(info.value)
    training_ops(model, micro_batch=1, seq_len=S, tp=2, cp=32, context_parallel="ring")  # ring: fine
    with pytest.raises(InputError) as info:
        training_ops(model, micro_batch=1, seq_len=S, cp=2, context_parallel="ulysses")
    assert info.value.field == "context_parallel"
