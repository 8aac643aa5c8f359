"""Interleaved pipelines pay per chunk step (`estimate.comm_plan`, "PP chunks").

References: a hand derivation of the added time from the system's link latency (hardware YAML)
and the profile's per-operator overhead; Narayanan et al. 2021 section 2.2.2 for the trade (the
bubble shrinks as 1/vp, the schedule steps grow as vp), so some vp between 1 and one layer per
chunk is best when the bubble is small.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from twofold.cost.calibration import shipped_calibration
from twofold.cost.defaults import profile_for
from twofold.estimate import evaluate_layouts
from twofold.hardware.catalog import get_chip, system_for
from twofold.parallel.layout import Layout, LayoutTable, TrainingWorkload
from twofold.workload import get_model

OP_OVERHEAD_S = 25e-6
PP = 4
WORKLOAD = TrainingWorkload(global_batch=32, seq_len=2048)  # dp = 1, micro_batch 1: m = 32


def _small_model():
    """A 48-layer, 1024-wide Llama: short micro-batches, so the bubble is small."""
    base = get_model("llama3.1-8b")
    return dataclasses.replace(
        base,
        name="llama-48x1024",
        hidden_size=1024,
        num_layers=48,
        num_attention_heads=8,
        num_kv_heads=8,
        head_dim=128,
        intermediate_size=3072,
    )


def _evaluate(vps: list[int]):
    chip = get_chip("h100")
    system = system_for(chip)
    profile = dataclasses.replace(profile_for(chip, shipped_calibration()), op_overhead_s=OP_OVERHEAD_S)
    table = LayoutTable.from_layouts([Layout(dp=1, tp=1, pp=PP, vp=v, micro_batch=1) for v in vps])
    return system, evaluate_layouts(_small_model(), system, WORKLOAD, table, chip=chip, profile=profile)


def test_chunk_steps_cost_latency_plus_op_overhead_by_hand() -> None:
    """4 chips in one NVLink domain (hgx-h100: 2 us per transfer), m = 32 micro-batches.

    vp = 4: each micro-batch crosses 2 * 4 chunk steps per rank instead of 2, so 2 * (4 - 1) = 6
    extra steps, each one link latency and one operator overhead: 32 * 6 * (2 + 25) us = 5.184 ms.
    The transfers themselves overlap the chunks' compute (hidden), so this is the exposed pp time.
    """
    vps = [2, 4, 12]
    system, r = _evaluate(vps)
    latency_s = system.levels[0].latency_us * 1e-6
    assert latency_s == pytest.approx(2e-6)
    m = 32
    for i, vp in enumerate(vps):
        hand = m * 2 * (vp - 1) * (latency_s + OP_OVERHEAD_S)
        assert r.breakdown_pp_s[i] == pytest.approx(hand, rel=1e-12)
        assert r.hidden_pp_s[i] > 0.0
    assert r.breakdown_pp_s[1] == pytest.approx(5.184e-3, rel=1e-12)


def test_one_layer_per_chunk_is_no_longer_free() -> None:
    """vp = layers / pp = 12 is one layer per chunk. Without the chunk steps it has the smallest
    bubble and is the fastest; with them an intermediate vp wins."""
    vps = [1, 2, 3, 4, 6, 12]  # divisors of 48 with pp * vp <= 50, except 8 (uneven chunks)
    _, r = _evaluate(vps)
    m = 32
    chunk_mb = np.array([2 * (vp - 1) * (2e-6 + OP_OVERHEAD_S) for vp in vps])
    # The chunk steps are paid by each of the m micro-batches and, through t_mb, by the bubble.
    bubble_share = (PP - 1) / np.array(vps, dtype=float)
    without = r.step_time_s - (m + bubble_share) * chunk_mb
    assert vps[int(np.argmin(without))] == 12
    best = vps[int(np.argmin(r.step_time_s))]
    assert 1 < best < 12
    assert r.bubble_fraction[vps.index(12)] < r.bubble_fraction[vps.index(best)]
