"""Profiles from the MAMF rows: the efficiency is the published TFLOPS over the catalog peak."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cost_fixtures import H100

from twofold.cost.mamf import mamf_profiles
from twofold.errors import InputError
from twofold.hardware.types import Chip


def _row(row_id: str, hardware: str, precision: str, value: float) -> dict[str, str]:
    return {
        "id": row_id,
        "source": "ml-engineering MAMF table",
        "source_ref": "stas00/ml-engineering compute/accelerator/README.md",
        "hardware": hardware,
        "precision": precision,
        "metric": "achieved_matmul_tflops",
        "value": str(value),
    }


_CHIPS = {"h100": replace(H100, id="h100"), "h200": replace(H100, id="h200")}


def _get_chip(name: str) -> Chip:
    if name not in _CHIPS:
        raise InputError("chip", name, "unknown")
    return _CHIPS[name]


def test_efficiency_is_mamf_over_catalog_peak_and_unknown_hardware_is_reported() -> None:
    rows = [
        _row("GT0702", "NVIDIA H100 SXM", "BF16", 794.5),
        _row("GT0717", "NVIDIA H100 SXM", "FP8 e4m3", 1402.6),
        _row("GT0715", "NVIDIA H200 SXM", "FP8 e4m3", 1453.4),
        _row("GT0698", "Intel Gaudi 2", "BF16", 418.7),
        {**_row("GT0001", "NVIDIA H100 SXM", "BF16", 408.8), "metric": "tflops_per_chip"},
    ]
    profiles, skipped = mamf_profiles(rows, _get_chip)
    assert set(profiles) == {"h100", "h200"}
    # Hand arithmetic: 794.5 / 989 = 0.80334, 1402.6 / 1979 = 0.70874, 1453.4 / 1979 = 0.73441;
    # H200 has no BF16 row and takes H100's (the same die), not its own FP8 fraction.
    assert dict(profiles["h100"].gemm_efficiency) == {"bf16": 0.8033, "fp8": 0.7087}
    assert dict(profiles["h200"].gemm_efficiency) == {"bf16": 0.8033, "fp8": 0.7344}
    assert profiles["h100"].provenance["gemm_efficiency.bf16"].startswith("GT0702")
    assert "assumed" in profiles["h200"].provenance["gemm_efficiency.bf16"]
    assert profiles["h100"].provenance["basis"] == "published MAMF rows"
    assert "Intel Gaudi 2" in skipped


def test_a_row_above_peak_is_an_error_not_an_efficiency_above_one() -> None:
    with pytest.raises(InputError, match="exceeds"):
        mamf_profiles([_row("GTX", "NVIDIA H100 SXM", "BF16", 1000.0)], _get_chip)


def test_without_a_sibling_row_a_precision_takes_the_chips_other_precision() -> None:
    # Only the H200 FP8 row: no H100 BF16 to borrow, so bf16 falls back to 1453.4 / 1979 = 0.7344.
    profiles, _ = mamf_profiles([_row("GT0715", "NVIDIA H200 SXM", "FP8 e4m3", 1453.4)], _get_chip)
    assert dict(profiles["h200"].gemm_efficiency) == {"bf16": 0.7344, "fp8": 0.7344}
    assert profiles["h200"].provenance["gemm_efficiency.bf16"] == "assumed equal to the measured fp8 fraction"


def test_a_chip_without_rows_on_a_measured_die_takes_its_fractions_marked_assumed() -> None:
    # A800 and A100 40GB: the A100's SMs, clocks and 312 TFLOPS BF16 peak (the A800 differs in NVLink,
    # the 40GB part in HBM), no MAMF row of their own: GT0699's 271.2 / 312, not the 0.75 default.
    from twofold.cost.defaults import shipped_profile

    a100 = shipped_profile("a100")
    assert a100 is not None and a100.gemm_efficiency["bf16"] == pytest.approx(271.2 / 312, abs=1e-4)
    for chip_id in ("a800", "a100-40gb"):
        p = shipped_profile(chip_id)
        assert p is not None and p.chip_id == chip_id
        assert p.gemm_efficiency["bf16"] == a100.gemm_efficiency["bf16"]
        assert p.provenance["gemm_efficiency.bf16"].startswith("assumed: the measured fraction of a100")


def test_h800_takes_the_h100s_fractions_and_the_cut_down_h100_cards_do_not() -> None:
    # H800: the H100 SXM5 die (989 / 1,979 TFLOPS dense BF16 / FP8), NVLink cut: GT0702's
    # 794.5 / 989 and GT0717's 1,402.6 / 1,979. H100 PCIe (756) and NVL (835) have lower peaks and no
    # row: no profile, the GPU default.
    from twofold.cost.defaults import shipped_profile
    from twofold.cost.mamf import SAME_DIE_UNMEASURED

    assert SAME_DIE_UNMEASURED["h800"] == "h100"
    p = shipped_profile("h800")
    assert p is not None and p.chip_id == "h800"
    assert p.gemm_efficiency["bf16"] == pytest.approx(794.5 / 989, abs=1e-4)
    assert p.gemm_efficiency["fp8"] == pytest.approx(1402.6 / 1979, abs=1e-4)
    for precision in ("bf16", "fp8"):
        note = p.provenance[f"gemm_efficiency.{precision}"]
        assert note.startswith("assumed: the measured fraction of h100")
    assert "h100-pcie" not in SAME_DIE_UNMEASURED and "h100-nvl" not in SAME_DIE_UNMEASURED
    assert shipped_profile("h100-pcie") is None and shipped_profile("h100-nvl") is None
