"""NVLink SHARP all-reduce, flat ZeRO-3 collectives, and TP/EP overlap reaching the estimate."""

from __future__ import annotations

import numpy as np
import pytest

from twofold.cost.calibration import UNCALIBRATED, TrainingCalibration
from twofold.hardware.catalog import get_system
from twofold.parallel.comm import Group, LevelArrays, all_gather_s, all_reduce_s, flat_collective_s

pytestmark = pytest.mark.usefixtures("plain_alpha_beta")  # the alpha-beta structure (tests/conftest.py)


def test_nvls_halves_the_all_reduce_bandwidth_term() -> None:
    system = get_system("hgx-h100")
    ring = LevelArrays.of_system(system)
    nvls = LevelArrays.of_system(system, in_network_reduction=True)
    s = np.asarray(1e9)
    b, alpha = 450e9, 2e-6  # catalog NVLink 4 figures of hgx-h100 (per chip, one direction)
    group = Group.place(ring, [(8.0, 1.0)])
    # Hand derivation: ring 2 * 7/8 * S / B + 2 * 7 alpha; NVLS S / B + 2 * 7 alpha.
    assert float(all_reduce_s(ring, group, s)) == pytest.approx(2 * 7 / 8 * 1e9 / b + 14 * alpha)
    assert float(all_reduce_s(nvls, group, s)) == pytest.approx(1e9 / b + 14 * alpha)
    # Reduce-scatter / all-gather move (n-1)/n S either way.
    assert float(all_gather_s(nvls, group, s)) == pytest.approx(float(all_gather_s(ring, group, s)))


def test_flat_collective_across_nodes_is_one_ring_at_the_nic_rate() -> None:
    levels = LevelArrays.of_system(get_system("hgx-a100"))  # NVLink 8 x 300 GB/s, IB 25 GB/s, 10 us
    s = np.asarray(350e9)
    across = Group.place(levels, [(1536.0, 1.0)])
    expected = 1535 / 1536 * 350e9 / 25e9 + 96 * 1535 * 10e-6
    assert float(flat_collective_s(levels, across, s, buckets=96)) == pytest.approx(expected)
    # Inside one NVLink domain, one bucket: the ordinary (hierarchical = flat ring) all-gather.
    inside = Group.place(levels, [(8.0, 1.0)])
    assert float(flat_collective_s(levels, inside, s)) == pytest.approx(
        float(all_gather_s(levels, inside, s))
    )


def test_flat_collective_is_hierarchical_on_a_multi_host_scale_up_domain() -> None:
    # GB200 NVL72: one NVLink domain of 72 chips on hosts of 4 (catalog), IB across racks.
    system = get_system("gb200-nvl72")
    levels = LevelArrays.of_system(system)
    assert [lv.multi_host for lv in levels] == [True, False]
    assert not any(lv.multi_host for lv in LevelArrays.of_system(get_system("hgx-a100")))
    s = np.asarray(800e9)
    # dp 64 at stride tp = 2 over two racks: 36 members per rack, then 2 racks (hand placement).
    group = Group.place(levels, [(64.0, 2.0)])
    assert float(group.cum[0]) == 36.0
    hier = float(all_gather_s(levels, group, s)) + 125 * float(all_gather_s(levels, group, np.asarray(0.0)))
    assert float(flat_collective_s(levels, group, s, buckets=126)) == pytest.approx(hier)
    # ... far below the flat ring at one NIC's rate, which the 8-GPU-host systems keep.
    nic = levels[1].bandwidth_bytes_s
    assert hier < 0.25 * 63 / 64 * 800e9 / nic


def _estimate(calibration: TrainingCalibration, **layout: int) -> dict[str, float]:
    from twofold.estimate import estimate_training
    from twofold.parallel.layout import Layout, TrainingWorkload
    from twofold.workload.registry import get_model

    model, system = get_model("llama-3-8b"), get_system("hgx-h100")
    work = TrainingWorkload(global_batch=8, seq_len=4096, precision="bf16")
    return dict(estimate_training(model, system, Layout(**layout), work, calibration=calibration).breakdown)


def test_tp_overlap_hides_that_fraction_of_tp_communication() -> None:
    families = {"h100": "NVIDIA Hopper"}
    # Same family (and so the same NVLS setting) on both sides: the overlap is the only difference.
    plain = _estimate(TrainingCalibration(chip_families=families), tp=8, dp=1, micro_batch=1)
    hidden = _estimate(
        TrainingCalibration(chip_families=families, tp_comm_overlap={"NVIDIA Hopper": 0.25}),
        tp=8,
        dp=1,
        micro_batch=1,
    )
    assert plain["tp"] > 0
    assert hidden["tp"] == pytest.approx(0.75 * plain["tp"], rel=1e-12)
    assert hidden["compute_forward"] == pytest.approx(plain["compute_forward"], rel=1e-12)
    # Unknown family (UNCALIBRATED has none): no overlap.
    assert _estimate(UNCALIBRATED, tp=8, dp=1, micro_batch=1)["tp"] == pytest.approx(plain["tp"], rel=1e-12)
