"""LoRA/QLoRA fine-tuning: FLOPs, trainable parameters and quantized base bytes.

References: `torch.utils.flop_counter.FlopCounterMode` over the plain PyTorch modules of
`torch_reference.py` with every base parameter frozen (`requires_grad=False`) and PEFT-style LoRA
adapters (`lora_A`, `lora_B` bias-free `nn.Linear`s, output `base(x) + lora_B(lora_A(x)) * scale`,
as `peft.tuners.lora.layer.Linear` computes); the PEFT trainable count `sum(p.numel() for p in
m.parameters() if p.requires_grad)`; the QLoRA paper's 4.127 bits per parameter worked by hand.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch_reference import LanguageModel, Layer, by_family, flop_counter

from twofold.errors import InputError
from twofold.workload.finetune import (
    NF4_BITS_PER_PARAM,
    Finetune,
    adapter_params,
    base_bytes_per_param,
    finetune_from_flags,
    layer_linear_weights,
)
from twofold.workload.graph import training_ops
from twofold.workload.model import ModelConfig

torch.manual_seed(0)

_TARGETS = {
    "attention": ("q", "k", "v", "o"),
    "attention-mlp": ("q", "k", "v", "o", "gate", "up", "down"),
    "all": ("q", "k", "v", "o", "gate", "up", "down", "lm_head"),
}


def _config(**overrides: object) -> ModelConfig:
    base: dict[str, object] = {
        "name": "tiny",
        "family": "llama",
        "num_layers": 2,
        "hidden_size": 32,
        "num_attention_heads": 4,
        "num_kv_heads": 2,
        "head_dim": 8,
        "intermediate_size": 48,
        "vocab_size": 64,
    }
    return ModelConfig(**(base | overrides))  # type: ignore[arg-type]


class LoraLinear(nn.Module):
    """PEFT's LoRA Linear: frozen base, trainable A (in -> r) and B (r -> out), no bias."""

    def __init__(self, base: nn.Linear, rank: int) -> None:
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(base.in_features, rank, bias=False)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False)
        nn.init.normal_(self.lora_B.weight)  # PEFT zero-initialises B; any value counts the same

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.lora_B(self.lora_A(x)) * 2.0


def _peft(module: nn.Module, targets: tuple[str, ...], rank: int) -> nn.Module:
    """Freeze everything, then wrap the targeted linears (by attribute name) with adapters."""
    for p in module.parameters():
        p.requires_grad_(False)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if name in targets and isinstance(child, nn.Linear):
                setattr(parent, name, LoraLinear(child, rank))
    return module


def _ours(ops: tuple, prefix: str = "") -> dict[str, int]:
    out = {"gemm": 0, "attention": 0}
    for op in ops:
        if op.name.startswith(prefix) and op.phase in ("forward", "backward") and op.kind in out:
            out[op.kind] += int(op.total_flops)
    return out


@pytest.mark.parametrize("targets", sorted(_TARGETS))
@pytest.mark.parametrize("gated", [True, False])
def test_lora_layer_flops_match_flop_counter_with_frozen_base(targets: str, gated: bool) -> None:
    """One middle layer (its input needs a gradient): frozen GEMMs dgrad only, adapters both."""
    model = _config(num_layers=1, mlp_gated=gated, activation="silu" if gated else "gelu")
    layer = _peft(Layer(model, moe=False), _TARGETS[targets], rank=4)
    x = torch.randn(2, 8, model.hidden_size, requires_grad=True)
    with flop_counter() as counter:
        layer(x).float().sum().backward()
    ops = training_ops(
        model, micro_batch=2, seq_len=8, finetune=Finetune(method="lora", rank=4, targets=targets)
    )
    assert _ours(ops, "layer.") == by_family(counter)


@pytest.mark.parametrize("targets", sorted(_TARGETS))
def test_lora_whole_model_flops_match_flop_counter_but_the_first_layer_qkv_dgrad(targets: str) -> None:
    """Embedding to loss. PyTorch skips the first layer's QKV dgrad and its adapters' A dgrad (the
    frozen embedding needs no gradient); twofold prices every layer as a middle one
    (`finetune_training_ops` docstring), so it counts exactly those FLOPs more."""
    model = _config()
    rank, batch, seq = 4, 2, 8
    lm = _peft(LanguageModel(model), _TARGETS[targets], rank)
    tokens = torch.randint(0, model.vocab_size, (batch, seq))
    with flop_counter() as counter:
        lm(tokens).backward()
    ops = training_ops(
        model, micro_batch=batch, seq_len=seq, finetune=Finetune(method="lora", rank=rank, targets=targets)
    )
    h, qkv = model.hidden_size, (4 + 2 * 2) * 8
    first_layer_extra = 2 * batch * seq * qkv * h + 2 * batch * seq * 3 * rank * h
    torch_counts = by_family(counter)
    ours = _ours(ops)
    assert ours["attention"] == torch_counts["attention"]
    assert ours["gemm"] == torch_counts["gemm"] + first_layer_extra


