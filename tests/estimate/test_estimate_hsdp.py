"""Hybrid sharding (`Layout.shard`, PyTorch FSDP HYBRID_SHARD / HSDP): model states sharded within
groups of `shard` data-parallel ranks and replicated across them; the ZeRO-3 collectives stay in
the group, the gradient shards are all-reduced across replicas once per step."""

from __future__ import annotations

import pytest

from twofold.cost.stack import get_stack
from twofold.errors import InputError
from twofold.estimate import estimate_training
from twofold.hardware.catalog import get_chip, system_for
from twofold.parallel.layout import Layout, TrainingWorkload
from twofold.parallel.memory import state_bytes
from twofold.workload import get_model
from twofold.workload.params import param_counts

MODEL = get_model("llama2-7b")
CHIP = get_chip("a100")
SYSTEM = system_for(CHIP, None)
WORK = TrainingWorkload(global_batch=256, seq_len=4096)


def _est(**kw: int | None):
    return estimate_training(MODEL, SYSTEM, Layout(dp=128, zero=3, micro_batch=2, **kw), WORK, stack="fsdp")


def test_shard_equal_to_dp_is_full_sharding() -> None:
    assert Layout(dp=16, zero=3, shard=16) == Layout(dp=16, zero=3)
    full, same = _est(), _est(shard=128)
    assert same.step_time_s == pytest.approx(full.step_time_s)
    assert same.memory_per_chip_gib == pytest.approx(full.memory_per_chip_gib)


def test_states_are_sharded_over_the_group_only() -> None:
    # Hand derivation: gradients and optimizer states per chip are P * bytes / group under ZeRO-3,
    # so going from 128 to 8 ranks adds P * (g + o) * (1/8 - 1/128) bytes, with the bytes where the
    # stack keeps its states (`cost.stack` model_state_bytes: FSDP's fp32 master weights, 4 + 4 + 8).
    sb = state_bytes("bf16", get_stack("fsdp").model_state_bytes(None))
    p = param_counts(MODEL).total
    extra = p * (sb.gradients + sb.optimizer) * (1 / 8 - 1 / 128) / 2**30
    full, hybrid = _est(), _est(shard=8)
    states = ("gradients_gib", "optimizer_states_gib")
    grown = sum(hybrid.to_dict()["memory"][k] - full.to_dict()["memory"][k] for k in states)
    assert grown == pytest.approx(extra, rel=1e-6)


def test_in_node_sharding_spends_less_time_on_ib_collectives() -> None:
    # 128 A100s = 16 nodes: full sharding all-gathers every layer over InfiniBand, hybrid sharding
    # within the 8-GPU NVLink node and all-reduces only 1/8 of the gradients across nodes.
    full, hybrid = _est(), _est(shard=8)
    assert hybrid.breakdown["fsdp"] < full.breakdown["fsdp"]
    assert hybrid.step_time_s < full.step_time_s


def test_bad_shard_is_refused() -> None:
    with pytest.raises(InputError, match="must divide dp"):
        _est(shard=7)
    with pytest.raises(InputError, match="needs zero=3"):
        estimate_training(MODEL, SYSTEM, Layout(dp=128, zero=1, shard=8), WORK)
