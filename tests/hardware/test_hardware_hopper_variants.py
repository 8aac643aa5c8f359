"""H800 SXM5, H100 PCIe and H100 NVL: the Hopper parts published runs name (DeepSeek-V3's 2,048
H800, smaller runs on PCIe cards). Each chip carries the figures of NVIDIA's datasheets written out
below (recalled, not in the shared research: their sources say so); the H800 is the H100 SXM5 die
with NVLink cut to 400 GB/s, so it runs the H100's measured GEMM fraction and its 8-GPU all-reduce is
slower in proportion to the NVLink bandwidth (hand derivation of the alpha-beta formula with
NVLink SHARP, as tests/parallel/test_parallel_comm.py writes it out)."""

from __future__ import annotations

import numpy as np
import pytest

from twofold.cost.calibration import shipped_calibration
from twofold.cost.defaults import shipped_profile
from twofold.estimate import estimate_training
from twofold.hardware import get_chip, get_system, system_for
from twofold.parallel.comm import Group, LevelArrays, all_reduce_s
from twofold.parallel.layout import Layout, TrainingWorkload
from twofold.validate.reading import read_hardware
from twofold.workload.params import param_counts
from twofold.workload.registry import get_model

# NVIDIA datasheets (H800; H100 SXM/PCIe/NVL columns), dense = half the "with sparsity" figures:
# chip -> (BF16 dense TFLOPS, FP8 dense TFLOPS, HBM TB/s, capacity GiB, TDP W, SMs, default system)
DATASHEET = {
    "h800": (989, 1979, 3.35, 80, 700, 132, "hgx-h800"),  # 1,979 / 3,958 sparse; the H100 SXM's
    "h100-pcie": (756, 1513, 2.0, 80, 350, 114, "lambda-1x-h100-pcie"),  # 1,513 / 3,026 sparse
    "h100-nvl": (835, 1671, 3.9, 94, 400, 132, "h100-nvl-single"),  # 1,671 / 3,341 sparse
}


@pytest.mark.parametrize("chip_id", sorted(DATASHEET))
def test_datasheet_figures(chip_id: str) -> None:
    bf16, fp8, tb_s, gib, watts, sms, system_id = DATASHEET[chip_id]
    chip = get_chip(chip_id)
    assert chip.peak_tflops("bf16") == pytest.approx(bf16)
    assert chip.peak_tflops("fp8") == pytest.approx(fp8)
    assert chip.hbm_bandwidth_tb_s == pytest.approx(tb_s)
    assert chip.hbm_capacity_gib == gib and chip.tdp_w == watts and chip.compute_units == sms
    assert system_for(chip).id == system_id
    assert shipped_calibration().family(chip_id) == "NVIDIA Hopper"
    # Figures from outside the shared research are marked so, in their note or their source.
    keys = {s.key: s for s in chip.sources}
    for name in ("bf16_dense_tflops", "fp8_dense_tflops", "hbm_bandwidth_tb_s", "tdp_w"):
        figure = chip.figures[name]
        recalled = [k for k in figure.sources if "NOT RETRIEVED" in keys[k].title]
        assert recalled and "recalled, to be checked" in figure.note, name
        assert all("to be checked" in keys[k].title and keys[k].url for k in recalled)


def test_h100_pcie_peak_from_its_units() -> None:
    """114 SMs x 4 tensor cores x 512 FP16 FMA/clk x 2 FLOP at ~1.62 GHz is 756 TFLOPS; the SXM5's
    132 SMs at 1.83 GHz give 989."""
    pcie, sxm = get_chip("h100-pcie"), get_chip("h100")
    assert pcie.matrix_units == 114 * 4
    assert 1.62e9 * 114 * 4 * 512 * 2 / 1e12 == pytest.approx(pcie.bf16_dense_tflops, rel=1e-3)
    assert 1.83e9 * 132 * 4 * 512 * 2 / 1e12 == pytest.approx(sxm.bf16_dense_tflops, rel=1e-3)


def test_h800_is_the_h100_die() -> None:
    """Same peaks, memory and SMs as the H100 SXM5; its GEMM fraction is the H100's measured one
    (tests/cost/test_cost_mamf.py); H100 PCIe and NVL keep the GPU default."""
    h800, h100 = get_chip("h800"), get_chip("h100")
    for name in ("bf16_dense_tflops", "fp8_dense_tflops", "hbm_bandwidth_tb_s", "hbm_capacity_gib",
                 "compute_units", "matrix_units"):
        assert getattr(h800, name) == getattr(h100, name), name
    h800_profile, h100_profile = shipped_profile("h800"), shipped_profile("h100")
    assert h800_profile is not None and h100_profile is not None
    assert dict(h800_profile.gemm_efficiency) == dict(h100_profile.gemm_efficiency)


