"""Memory per chip against Korthikanti et al. 2022 and the ZeRO paper, written out by hand.

Korthikanti, Casper, Lym, McAfee, Andersch, Shoeybi, Catanzaro, "Reducing Activation Recomputation
in Large Transformer Models", MLSys 2023, arXiv 2205.05198. Per transformer layer, 16-bit
activations, s = sequence, b = micro-batch, h = hidden, a = heads, t = tensor-parallel size:
  no parallelism          sbh (34 + 5as/h)                 (eq. 1)
  tensor parallel         sbh (10 + 24/t + 5as/(ht))       (eq. 2)
  tensor + sequence par.  sbh/t (34 + 5as/h)               (eq. 4)
  + selective recompute   34 sbh/t                          (eq. 6)
  full recompute          2 sbh (the layer input; /t when it is sequence-parallel)
and the first pipeline stage under 1F1B holds L layers' worth (p micro-batches of L/p layers;
eq. 5), L (1 + (p-1)/(p m)) with m interleaved stages. Table 3 configurations: GPT-3 175B a=96,
h=12288, L=96, t=8, p=8; MT-NLG 530B a=128, h=20480, L=105, t=8, p=35; s=2048, micro-batch 1.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from twofold.parallel.arrays import LayoutArrays
from twofold.parallel.layout import Layout, LayoutTable, TrainingWorkload
from twofold.parallel.memory import (
    WORKSPACE_FIXED_GIB,
    layer_activation_bytes,
    memory_per_chip,
    stage_params,
)
from twofold.parallel.rules import valid_mask
from twofold.workload.model import ModelConfig
from twofold.workload.params import param_counts


def gpt(name: str, a: int, h: int, layers: int) -> ModelConfig:
    return ModelConfig(
        name=name,
        family="gpt2",
        num_layers=layers,
        hidden_size=h,
        num_attention_heads=a,
        num_kv_heads=a,
        head_dim=h // a,
        intermediate_size=4 * h,
        vocab_size=51200,
        mlp_gated=False,
        activation="gelu",
        norm="layernorm",
        position_embedding="learned",
        max_position_embeddings=2048,
    )


GPT3 = gpt("gpt3-175b", 96, 12288, 96)
MTNLG = gpt("mt-nlg-530b", 128, 20480, 105)
PAPER = dict(flash_attention=False, dropout=True, act_bytes=2.0)

# Hand-evaluated per-layer values, s=2048, b=1, t=8:
#   GPT-3: sbh = 2048*12288 = 25,165,824; 5as/h = 5*96*2048/12288 = 80.
#   530B:  sbh = 2048*20480 = 41,943,040; 5as/h = 5*128*2048/20480 = 64.
CASES = [
    (GPT3, 25_165_824, 80.0),
    (MTNLG, 41_943_040, 64.0),
]


@pytest.mark.parametrize(("model", "sbh", "attn"), CASES)
def test_korthikanti_per_layer_equations(model: ModelConfig, sbh: int, attn: float) -> None:
    t, s = 8, 2048

    def act(**kw: object) -> float:
        return float(layer_activation_bytes(model, micro_batch=1, seq_len=s, **kw, **PAPER))

    assert act(tp=1, sequence_parallel=False) == pytest.approx(sbh * (34 + attn), rel=1e-12)
    assert act(tp=t, sequence_parallel=False) == pytest.approx(sbh * (10 + 24 / t + attn / t), rel=1e-12)
    assert act(tp=t, sequence_parallel=True) == pytest.approx(sbh / t * (34 + attn), rel=1e-12)
    assert act(tp=t, sequence_parallel=True, recompute=1) == pytest.approx(34 * sbh / t, rel=1e-12)
    assert act(tp=1, sequence_parallel=False, recompute=2) == pytest.approx(2 * sbh, rel=1e-12)
    assert act(tp=t, sequence_parallel=True, recompute=2) == pytest.approx(2 * sbh / t, rel=1e-12)


def test_gpt3_tp_sp_value_in_bytes() -> None:
    # sbh/t (34 + 5as/h) = 3,145,728 * 114 = 358,612,992 bytes (342 MiB) per layer.
    got = layer_activation_bytes(GPT3, micro_batch=1, seq_len=2048, tp=8, **PAPER)
    assert float(got) == 358_612_992


def test_flash_attention_drops_the_score_term() -> None:
    # FlashAttention stores no s x s scores, only a 4-byte log-sum-exp per head and token.
    flash = layer_activation_bytes(
        GPT3, micro_batch=1, seq_len=2048, tp=8, flash_attention=True, dropout=True
    )
    lse = 2048 * 96 * 4 / 8
    assert float(flash) == pytest.approx(2048 * 12288 / 8 * 34 + lse, rel=1e-12)


def _first_stage_activations(model: ModelConfig, layout: Layout, gb: int) -> float:
    wl = TrainingWorkload(global_batch=gb, seq_len=2048)
    lay = LayoutArrays.build(LayoutTable.from_layouts([layout]), model, wl)
    mem = memory_per_chip(model, param_counts(model), lay, "bf16", 2048, flash_attention=False, dropout=True)
    return float(mem["activations"][0])


@pytest.mark.parametrize(
    ("model", "pp", "sbh", "attn", "gb"),
    [(GPT3, 8, 25_165_824, 80.0, 64), (MTNLG, 35, 41_943_040, 64.0, 280)],
)
def test_first_stage_holds_l_layers_under_1f1b(model, pp, sbh, attn, gb) -> None:
    layout = Layout(dp=1, tp=8, pp=pp, micro_batch=1)
    expected = model.num_layers * sbh / 8 * (34 + attn)  # eq. 5: sbhL/t (34 + 5as/h)
    assert _first_stage_activations(model, layout, gb) == pytest.approx(expected, rel=1e-12)


def test_interleaved_first_stage_factor() -> None:
    # L (1 + (p-1)/(p m)) layers' worth, p=8 and m=2 virtual stages: 96 * (1 + 7/16) = 138.
    layout = Layout(dp=1, tp=8, pp=8, vp=2, micro_batch=1)
    expected = 138 * 2048 * 12288 / 8 * (34 + 80)
    assert _first_stage_activations(GPT3, layout, 64) == pytest.approx(expected, rel=1e-12)


# A small Llama-shaped model for the model-state tests (8 layers, hidden 1024).
SMALL_LLAMA = ModelConfig(
    name="m",
    family="llama",
    num_layers=8,
    hidden_size=1024,
    num_attention_heads=16,
    num_kv_heads=16,
    head_dim=64,
    intermediate_size=4096,
    vocab_size=32000,
)


def test_model_states_follow_zero_2_2_12() -> None:
    """Rajbhandari et al. 2020 (ZeRO), fig. 1: (2 + 2 + 12) Psi; stage 1 shards the 12, stage 2
    also the gradients' 2, stage 3 also the weights' 2 (plus FSDP's two gathered layers)."""
    model = SMALL_LLAMA
    counts = param_counts(model)
    d = 8
    wl = TrainingWorkload(global_batch=64, seq_len=1024)
    rows = [Layout(dp=d, zero=z) for z in range(4)]
    lay = LayoutArrays.build(LayoutTable.from_layouts(rows), model, wl)
    mem = memory_per_chip(model, counts, lay, "bf16", 1024)
    psi = counts.total
    assert mem["optimizer_states"] == pytest.approx([12 * psi, 12 * psi / d, 12 * psi / d, 12 * psi / d])
    assert mem["gradients"] == pytest.approx([2 * psi, 2 * psi, 2 * psi / d, 2 * psi / d])
    layer = counts.dense_layer
    gathered = 2 * 2 * layer * (1 - 1 / d)
    assert mem["weights"] == pytest.approx([2 * psi, 2 * psi, 2 * psi, 2 * psi / d + gathered])
    allocated = mem["weights"] + mem["gradients"] + mem["optimizer_states"] + mem["activations"]
    assert mem["workspace"] == pytest.approx(WORKSPACE_FIXED_GIB * 2**30 + 0.05 * allocated)


def test_stack_state_bytes_follow_megatron_and_fsdp2_accounting() -> None:
    """Where a stack keeps its states (`cost.stack` model_state_bytes). Megatron-LM's distributed
    optimizer docs: bf16 weights with fp32 gradients cost 6 + 12/d bytes per parameter under the
    distributed optimizer (ZeRO-1) and 18 without it. FSDP2 with fp32 sharded parameters as the
    master copy: (4 + 4 + 8)/d under ZeRO-3, the gathered compute copies still bf16 (2 bytes)."""
    model = SMALL_LLAMA
    counts, d = param_counts(model), 8
    wl = TrainingWorkload(global_batch=64, seq_len=1024)
    lay = LayoutArrays.build(LayoutTable.from_layouts([Layout(dp=d, zero=z) for z in (0, 1, 3)]), model, wl)
    psi = counts.total

    def states(mem: dict[str, np.ndarray]) -> np.ndarray:
        return mem["weights"] + mem["gradients"] + mem["optimizer_states"]

    megatron = memory_per_chip(model, counts, lay, "bf16", 1024, states=(2.0, 4.0, 12.0))
    assert states(megatron)[:2] == pytest.approx([18 * psi, (6 + 12 / d) * psi])
    fsdp2 = memory_per_chip(model, counts, lay, "bf16", 1024, states=(4.0, 4.0, 8.0))
    gathered = 2 * 2 * counts.dense_layer * (1 - 1 / d)
    assert states(fsdp2)[2] == pytest.approx(16 * psi / d + gathered)
    # The activations do not depend on where the states live.
    assert megatron["activations"] == pytest.approx(fsdp2["activations"])
    # Pure fp32 training keeps 4 + 4 + 8 whatever the stack says about mixed precision.
    fp32 = memory_per_chip(model, counts, lay, "fp32", 1024, states=(2.0, 4.0, 12.0))
    assert states(fp32)[0] == pytest.approx(16 * psi)


def test_tp_pp_ep_shard_parameters() -> None:
    """Non-expert params / tp, experts / (ep * tp), layers / pp on the worst stage (+ embedding)."""
    model = ModelConfig(
        name="moe",
        family="mixtral",
        num_layers=8,
        hidden_size=1024,
        num_attention_heads=16,
        num_kv_heads=8,
        head_dim=64,
        intermediate_size=3584,
        vocab_size=32000,
        num_experts=8,
        num_experts_per_tok=2,
        moe_intermediate_size=3584,
    )
    c = param_counts(model)
    wl = TrainingWorkload(global_batch=64, seq_len=1024)
    lay = LayoutArrays.build(LayoutTable.from_layouts([Layout(dp=4, tp=2, pp=2, ep=4, zero=0)]), model, wl)
    mem = memory_per_chip(model, c, lay, "bf16", 1024)
    non_expert_layers = 4 * (c.moe_layer - c.routed_experts_per_layer)
    first = (non_expert_layers + c.embedding) / 2 + 4 * c.routed_experts_per_layer / 8
    last = (non_expert_layers + c.lm_head + c.final_norm) / 2 + 4 * c.routed_experts_per_layer / 8
    assert float(mem["weights"][0]) in (pytest.approx(2 * first), pytest.approx(2 * last))
    ne, ex = stage_params(c, model, np.array([4.0]))
    assert float(ne[0]) == pytest.approx(non_expert_layers)
    assert float(ex[0]) == pytest.approx(4 * c.routed_experts_per_layer)


LLAMA = ModelConfig(
    name="llama-ish",
    family="llama",
    num_layers=12,
    hidden_size=2048,
    num_attention_heads=16,
    num_kv_heads=4,
    head_dim=128,
    intermediate_size=5632,
    vocab_size=32000,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    dp=st.sampled_from([1, 2, 4, 8]),
    tp=st.sampled_from([1, 2, 4]),
    pp=st.sampled_from([1, 2, 3, 4]),
    cp=st.sampled_from([1, 2]),
    mb=st.sampled_from([1, 2]),
    rc=st.sampled_from(["none", "selective", "full"]),
)
def test_zero3_never_needs_more_than_zero1(dp, tp, pp, cp, mb, rc) -> None:
    wl = TrainingWorkload(global_batch=32, seq_len=2048)
    rows = [Layout(dp=dp, tp=tp, pp=pp, cp=cp, micro_batch=mb, recompute=rc, zero=z) for z in (1, 3)]
    table = LayoutTable.from_layouts(rows)
    assume(bool(valid_mask(LLAMA, table, wl).all()))
    mem = memory_per_chip(LLAMA, param_counts(LLAMA), LayoutArrays.build(table, LLAMA, wl), "bf16", 2048)
    assert mem["total"][1] <= mem["total"][0]
    assert np.all(np.isfinite(mem["total"])) and np.all(mem["total"] > 0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    dp=st.sampled_from([1, 2, 4]),
    tp=st.sampled_from([1, 2, 4]),
    pp=st.sampled_from([1, 2, 4]),
    zero=st.sampled_from([0, 1, 2, 3]),
    rc=st.sampled_from(["none", "selective", "full"]),
)
def test_more_chips_never_give_less_total_memory(dp, tp, pp, zero, rc) -> None:
    """DESIGN.md invariant: sharding over twice the data-parallel ranks (same micro-batch, same
    work per rank) never makes the memory summed over all chips smaller: states are split, never
    dropped, and every rank still holds its own activations."""
    wl = TrainingWorkload(global_batch=64, seq_len=2048)
    rows = [Layout(dp=d, tp=tp, pp=pp, micro_batch=1, recompute=rc, zero=zero) for d in (dp, 2 * dp)]
    table = LayoutTable.from_layouts(rows)
    assume(bool(valid_mask(LLAMA, table, wl).all()))
    mem = memory_per_chip(LLAMA, param_counts(LLAMA), LayoutArrays.build(table, LLAMA, wl), "bf16", 2048)
    chips = np.array([r.chips for r in rows], dtype=float)
    total = mem["total"] * chips
    assert total[1] >= total[0]
