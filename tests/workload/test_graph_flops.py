"""twofold's operator FLOPs == PyTorch's FlopCounterMode on equivalent modules, exactly.

Reference: `torch.utils.flop_counter.FlopCounterMode` run over the plain PyTorch modules of
`torch_reference.py` (GEMMs: mm/addmm; attention: the fused sdpa kernels, or bmm on the math
path). Non-GEMM ops (norms, activations) are not counted by FlopCounterMode, so only the `gemm`
and `attention` kinds are compared. Dims are tiny so the whole file runs in seconds.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.utils.checkpoint
import torch.utils.flop_counter as fc
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_reference import MLP, Attention, LanguageModel, Layer, MLAttention, MoE, by_family, flop_counter

from twofold.errors import InputError
from twofold.workload.graph import decode_ops, forward_ops, prefill_ops, totals, training_ops
from twofold.workload.layers import visible_pairs
from twofold.workload.model import ModelConfig

torch.manual_seed(0)


def _config(**overrides: object) -> ModelConfig:
    base: dict[str, object] = {
        "name": "tiny",
        "family": "llama",
        "num_layers": 1,
        "hidden_size": 32,
        "num_attention_heads": 4,
        "num_kv_heads": 4,
        "head_dim": 8,
        "intermediate_size": 48,
        "vocab_size": 64,
    }
    return ModelConfig(**(base | overrides))  # type: ignore[arg-type]


def _ours(ops: tuple, prefix: str = "", phases: tuple[str, ...] = ("forward",)) -> dict[str, int]:
    """GEMM and attention FLOPs of the ops whose name starts with `prefix`, in `phases`."""
    out = {"gemm": 0, "attention": 0}
    for op in ops:
        if op.name.startswith(prefix) and op.phase in phases and op.kind in out:
            out[op.kind] += int(op.total_flops)
    return out


def _torch(module: torch.nn.Module, x: torch.Tensor, backward: bool) -> tuple[dict[str, int], dict[str, int]]:
    """(forward, forward+backward) FLOPs by family of running `module` on `x`."""
    with flop_counter() as counter:
        out = module(x)
        fwd = by_family(counter)
        if backward:
            (out if out.dim() == 0 else out.float().sum()).backward()
    return fwd, by_family(counter)


ATTENTION_SHAPES = [  # heads, kv_heads, head_dim, batch, seq, causal
    (4, 4, 8, 2, 16, True),  # MHA
    (4, 2, 8, 1, 12, True),  # GQA
    (8, 1, 4, 3, 5, True),  # MQA
    (4, 4, 16, 2, 9, False),  # bidirectional (encoder)
]


@pytest.mark.parametrize(("heads", "kv_heads", "head_dim", "batch", "seq", "causal"), ATTENTION_SHAPES)
@pytest.mark.parametrize("bias", [False, True])
def test_attention_block_matches_flop_counter(
    heads: int, kv_heads: int, head_dim: int, batch: int, seq: int, causal: bool, bias: bool
) -> None:
    model = _config(
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        causal=causal,
        qkv_bias=bias,
        attn_out_bias=bias,
        qk_norm=bias,
    )
    x = torch.randn(batch, seq, model.hidden_size, requires_grad=True)
    fwd, both = _torch(Attention(model), x, backward=True)
    ops = training_ops(model, micro_batch=batch, seq_len=seq)
    assert _ours(ops, "layer.attn") == fwd
    assert _ours(ops, "layer.attn", ("forward", "backward")) == both


@pytest.mark.parametrize("gated", [True, False])
@pytest.mark.parametrize(("batch", "seq", "width"), [(2, 8, 48), (1, 7, 20)])
def test_mlp_block_matches_flop_counter(gated: bool, batch: int, seq: int, width: int) -> None:
    model = _config(
        mlp_gated=gated, intermediate_size=width, activation="silu" if gated else "gelu", mlp_bias=not gated
    )
    x = torch.randn(batch, seq, model.hidden_size, requires_grad=True)
    fwd, both = _torch(MLP(model, width), x, backward=True)
    ops = training_ops(model, micro_batch=batch, seq_len=seq)
    assert _ours(ops, "layer.mlp") == fwd
    assert _ours(ops, "layer.mlp", ("forward", "backward")) == both


@pytest.mark.parametrize(("experts", "top_k", "shared", "batch", "seq"), [(8, 2, 0, 2, 8), (6, 3, 1, 1, 11)])
def test_moe_block_matches_flop_counter_with_observed_routing(
    experts: int, top_k: int, shared: int, batch: int, seq: int
) -> None:
    """Random routing: the ops are built from the per-expert token counts the torch run observed,
    so every expert GEMM has the `m` FlopCounterMode saw; experts that got no token launch none."""
    model = _config(
        num_experts=experts,
        num_experts_per_tok=top_k,
        moe_intermediate_size=24,
        num_shared_experts=shared,
        shared_expert_intermediate_size=16 if shared else 0,
    )
    moe = MoE(model)
    x = torch.randn(batch, seq, model.hidden_size, requires_grad=True)
    fwd, both = _torch(moe, x, backward=True)
    ops = training_ops(model, micro_batch=batch, seq_len=seq, expert_tokens=moe.routed_counts)
    assert _ours(ops, "layer.moe") == fwd
    assert _ours(ops, "layer.moe", ("forward", "backward")) == both
    expert_ms = sorted(m for m in moe.routed_counts if m)
    up = [op for op in ops if op.name == "layer.moe.experts.up_gate" and op.phase == "forward"]
    assert sorted(op.dims["m"] for op in up for _ in range(op.count)) == expert_ms


def test_mla_block_matches_flop_counter() -> None:
    """d_v != d_qk sends CPU sdpa down the math path (bmm), whose backward is 4 bmm, not the fused
    kernel's 5: the backward attention is checked against FlopCounterMode's fused-kernel formula."""
    model = _config(
        family="deepseek_v3",
        num_attention_heads=4,
        head_dim=12,
        q_lora_rank=16,
        kv_lora_rank=8,
        qk_nope_head_dim=8,
        qk_rope_head_dim=4,
        v_head_dim=6,
    )
    batch, seq = 2, 10
    x = torch.randn(batch, seq, model.hidden_size, requires_grad=True)
    fwd, both = _torch(MLAttention(model), x, backward=True)
    ops = training_ops(model, micro_batch=batch, seq_len=seq)
    assert _ours(ops, "layer.attn") == fwd
    assert _ours(ops, "layer.attn", ("forward", "backward"))["gemm"] == both["gemm"]
    q, kv = (batch, 4, seq, 12), (batch, 4, seq, 6)
    assert _ours(ops, "layer.attn", ("backward",))["attention"] == fc.sdpa_backward_flop_count(kv, q, q, kv)


def test_bert_encoder_layer_matches_flop_counter() -> None:
    model = _config(
        family="bert",
        norm="layernorm",
        causal=False,
        position_embedding="learned",
        mlp_gated=False,
        activation="gelu",
        qkv_bias=True,
        attn_out_bias=True,
        mlp_bias=True,
    )
    x = torch.randn(2, 12, model.hidden_size, requires_grad=True)
    fwd, both = _torch(Layer(model, moe=False), x, backward=True)
    ops = training_ops(model, micro_batch=2, seq_len=12)
    assert _ours(ops, "layer.") == fwd
    assert _ours(ops, "layer.", ("forward", "backward")) == both


MODELS = {
    "dense-gqa-untied": {"num_layers": 2, "num_kv_heads": 2},
    "dense-mqa-tied-plain": {
        "num_layers": 2,
        "num_kv_heads": 1,
        "tie_word_embeddings": True,
        "mlp_gated": False,
        "activation": "gelu",
        "qkv_bias": True,
        "lm_head_bias": True,
    },
    "moe-first-dense-shared": {
        "num_layers": 3,
        "num_kv_heads": 2,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 16,
        "first_k_dense_layers": 1,
        "num_shared_experts": 2,
        "shared_expert_intermediate_size": 8,
        "router_bias": True,
    },
    # v_head_dim = nope + rope keeps CPU sdpa on its fused kernel (see test_mla_block_...).
    "mla-moe": {
        "family": "deepseek_v3",
        "num_layers": 2,
        "head_dim": 12,
        "q_lora_rank": None,
        "kv_lora_rank": 8,
        "qk_nope_head_dim": 8,
        "qk_rope_head_dim": 4,
        "v_head_dim": 12,
        "num_experts": 4,
        "num_experts_per_tok": 1,
        "moe_intermediate_size": 16,
        "first_k_dense_layers": 1,
    },
    "bert-mlm": {
        "family": "bert",
        "num_layers": 2,
        "norm": "layernorm",
        "causal": False,
        "mlp_gated": False,
        "activation": "gelu",
        "position_embedding": "learned",
        "type_vocab_size": 2,
        "tie_word_embeddings": True,
        "qkv_bias": True,
        "attn_out_bias": True,
        "mlp_bias": True,
        "lm_head_bias": True,
        "lm_head_transform": True,
        "max_position_embeddings": 16,
    },
}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize(("batch", "seq"), [(2, 8), (1, 13)])
def test_whole_model_training_step_matches_flop_counter(name: str, batch: int, seq: int) -> None:
    """Embedding to loss, forward and backward. Routing is random, but with no token dropped the
    expert FLOPs depend only on the tokens*top_k assignments, so the default balanced routing
    gives the same total as whatever the run routed."""
    model = _config(**MODELS[name])
    tokens = torch.randint(0, model.vocab_size, (batch, seq))
    fwd, both = _torch(LanguageModel(model), tokens, backward=True)
    ops = training_ops(model, micro_batch=batch, seq_len=seq)
    assert _ours(ops) == fwd
    assert _ours(ops, phases=("forward", "backward")) == both


@pytest.mark.parametrize("mode", ["full", "selective"])
def test_recompute_matches_flop_counter_with_checkpointing(mode: str) -> None:
    """full: torch.utils.checkpoint around each layer; selective: around the attention core only."""
    model = _config(**MODELS["moe-first-dense-shared"])
    reference = LanguageModel(model)
    if mode == "full":
        reference.recompute_layers = True
    else:
        for layer in reference.layers:
            layer.attn.checkpoint_core = True
    tokens = torch.randint(0, model.vocab_size, (2, 8))
    # PyTorch stops recomputing once the saved tensors backward needs are rebuilt; Megatron reruns
    # the whole layer, which is what twofold prices.
    with torch.utils.checkpoint.set_checkpoint_early_stop(False):
        _, both = _torch(reference, tokens, backward=True)
    ops = training_ops(model, micro_batch=2, seq_len=8, recompute=mode)
    assert _ours(ops, phases=("forward", "backward", "recompute")) == both


@pytest.mark.parametrize(
    ("layers", "hidden", "heads", "vocab", "batch", "seq"), [(2, 64, 4, 96, 2, 32), (3, 48, 6, 50, 1, 20)]
)
def test_full_recompute_step_matches_narayanan_2021_equation_3(
    layers: int, hidden: int, heads: int, vocab: int, batch: int, seq: int
) -> None:
    """Narayanan et al. 2021 (arXiv 2104.04473) eq. 3, GPT with f = 4h and full recompute:
    96*B*s*l*h^2*(1 + s/(6h) + V/(16*l*h)). It counts the attention backward as 2x its forward;
    PyTorch (and twofold) count FlashAttention's 2.5x, so half a forward attention per layer is added."""
    model = _config(
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=heads,
        head_dim=hidden // heads,
        intermediate_size=4 * hidden,
        vocab_size=vocab,
        mlp_gated=False,
        activation="gelu",
        position_embedding="learned",
        max_position_embeddings=seq,
    )
    ops = training_ops(model, micro_batch=batch, seq_len=seq, recompute="full")
    attention_forward = sum(op.total_flops for op in ops if op.kind == "attention" and op.phase == "forward")
    b, s, h, v, n = batch, seq, hidden, vocab, layers
    paper = 96 * b * s * n * h**2 * (1 + s / (6 * h) + v / (16 * n * h))
    assert _gemm_attention_flops(ops) == pytest.approx(paper + 0.5 * attention_forward, rel=1e-12)


