"""Layout validation: each broken rule is an InputError naming field, value and rule (Megatron-LM's
divisibility rules, written out here as the reference)."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from twofold.errors import InputError
from twofold.parallel.layout import Layout, LayoutTable, TrainingWorkload
from twofold.parallel.rules import check_layout, valid_mask
from twofold.workload.model import ModelConfig

DENSE = ModelConfig(
    name="dense-64h",
    family="llama",
    num_layers=16,
    hidden_size=4096,
    num_attention_heads=64,
    num_kv_heads=8,
    head_dim=64,
    intermediate_size=14336,
    vocab_size=32000,
)
MOE = ModelConfig(
    name="moe-8e",
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
WL = TrainingWorkload(global_batch=64, seq_len=4096)
# 48 query heads, 12 key/value heads: tp=8 divides the heads but neither divides 12 nor is a multiple of it.
GQA12 = ModelConfig(
    name="gqa-48h-12kv",
    family="llama",
    num_layers=16,
    hidden_size=3072,
    num_attention_heads=48,
    num_kv_heads=12,
    head_dim=64,
    intermediate_size=8192,
    vocab_size=32000,
)


def test_valid_layout_passes() -> None:
    check_layout(DENSE, Layout(dp=4, tp=8, pp=2, zero=1, micro_batch=2), WL, chips=64)
    check_layout(MOE, Layout(dp=8, tp=2, ep=8), WL, chips=16)
    # Megatron-LM replicates key/value heads when tp is a multiple of num_kv_heads (8 -> 16 ranks).
    check_layout(DENSE, Layout(dp=4, tp=16), WL, chips=64)
    # Uneven interleaved split: 16 layers on pp=3 x vp=2 (Megatron-Core's uneven pipeline split).
    check_layout(
        DENSE, Layout(dp=1, pp=3, vp=2, micro_batch=1), TrainingWorkload(global_batch=63, seq_len=4096)
    )


@pytest.mark.parametrize(
    ("model", "layout", "chips", "field", "value", "words"),
    [
        (DENSE, Layout(tp=3), None, "tp", 3, "does not divide num_attention_heads=64"),
        (DENSE, Layout(dp=4, tp=2, pp=2, cp=1), 64, "dp", 4, "dp*tp*pp*cp must equal chips=64"),
        (DENSE, Layout(dp=3, micro_batch=1), None, "global_batch", 64, "not divisible by dp*micro_batch"),
        (DENSE, Layout(dp=4, micro_batch=32), None, "global_batch", 64, "not divisible by dp*micro_batch"),
        (DENSE, Layout(pp=1, vp=2), None, "vp", 2, "needs pp > 1"),
        (DENSE, Layout(pp=32), None, "pp", 32, "exceeds num_layers=16"),
        (DENSE, Layout(ep=2), None, "ep", 2, "has no experts"),
        (MOE, Layout(dp=6, ep=3), None, "ep", 3, "does not divide num_experts=8"),
        (MOE, Layout(dp=2, ep=4), None, "ep", 4, "ep*etp does not divide tp*cp*dp"),
        # Megatron-Core refolds tp*cp*dp as etp x ep x edp: etp = tp = 2 leaves dp*cp = 2 for ep.
        (MOE, Layout(dp=2, tp=2, ep=4), None, "ep", 4, "ep*etp does not divide tp*cp*dp"),
        (MOE, Layout(dp=2, tp=4, ep=4, etp=2), None, "etp", 2, "must be 1 or tp"),
        (GQA12, Layout(tp=8), None, "tp", 8, "neither divides nor is a multiple of num_kv_heads=12"),
        (DENSE, Layout(pp=4, vp=8), None, "vp", 8, "pp*vp exceeds num_layers+2=18"),
        (DENSE, Layout(cp=3), None, "cp", 3, "multiple of 2*cp"),
        (DENSE, Layout(zero=4), None, "zero", 4, "one of 0, 1, 2, 3"),
        (DENSE, Layout(micro_batch=0), None, "micro_batch", 0, "positive"),
        (DENSE, Layout(dp=4, pp=8, vp=2, micro_batch=4), None, "vp", 2, "multiple of pp"),
    ],
)
def test_bad_layout_names_field_value_rule(model, layout, chips, field, value, words) -> None:
    with pytest.raises(InputError) as info:
        check_layout(model, layout, WL, chips)
    err = info.value
    assert (err.field, err.value) == (field, value)
    assert words in err.rule
    assert f"{field}={value!r}" in str(err)


def test_recompute_mode_is_checked() -> None:
    with pytest.raises(InputError, match="recompute"):
        check_layout(DENSE, Layout(recompute="some"), WL)  # type: ignore[arg-type]


def test_valid_mask_agrees_with_check_layout() -> None:
    layouts = [
        Layout(dp=dp, tp=tp, pp=pp, vp=vp, cp=cp, micro_batch=mb)
        for dp, tp, pp, vp, cp, mb in itertools.product(
            (1, 2, 3), (1, 2, 3, 8), (1, 2, 3), (1, 2), (1, 2), (1, 4)
        )
    ]
    mask = valid_mask(DENSE, LayoutTable.from_layouts(layouts), WL)
    for layout, ok in zip(layouts, mask, strict=True):
        try:
            check_layout(DENSE, layout, WL)
            passed = True
        except InputError:
            passed = False
        assert passed == bool(ok), layout
    assert mask.any() and not mask.all()


def test_expert_tensor_parallel_one_lets_ep_span_the_tp_ranks() -> None:
    """Megatron-Core refolds a stage's tp*cp*dp ranks as etp x ep x edp (parallel_state.py, the
    expert rank generator): on 16 chips with tp 2, dp 8, ep 16 only fits with etp = 1."""
    moe_16e = dataclasses.replace(MOE, num_experts=16)
    with pytest.raises(InputError, match="ep\\*etp"):
        check_layout(moe_16e, Layout(dp=8, tp=2, ep=16), WL, chips=16)
    check_layout(moe_16e, Layout(dp=8, tp=2, ep=16, etp=1), WL, chips=16)
    # etp equal to tp is the default spelling.
    assert Layout(tp=2, etp=2) == Layout(tp=2)


def test_embedding_and_loss_count_as_pipeline_layers() -> None:
    """`--account-for-embedding/loss-in-pipeline-split`: 16 layers + embedding + loss fill
    pp*vp = 18 virtual stages (NVIDIA's Llama 3.1 405B recipe: 126 layers on 16 x 8 = 128)."""
    wl = TrainingWorkload(global_batch=36, seq_len=4096)
    check_layout(DENSE, Layout(dp=1, pp=2, vp=9), wl)
    with pytest.raises(InputError, match="num_layers\\+2=18"):
        check_layout(DENSE, Layout(dp=1, pp=2, vp=10), wl)


def _heads_split_over_tp_cp(model: ModelConfig, tp: int, cp: int) -> bool:
    """DeepSpeed-Ulysses written out: after the all-to-all each of the tp*cp ranks holds whole
    query heads, and its key/value heads are a whole share of the TP rank's (cp divides them) or
    one replica each (cp a multiple of them)."""
    kv_rank = max(model.num_kv_heads // tp, 1)
    return model.num_attention_heads % (tp * cp) == 0 and (kv_rank % cp == 0 or cp % kv_rank == 0)


@pytest.mark.parametrize(
    ("model", "layout", "words"),
    [
        # 64 heads over tp 8 x cp 16 = 128 ranks: half a head each.
        (DENSE, Layout(tp=8, cp=16), "tp*cp does not divide num_attention_heads=64"),
        # 48 query heads split over cp 16 would be 3 per rank, but 12 key/value heads over 16 ranks
        # are neither a whole share nor a whole number of replicas.
        (GQA12, Layout(cp=16), "cp neither divides nor is a multiple of max(num_kv_heads/tp, 1)"),
    ],
)
def test_all_to_all_context_parallelism_needs_whole_heads_per_rank(model, layout, words) -> None:
    check_layout(model, layout, WL)  # ring attention splits the sequence, not the heads
    with pytest.raises(InputError) as info:
        check_layout(model, layout, WL, context_parallel="all-to-all")
    err = info.value
    assert (err.field, err.value) == ("cp", layout.cp)
    assert words in err.rule and "all-to-all context parallelism" in err.rule
    assert not _heads_split_over_tp_cp(model, layout.tp, layout.cp)


def test_all_to_all_valid_mask_is_the_head_rule_on_top_of_the_others() -> None:
    layouts = [
        Layout(dp=64 // (tp * cp), tp=tp, cp=cp)
        for tp, cp in itertools.product((1, 2, 4, 8, 16), (1, 2, 4, 8, 16, 32))
        if 64 % (tp * cp) == 0
    ]
    table = LayoutTable.from_layouts(layouts)
    refused = 0
    for model in (DENSE, GQA12):
        ring = valid_mask(model, table, WL, 64)
        a2a = valid_mask(model, table, WL, 64, context_parallel="all-to-all")
        for layout, r, a in zip(layouts, ring, a2a, strict=True):
            assert bool(a) == (bool(r) and _heads_split_over_tp_cp(model, layout.tp, layout.cp)), layout
        assert a2a.any()
        refused += int((ring & ~a2a).sum())
    assert refused  # GQA12: 12 key/value heads do not split over cp = 8, nor 48 heads over tp*cp = 32