def _step(chip_id: str, layout: Layout):  # noqa: ANN202
    chip = get_chip(chip_id)
    workload = TrainingWorkload(global_batch=8, seq_len=4096, precision="bf16")
    return estimate_training(get_model("llama-3-8b"), system_for(chip), layout, workload, chip=chip)


def test_one_h800_trains_as_one_h100() -> None:
    """Same die, same HBM, same GEMM fraction and family: one chip's step is the H100's exactly."""
    h800, h100 = _step("h800", Layout(dp=1)), _step("h100", Layout(dp=1))
    assert h800.step_time_s == h100.step_time_s
    assert dict(h800.breakdown) == dict(h100.breakdown)


def test_h800_all_reduce_over_8_gpus_scales_with_nvlink(plain_alpha_beta: None) -> None:
    """8 GPUs on one NVSwitch with NVLink SHARP (Hopper): each chip sends S/2 and receives S/2 per
    pass, 7 latency steps per pass, so t = 2 (S/2 / B + 7 a) = S / B + 14 a with a = 2 us;
    B = 450 GB/s per direction on the H100, 200 on the H800 (400 GB/s bidirectional)."""
    size = 1e9
    times = {}
    for chip_id in ("h100", "h800"):
        chip = get_chip(chip_id)
        nvls = shipped_calibration().in_network_reduction(chip_id)
        assert nvls
        levels = LevelArrays.of_system(system_for(chip), in_network_reduction=nvls)
        group = Group.place(levels, [(np.array([8.0]), np.array([1.0]))])
        times[chip_id] = float(all_reduce_s(levels, group, np.array([size]))[0])
    assert times["h100"] == pytest.approx(size / 450e9 + 14 * 2e-6)
    assert times["h800"] == pytest.approx(size / 200e9 + 14 * 2e-6)
    # The bandwidth terms are in the ratio of the NVLink bandwidths: 450 / 200 = 2.25.
    assert (times["h800"] - 28e-6) / (times["h100"] - 28e-6) == pytest.approx(450 / 200)
    # In a training step (dp=8, 8B parameters) the gradient all-reduce, exposed plus hidden, moves
    # gigabytes in one call per bucket of 40M parameters (`estimate.comm_plan`), each call paying
    # the 14 latency steps: without those, it takes 2.25x as long on the H800.
    dp = {c: (lambda e: e.breakdown["dp"] + e.hidden_comm["dp"])(_step(c, Layout(dp=8))) for c in times}
    calls = param_counts(get_model("llama-3-8b")).total / 40e6
    latency = calls * 14 * 2e-6
    assert (dp["h800"] - latency) / (dp["h100"] - latency) == pytest.approx(450 / 200, rel=1e-3)


def test_hgx_h800_network_is_the_dgx_h100_one_assumed() -> None:
    nvlink, network = get_system("hgx-h800").levels
    assert nvlink.bandwidth_gb_s_per_chip == pytest.approx(400 / 2) and nvlink.domain_chips == 8
    assert network.kind == "network" and network.assumed
    assert network.bandwidth_gb_s_per_chip == pytest.approx(400 / 8)  # 400 Gb/s NDR per GPU


@pytest.mark.parametrize("system_id", ["h100-pcie-pair", "h100-nvl-pair"])
def test_bridged_pair_all_reduce_is_a_ring_of_two(system_id: str, plain_alpha_beta: None) -> None:
    """NVLink bridge: 600 GB/s bidirectional = 300 per direction, no switch, so no SHARP even on
    Hopper: ring all-reduce of 2, t = 2 ((2-1)/2 S / B + 1 a)."""
    system = get_system(system_id)
    assert system.max_chips == 2
    levels = LevelArrays.of_system(system, in_network_reduction=True)
    group = Group.place(levels, [(np.array([2.0]), np.array([1.0]))])
    size = 1e9
    t = float(all_reduce_s(levels, group, np.array([size]))[0])
    assert t == pytest.approx(2 * (0.5 * size / 300e9 + 2e-6))


def test_lambda_h100_pcie_price() -> None:
    """shared/data/prices_power.yaml (SkyPilot Lambda catalog, grade B): '1x H100 PCIe 3.29'."""
    quote = get_system("lambda-1x-h100-pcie").price("on-demand")
    assert quote.usd_per_chip_hour == pytest.approx(3.29) and quote.quality == "B"


@pytest.mark.parametrize(
    ("text", "chip_id"),
    [
        ("NVIDIA H800", "h800"),
        ("H800 SXM5 80GB", "h800"),
        ("H800", "h800"),
        ("H100 PCIe", "h100-pcie"),
        ("H100-PCIE-80GB", "h100-pcie"),
        ("H100 NVL", "h100-nvl"),
        ("H100 SXM", "h100"),
        ("H100 80GB HBM3", "h100"),
        ("DGX H100", "h100"),
    ],
)
def test_reading_the_spellings(text: str, chip_id: str) -> None:
    reading = read_hardware(text)
    assert reading is not None and reading.chip == chip_id and reading.family == "NVIDIA Hopper"