# ---- invariants of the sharded graph (hand derivations, no torch) ----


def _gemm_attention_flops(ops: tuple) -> float:
    return sum(op.total_flops for op in ops if op.kind in ("gemm", "attention"))


@settings(max_examples=30, deadline=None)
@given(
    tp=st.sampled_from([1, 2, 4]),
    cp=st.sampled_from([1, 2, 4]),
    batch=st.integers(1, 3),
    chunks=st.integers(1, 3),
    moe=st.booleans(),
)
def test_tp_and_cp_split_gemm_and_attention_flops_exactly(
    tp: int, cp: int, batch: int, chunks: int, moe: bool
) -> None:
    """With kv heads divisible by tp and the vocabulary by tp, tp x cp chips together do exactly the
    GEMM and attention work of one chip: every sharded dimension is divided, none replicated."""
    extra = {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 16} if moe else {}
    model = _config(num_layers=2, num_attention_heads=8, num_kv_heads=4, intermediate_size=64, **extra)
    seq = 4 * cp * chunks
    one = _gemm_attention_flops(training_ops(model, micro_batch=batch, seq_len=seq))
    sharded = _gemm_attention_flops(training_ops(model, micro_batch=batch, seq_len=seq, tp=tp, cp=cp))
    assert sharded * tp * cp == pytest.approx(one, rel=1e-12)


