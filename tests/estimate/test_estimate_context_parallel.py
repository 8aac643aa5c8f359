"""All-to-all (DeepSpeed-Ulysses) context parallelism against ring attention in the estimator:
the all-to-all bytes derived by hand from the model and the layout (Jacobs et al., arXiv
2309.14509, section 3: all-to-alls of Q, K, V and the output per layer, the same backward),
priced at the alpha-beta all-to-all cost written out here, how that traffic scales (with the
hidden size; with cp as (cp-1)/cp^2, not with ring attention's cp-1 steps), and the head rule
refused by the estimator and the CLI (exit 2)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from twofold.cost.calibration import UNCALIBRATED
from twofold.errors import InputError
from twofold.estimate import estimate_training
from twofold.hardware.catalog import get_chip, system_for
from twofold.hardware.types import System
from twofold.parallel.layout import Layout, TrainingWorkload
from twofold.workload.model import ModelConfig
from twofold.workload.registry import get_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import run_cli  # noqa: E402

A100 = get_chip("a100")
HGX_A100 = system_for(A100)  # one switched NVLink level of 8 chips, 300 GB/s and 2 us per chip


def _no_latency(system: System) -> System:
    return replace(system, levels=tuple(replace(lv, latency_us=0.0) for lv in system.levels))


def _model(hidden: int, heads: int, kv: int) -> ModelConfig:
    return ModelConfig(
        name=f"gqa-{heads}h",
        family="llama",
        num_layers=4,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=kv,
        head_dim=hidden // heads,
        intermediate_size=4 * hidden,
        vocab_size=32000,
        max_position_embeddings=65536,
    )


def test_all_to_all_bytes_of_llama_8b_on_eight_a100_match_the_hand_derivation() -> None:
    # Llama 3.1 8B: 32 layers, 32 query heads, 8 key/value heads, head_dim 128; bf16 (2 bytes).
    # Layout cp = 8 (tp 1) on one HGX A100 node, seq 65536, micro-batch 1: each rank holds
    # 65536 / 8 = 8192 tokens before the exchange and sends what it holds, itself included:
    #   Q: 8192 x 32 x 128 x 2 = 67,108,864 B     K: 8192 x 8 x 128 x 2 = 16,777,216 B
    #   V: 16,777,216 B                          O: 8192 x 32 x 128 x 2 = 67,108,864 B
    # 167,772,160 B in four all-to-alls (DeepSpeed calls one per tensor) per layer forward, and
    # the same four backward (dO in; dQ, dK, dV out). An all-to-all over n = 8 chips of one
    # switched level moves 7/8 of it at B = 300e9 B/s and pays 7 latencies of 2 us:
    qkvo = 8192 * (32 + 8 + 8 + 32) * 128 * 2
    assert qkvo == 167_772_160
    per_layer_pass = 7 / 8 * qkvo / 300e9 + 4 * 7 * 2e-6
    micro_batches = 4
    expected = micro_batches * 32 * 2 * per_layer_pass  # layers x (forward + backward)
    model = get_model("llama3.1-8b")
    workload = TrainingWorkload(global_batch=micro_batches, seq_len=65536)
    est = estimate_training(
        model, HGX_A100, Layout(cp=8), workload, chip=A100, calibration=UNCALIBRATED, stack="deepspeed"
    )
    assert est.breakdown["cp"] == pytest.approx(expected, rel=1e-9)
    assert est.hidden_comm["cp"] == 0.0  # on the critical path: nothing hides
    # Full recompute reruns the forward's four all-to-alls: 3 passes instead of 2.
    full = estimate_training(
        model,
        HGX_A100,
        Layout(cp=8, recompute="full"),
        workload,
        chip=A100,
        calibration=UNCALIBRATED,
        stack="deepspeed",
    )
    assert full.breakdown["cp"] == pytest.approx(expected * 3 / 2, rel=1e-9)
    # Ring attention on the same layout moves K/V chunks that hide behind attention instead.
    ring = estimate_training(
        model, HGX_A100, Layout(cp=8), workload, chip=A100, calibration=UNCALIBRATED, stack="megatron"
    )
    assert ring.hidden_comm["cp"] > 0.0


def test_replicated_kv_heads_are_sent_to_every_rank() -> None:
    # 16 query heads and 2 key/value heads on cp = 8: DeepSpeed replicates the kv heads so each of
    # the 8 ranks receives one, so K and V carry 8 heads (not 2) per token: per rank
    # 2048 tokens x (16 + 8 + 8 + 16) x 64 x 2 bytes, 7/8 of it on the wire, no latency.
    model = _model(hidden=1024, heads=16, kv=2)
    workload = TrainingWorkload(global_batch=1, seq_len=16384)
    est = estimate_training(
        model,
        _no_latency(HGX_A100),
        Layout(cp=8),
        workload,
        chip=A100,
        calibration=UNCALIBRATED,
        stack="deepspeed",
    )
    sent = 2048 * (16 + 8 + 8 + 16) * 64 * 2
    assert est.breakdown["cp"] == pytest.approx(4 * 2 * 7 / 8 * sent / 300e9, rel=1e-9)


def _cp_seconds(model: ModelConfig, cp: int, stack: str) -> tuple[float, float]:
    """(exposed, hidden) context-parallel seconds of one step without link latency."""
    est = estimate_training(
        model,
        _no_latency(HGX_A100),
        Layout(cp=cp),
        TrainingWorkload(global_batch=1, seq_len=16384),
        chip=A100,
        calibration=UNCALIBRATED,
        stack=stack,
    )
    return est.breakdown["cp"], est.hidden_comm["cp"]


def test_all_to_all_traffic_grows_with_the_hidden_size() -> None:
    # Twice the heads at the same head_dim (hidden 1024 -> 2048, kv 4 -> 8): every exchanged
    # tensor is twice as wide, so twice the bytes and, without latency, twice the seconds.
    small, _ = _cp_seconds(_model(hidden=1024, heads=16, kv=4), 4, "deepspeed")
    large, _ = _cp_seconds(_model(hidden=2048, heads=32, kv=8), 4, "deepspeed")
    assert small > 0 and large == pytest.approx(2 * small, rel=1e-9)


def test_all_to_all_traffic_follows_the_collective_not_the_ring_steps() -> None:
    # Fixed sequence s = 16384, 4 layers, one micro-batch, no latency, B = 300e9 B/s. All-to-all:
    # each rank sends s/cp tokens x (16 + kv + kv + 16) heads x 64 x 2 bytes per pass, kv = 4 key/
    # value heads or cp when cp exceeds them (replicated), (cp-1)/cp of it on the wire: (cp-1)/cp^2
    # of the sequence, shrinking with cp while the heads are not replicated. Ring attention moves its
    # s/cp-token K/V chunk (4 kv heads x 2 x 64 x 2 bytes per token) in cp-1 steps, once forward
    # and twice backward (K, V and their gradients): (cp-1)/cp of the sequence, growing with cp.
    model = _model(hidden=1024, heads=16, kv=4)
    s, layers, bandwidth = 16384, 4, 300e9
    for cp in (2, 4, 8):
        a2a, hidden = _cp_seconds(model, cp, "deepspeed")
        kv = max(4, cp)
        per_pass = (cp - 1) / cp * (s / cp) * (16 + kv + kv + 16) * 64 * 2 / bandwidth
        assert hidden == 0.0 and a2a == pytest.approx(layers * 2 * per_pass, rel=1e-9)
        ring_exposed, ring_hidden = _cp_seconds(model, cp, "megatron")
        chunk = (s / cp) * 4 * 2 * 64 * 2 / bandwidth
        assert ring_exposed + ring_hidden == pytest.approx(layers * 3 * (cp - 1) * chunk, rel=1e-9)


def test_the_head_rule_refuses_what_ring_attention_allows() -> None:
    # Llama 3.1 8B has 32 query heads: tp 2 x cp 32 = 64 ranks cannot each hold whole heads after
    # the all-to-all; ring attention shards the sequence, not the heads, and takes the layout.
    model, h100 = get_model("llama3.1-8b"), get_chip("h100")
    system = system_for(h100)
    workload = TrainingWorkload(global_batch=8, seq_len=65536)
    layout = Layout(tp=2, cp=32)
    ring = estimate_training(model, system, layout, workload, chip=h100, chips=64, stack="megatron")
    assert ring.breakdown["cp"] >= 0.0
    with pytest.raises(InputError) as info:
        estimate_training(model, system, layout, workload, chip=h100, chips=64, stack="deepspeed")
    assert info.value.field == "cp" and info.value.value == 32
    assert "tp*cp does not divide num_attention_heads=32" in str(info.value)


def test_cli_refuses_the_layout_with_exit_2_and_prices_the_all_to_all(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ("estimate", "--model", "llama3.1-8b", "--chip", "h100", "--seq-len", "65536")
    code, _, err = run_cli(capsys, *args, "--chips", "64", "--tp", "2", "--cp", "32", "--stack", "deepspeed")
    assert code == 2
    assert "cp=32" in err and "num_attention_heads=32" in err and "all-to-all" in err
    code, out, _ = run_cli(capsys, *args, "--chips", "8", "--cp", "8", "--stack", "deepspeed", "--json")
    result = json.loads(out)
    assert code == 0 and result["provenance"]["mechanisms"]["context_parallel"] == "all-to-all"
    assert result["breakdown"]["cp_s"] > 0 and result["hidden_comm"]["cp_s"] == 0