def test_no_backward_for_the_embedding_and_no_wgrad_for_frozen_gemms() -> None:
    ops = training_ops(_config(), micro_batch=1, seq_len=8, finetune=Finetune(method="lora"))
    names = {op.name for op in ops if op.phase == "backward"}
    assert not any(n.startswith("embedding") for n in names)
    assert {"layer.attn.qkv.dgrad", "lm_head.dgrad", "layer.attn.qkv.lora_a.wgrad"} <= names
    assert not {"layer.attn.qkv.wgrad", "lm_head.wgrad", "layer.mlp.down.wgrad"} & names


@pytest.mark.parametrize("targets", sorted(_TARGETS))
@pytest.mark.parametrize("rank", [1, 8, 16])
def test_trainable_params_match_a_peft_style_module(targets: str, rank: int) -> None:
    model = _config()
    lm = _peft(LanguageModel(model), _TARGETS[targets], rank)
    trainable = sum(p.numel() for p in lm.parameters() if p.requires_grad)
    per_layer, outer = adapter_params(model, Finetune(method="lora", rank=rank, targets=targets))
    assert per_layer * model.num_layers + outer == trainable


def test_adapter_params_by_hand_for_llama3_8b_rank_16() -> None:
    """Llama-3-8B, r = 16, q k v o gate up down: per layer 16 * [(4096 + 4096) + 2 (4096 + 1024) +
    (4096 + 4096) + 2 (4096 + 14336) + (14336 + 4096)] = 16 * 81920 per layer, 41.9M in 32 layers."""
    model = _config(
        hidden_size=4096,
        num_attention_heads=32,
        num_kv_heads=8,
        head_dim=128,
        intermediate_size=14336,
        vocab_size=128256,
        num_layers=32,
    )
    per_layer, outer = adapter_params(model, Finetune(method="lora", rank=16))
    hand = 16 * ((4096 + 4096) + 2 * (4096 + 1024) + (4096 + 4096) + 2 * (4096 + 14336) + (14336 + 4096))
    assert per_layer == hand == 1_310_720
    assert outer == 0
    assert per_layer * 32 == 41_943_040


def test_qlora_base_bytes_by_hand() -> None:
    """NF4 with double quantization: 4 bits + 8-bit scale / 64 + 32-bit scale / (64 * 256)."""
    assert NF4_BITS_PER_PARAM == pytest.approx(4.127, abs=5e-4)
    assert base_bytes_per_param("nf4") == pytest.approx((4 + 0.125 + 32 / 16384) / 8)
    assert base_bytes_per_param("int8") == 1.0 and base_bytes_per_param("bf16") == 2.0
    model = _config(
        hidden_size=4096,
        num_attention_heads=32,
        num_kv_heads=8,
        head_dim=128,
        intermediate_size=14336,
        vocab_size=128256,
        num_layers=32,
    )
    # q 4096^2, k and v 4096*1024, o 4096^2, gate up down 3 * 4096 * 14336
    assert layer_linear_weights(model) == 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336


def test_qlora_dequantizes_each_layer_weight_in_forward_and_backward() -> None:
    model = _config()
    ops = training_ops(model, micro_batch=1, seq_len=8, finetune=Finetune(method="qlora"))
    deq = [op for op in ops if op.name.endswith(".dequant")]
    fwd = {op.name for op in deq if op.phase == "forward"}
    bwd = {op.name for op in deq if op.phase == "backward"}
    assert (
        fwd
        == bwd
        == {
            "layer.attn.qkv.dequant",
            "layer.attn.out.dequant",
            "layer.mlp.up_gate.dequant",
            "layer.mlp.down.dequant",
        }
    )
    qkv = next(op for op in deq if op.name == "layer.attn.qkv.dequant")
    elements = 32 * (4 + 2 * 2) * 8
    assert qkv.bytes_read == pytest.approx(elements * NF4_BITS_PER_PARAM / 8)
    assert qkv.bytes_written == elements * 2
    lora = training_ops(model, micro_batch=1, seq_len=8, finetune=Finetune(method="lora"))
    assert not any(op.name.endswith(".dequant") for op in lora)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"method": "lora", "rank": 0}, "lora_rank"),
        ({"method": "lora", "targets": "mlp"}, "lora_targets"),
        ({"method": "qlora", "base_precision": "bf16"}, "base_precision"),
        ({"method": "lora", "base_precision": "fp4"}, "base_precision"),
    ],
)
def test_bad_finetune_values_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(InputError) as err:
        Finetune(**kwargs)
    assert err.value.field == field


def test_flags_full_is_none_and_qlora_defaults_to_nf4() -> None:
    assert finetune_from_flags(None) is None and finetune_from_flags("full") is None
    assert finetune_from_flags("qlora").base == "nf4"
    with pytest.raises(InputError) as err:
        finetune_from_flags("prefix")
    assert err.value.field == "finetune"