def test_context_parallel_attention_runs_as_ring_steps() -> None:
    """cp = 4: each layer's attention is 4 kernels (one per K/V chunk) that re-read the local
    queries, read a quarter of the keys and values each and write an fp32 partial output and
    log-sum-exp, then one merge kernel reads the 4 partials and writes the bf16 output. Hand count
    for batch 2, sequence 32, 4 heads of 8, 2 KV heads, 3 layers."""
    model = _config(num_layers=3, num_kv_heads=2)
    b, s, cp, heads, kv_heads, d = 2, 32, 4, 4, 2, 8
    ops = forward_ops(model, batch=b, seq_len=s, cp=cp)
    core = next(op for op in ops if op.name == "layer.attn.core")
    merge = next(op for op in ops if op.name == "layer.attn.cp_merge")
    q_tokens = b * s // cp
    assert core.count == 3 * cp and merge.count == 3
    assert core.bytes_read == q_tokens * heads * d * 2 + b * s * kv_heads * 2 * d * 2 / cp
    assert core.bytes_written == q_tokens * heads * (d + 1) * 4
    assert merge.bytes_read == cp * q_tokens * heads * (d + 1) * 4
    assert merge.bytes_written == q_tokens * heads * d * 2
    # Each step is the (unmasked) attention of one query chunk against one key chunk: the plain
    # graph's core at sequence s / cp.
    plain = next(op for op in forward_ops(model, batch=b, seq_len=s // cp) if op.name == "layer.attn.core")
    assert core.flops == pytest.approx(plain.flops, rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(ep=st.sampled_from([1, 2, 4, 8]), tokens=st.integers(1, 40))
def test_ep_spreads_experts_without_changing_expert_flops(ep: int, tokens: int) -> None:
    """EP over data-parallel ranks: a chip holds E/ep experts and computes tokens*top_k assignments."""
    model = _config(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=16)
    ops = forward_ops(model, batch=1, seq_len=tokens, ep=ep)
    experts = [op for op in ops if op.name == "layer.moe.experts.up_gate"]
    assert sum(op.count for op in experts) == min(8 // ep, tokens * 2)
    assert sum(op.dims["m"] * op.count for op in experts) == tokens * 2


@settings(max_examples=60, deadline=None)
@given(
    q=st.integers(1, 30),
    extra=st.integers(0, 30),
    window=st.one_of(st.none(), st.integers(1, 40)),
    causal=st.booleans(),
)
def test_visible_pairs_counts_the_mask(q: int, extra: int, window: int | None, causal: bool) -> None:
    kv = q + extra
    mask = [
        (i, j)
        for i in range(q)
        for j in range(kv)
        if (not causal or j <= kv - q + i)
        and (window is None or (j > kv - q + i - window if causal else j < window))
    ]
    assert visible_pairs(q, kv, causal=causal, window=window) == len(mask)


def test_causal_useful_flops_are_about_half() -> None:
    model = _config()
    core = next(op for op in forward_ops(model, batch=1, seq_len=64) if op.kind == "attention")
    assert core.useful_flops == core.flops * (64 * 65 / 2) / (64 * 64)


def test_decode_reads_the_kv_cache_and_counts_one_query() -> None:
    """Hand derivation: per layer K and V of context_len tokens, kv_heads*head_dim wide each."""
    model = _config(num_kv_heads=2)
    ops = decode_ops(model, batch=3, context_len=20, kv_precision="fp8")
    core = next(op for op in ops if op.name == "layer.attn.core")
    assert core.dims["q_len"] == 1
    assert core.flops == 2 * 3 * 4 * 1 * 20 * (8 + 8)
    q_bytes = 3 * 4 * 8 * 2
    assert core.bytes_read == q_bytes + 3 * 20 * 2 * (8 + 8) * 1
    # The LM head runs once per sequence; prefill likewise only for the last position.
    assert next(op for op in ops if op.name == "lm_head").dims["m"] == 3
    assert next(op for op in prefill_ops(model, batch=3, seq_len=20) if op.name == "lm_head").dims["m"] == 3


def test_totals_sum_by_phase_and_kind() -> None:
    ops = training_ops(_config(), micro_batch=1, seq_len=8, recompute="selective")
    result = totals(ops)
    assert result["flops"] == sum(op.flops * op.count for op in ops)
    assert sum(result["by_phase"].values()) == pytest.approx(result["flops"])
    assert result["by_phase"]["recompute"] == sum(
        op.total_flops for op in ops if op.phase == "forward" and op.kind == "attention"
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tp": 3}, "tp"),
        ({"cp": 3}, "cp"),
        ({"ep": 2}, "ep"),
        ({"precision": "fp12"}, "precision"),
        ({"seq_len": 0}, "seq_len"),
        ({"kv_len": 4}, "kv_len"),
    ],
)
def test_bad_layouts_are_input_errors(kwargs: dict, field: str) -> None:
    args = {"batch": 1, "seq_len": 8} | kwargs
    with pytest.raises(InputError) as err:
        forward_ops(_config(), **args)
    assert err.value.field == field


def test_kv_heads_are_replicated_when_tp_exceeds_them() -> None:
    model = dataclasses.replace(_config(), num_attention_heads=8, num_kv_heads=2)
    qkv = next(op for op in forward_ops(model, batch=1, seq_len=8, tp=4) if op.name == "layer.attn.qkv")
    assert qkv.dims["n"] == (8 // 4 + 2 * 1) * 8


def test_mla_decode_attends_over_the_cached_latent() -> None:
    """Absorbed MLA (DeepSeek-V2 section 2.1.3): one shared latent head of width r_kv + d_rope for
    scores and r_kv for values, read once from the cache; no kv up projection runs."""
    model = _config(
        family="deepseek_v3",
        head_dim=12,
        q_lora_rank=16,
        kv_lora_rank=8,
        qk_nope_head_dim=8,
        qk_rope_head_dim=4,
        v_head_dim=6,
    )
    ops = decode_ops(model, batch=2, context_len=30, kv_precision="fp8")
    core = next(op for op in ops if op.name == "layer.attn.core")
    assert core.flops == 2 * 2 * 4 * 1 * 30 * ((8 + 4) + 8)
    assert core.bytes_read == 2 * 4 * (8 + 4) * 2 + 2 * 30 * (8 + 4) * 1
    names = {op.name for op in ops}
    assert {"layer.attn.q_absorb", "layer.attn.v_absorb"} <= names and "layer.attn.kv_up" not in names


def test_sliding_window_layers_read_only_the_window_in_decode() -> None:
    model = _config(num_layers=4, sliding_window=16, sliding_window_layers=2)
    ops = decode_ops(model, batch=1, context_len=100)
    full = next(op for op in ops if op.name == "layer.attn.core")
    window = next(op for op in ops if op.name == "layer.attn.core.sliding")
    assert (full.count, full.dims["kv_len"]) == (2, 100)
    assert (window.count, window.dims["kv_len"]) == (2, 16)
    train = {op.name: op for op in forward_ops(model, batch=1, seq_len=64)}
    sliding = train["layer.attn.core.sliding"]
    assert sliding.flops == train["layer.attn.core"].flops  # PyTorch counts the masked scores too
    assert sliding.useful_flops == sliding.flops * visible_pairs(64, 64, causal=True, window=16) / 64**2
