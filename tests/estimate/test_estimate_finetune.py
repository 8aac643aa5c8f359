"""LoRA/QLoRA training estimates: memory per chip against hand counts, and what changes against full
training (gradient communication, optimizer, step time).

References: the hand counts below, written out term by term for Llama-3.1-8B (HF config: h 4096,
32 layers, 32 heads, 8 KV heads, head_dim 128, ffn 14336, vocab 128256, untied), r = 16; the NF4
storage of QLoRA (Dettmers et al. 2023, section 3: 4 + 8/64 + 32/(64*256) bits per parameter).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from twofold.errors import InputError
from twofold.estimate.training import estimate_training
from twofold.hardware.catalog import get_chip, system_for
from twofold.parallel.layout import Layout, TrainingWorkload
from twofold.workload.finetune import Finetune
from twofold.workload.registry import get_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import run_cli  # noqa: E402

GIB = 2**30
H, F, V, L = 4096, 14336, 128256, 32
LINEAR_PER_LAYER = 2 * H * H + 2 * H * 1024 + 3 * H * F  # q, o; k, v; gate, up, down
NORMS_PER_LAYER = 2 * H
EMBED = LM_HEAD = V * H
TOTAL = L * (LINEAR_PER_LAYER + NORMS_PER_LAYER) + EMBED + LM_HEAD + H
# r * (in + out) per targeted projection: q, k, v, o, gate, up, down
ADAPTERS = L * 16 * ((H + H) + 2 * (H + 1024) + (H + H) + 2 * (H + F) + (F + H))


def _estimate(ft: Finetune | None, *, layout: Layout | None = None, chips: int = 1):
    wl = TrainingWorkload(global_batch=2 * chips, seq_len=2048, finetune=ft)
    lay = layout or Layout(micro_batch=2, zero=0)
    return estimate_training(get_model("llama3.1-8b"), system_for(get_chip("h100")), lay, wl, chips=chips)


def _activations(per_token_layer: float) -> float:
    tokens = 2 * 2048
    return tokens * per_token_layer * L + 4.0 * tokens * V  # + fp32 logits kept for the loss backward


def test_hand_counts_are_the_llama3_8b_figures() -> None:
    assert TOTAL == 8_030_261_248 and ADAPTERS == 41_943_040


def test_lora_memory_matches_a_hand_count() -> None:
    e = _estimate(Finetune(method="lora", rank=16))
    weights = 2.0 * TOTAL + 2.0 * ADAPTERS
    grads, opt = 2.0 * ADAPTERS, 12.0 * ADAPTERS  # bf16 grad; fp32 master, m, v
    # Korthikanti terms with FlashAttention (bf16): norms and GEMM inputs 4*2h; q k v, attention
    # out, fp32 log-sum-exp, SwiGLU gate/up/product; plus the 7 adapters' rank-16 intermediates.
    per_token = 4 * 2 * H + 2 * (32 + 8) * 128 + 2 * 8 * 128 + 2 * 32 * 128 + 4 * 32 + 2 * 3 * F + 2 * 16 * 7
    act = _activations(per_token)
    allocated = weights + grads + opt + act
    assert e.memory_gib["weights"] * GIB == pytest.approx(weights, rel=1e-12)
    assert e.memory_gib["gradients"] * GIB == pytest.approx(grads, rel=1e-12)
    assert e.memory_gib["optimizer_states"] * GIB == pytest.approx(opt, rel=1e-12)
    assert e.memory_gib["activations"] * GIB == pytest.approx(act, rel=1e-12)
    assert e.memory_per_chip_gib * GIB == pytest.approx(allocated * 1.05 + GIB, rel=1e-12)


def test_qlora_weights_are_nf4_layers_plus_bf16_ends_by_hand() -> None:
    e = _estimate(Finetune(method="qlora", rank=16))
    nf4 = (4 + 8 / 64 + 32 / (64 * 256)) / 8
    linear = L * LINEAR_PER_LAYER
    weights = linear * nf4 + 2.0 * (TOTAL - linear) + 2.0 * ADAPTERS
    assert e.memory_gib["weights"] * GIB == pytest.approx(weights, rel=1e-12)
    assert e.memory_gib["weights"] == pytest.approx(5.39, abs=0.01)  # vs 14.96 GiB in bf16


def test_attention_only_targets_drop_the_frozen_mlp_inputs() -> None:
    full_targets = _estimate(Finetune(method="lora", targets="attention-mlp"))
    attn = _estimate(Finetune(method="lora", targets="attention"))
    tokens = 2 * 2048
    dropped = tokens * L * (2 * H + 2 * F + 2 * 16 * 3)  # MLP input, down input, 3 fewer adapters
    got = (full_targets.memory_gib["activations"] - attn.memory_gib["activations"]) * GIB
    assert got == pytest.approx(dropped, rel=1e-12)


def test_lora_reduces_only_adapter_gradients_across_data_parallel_ranks() -> None:
    """8-way DP, ZeRO-0: full training all-reduces 2 bytes x 8.03B parameters, LoRA 2 x 41.9M."""
    lay = Layout(dp=8, micro_batch=2, zero=0)
    full, lora = _estimate(None, layout=lay, chips=8), _estimate(Finetune(method="lora"), layout=lay, chips=8)
    full_dp = full.breakdown["dp"] + full.hidden_comm["dp"]
    lora_dp = lora.breakdown["dp"] + lora.hidden_comm["dp"]
    assert 0 < lora_dp < full_dp / 20
    assert lora.breakdown["optimizer"] < full.breakdown["optimizer"] / 20


def test_lora_step_is_faster_than_full_training_and_full_stays_unchanged() -> None:
    full = _estimate(None)
    lora = _estimate(Finetune(method="lora"))
    qlora = _estimate(Finetune(method="qlora"))
    assert lora.breakdown["compute_backward"] < full.breakdown["compute_backward"]
    assert qlora.step_time_s > lora.step_time_s  # dequantization each pass
    assert "finetune" not in full.to_dict()["workload"]
    assert lora.to_dict()["workload"]["finetune"] == {
        "method": "lora",
        "rank": 16,
        "targets": "attention-mlp",
        "base_precision": "bf16",
    }


def test_moe_fine_tuning_is_refused_naming_the_field() -> None:
    wl = TrainingWorkload(global_batch=8, seq_len=1024, finetune=Finetune(method="lora"))
    with pytest.raises(InputError) as err:
        estimate_training(get_model("mixtral-8x7b"), system_for(get_chip("h100")), Layout(dp=8), wl, chips=8)
    assert err.value.field == "finetune"


BASE = ("--model", "llama3.1-8b", "--chip", "h100", "--seq-len", "2048", "--global-batch", "16")


@pytest.mark.parametrize(
    "verb", [("estimate", "--chips", "8", "--micro-batch", "2"), ("plan", "--chips", "8")]
)
def test_finetune_flags_on_estimate_and_plan(
    capsys: pytest.CaptureFixture[str], verb: tuple[str, ...]
) -> None:
    code, out, _ = run_cli(capsys, *verb, *BASE, "--finetune", "qlora", "--lora-rank", "8", "--json")
    assert code == 0
    d = json.loads(out)
    expected = {"method": "qlora", "rank": 8, "targets": "attention-mlp", "base_precision": "nf4"}
    assert d["workload"]["finetune"] == expected


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        (("--finetune", "prefix"), "finetune"),
        (("--finetune", "lora", "--lora-targets", "mlp"), "lora_targets"),
        (("--finetune", "lora", "--lora-rank", "0"), "lora_rank"),
        (("--finetune", "qlora", "--base-precision", "fp4"), "base_precision"),
        (("--base-precision", "nf4"), "base_precision"),
    ],
)
def test_bad_finetune_flags_exit_2_naming_the_field(
    capsys: pytest.CaptureFixture[str], flags: tuple[str, ...], field: str
) -> None:
    code, _, err = run_cli(capsys, "estimate", *BASE, *flags)
    assert code == 2 and field in err


def test_compare_passes_finetune_through(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys, "compare", "llama3.1-8b", "--on", "h100", "--chips", "8", "--global-batch", "16",
        "--seq-len", "2048", "--finetune", "lora", "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out)["workload"]["finetune"]["method"] == "lora"
