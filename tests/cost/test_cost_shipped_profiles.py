"""Shipped profiles against their sources: the published MAMF rows and the hardware catalog."""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np
import pytest
from cost_fixtures import gemm

from twofold.cost import op_times_s, profile_for, profile_to_dict, shipped_profile
from twofold.cost.calibration import UNCALIBRATED
from twofold.cost.mamf import mamf_profiles
from twofold.hardware.catalog import get_chip, list_chips

_PROFILES = resources.files("twofold.cost").joinpath("profiles")
_SHIPPED = sorted(p.name.removesuffix(".yaml") for p in _PROFILES.iterdir() if p.name.endswith(".yaml"))


def _rows() -> dict[str, dict[str, str]]:
    text = resources.files("twofold.validate").joinpath("data", "published_results.csv").read_text("utf-8")
    return {row["id"]: row for row in csv.DictReader(text.splitlines())}


def test_profiles_are_shipped_for_the_mamf_chips() -> None:
    # ml-engineering MAMF table rows GT0699-GT0709 name these catalogued GPUs.
    assert {"a100", "h100", "h200", "b200", "gb200", "mi300x"} <= set(_SHIPPED)


@pytest.mark.parametrize("chip_id", _SHIPPED)
def test_shipped_efficiency_is_the_cited_row_over_the_catalog_peak(chip_id: str) -> None:
    rows = _rows()
    profile = shipped_profile(chip_id)
    assert profile is not None and profile.chip_id == chip_id
    chip = get_chip(chip_id)
    assert chip.id == chip_id
    assert profile_for(chip, UNCALIBRATED) is profile
    cited = 0
    for precision, efficiency in profile.gemm_efficiency.items():
        note = profile.provenance[f"gemm_efficiency.{precision}"]
        if note.startswith("assumed: the measured fraction of") and "(GT" in note:
            # A chip on a measured chip's die (cost.mamf.SAME_DIE / SAME_DIE_UNMEASURED): that
            # chip's row over the same peak.
            note = note.split("(", 1)[1]
        if not note.startswith("GT"):
            continue
        row = rows[note.split(":")[0]]
        assert row["metric"] == "achieved_matmul_tflops"
        assert efficiency == pytest.approx(float(row["value"]) / chip.peak_tflops(precision), abs=5e-5)
        cited += 1
    assert cited >= 1


def test_shipped_files_are_what_the_fit_script_produces() -> None:
    """Same check as `python benchmarks/fit_profiles.py --check`."""
    fitted, _ = mamf_profiles(_rows().values(), get_chip)
    assert sorted(fitted) == _SHIPPED
    for chip_id, profile in fitted.items():
        assert profile_to_dict(profile) == profile_to_dict(shipped_profile(chip_id))  # type: ignore[arg-type]


def test_every_catalog_chip_gets_a_profile_and_finite_times() -> None:
    ops = [gemm(4096, 4096, 4096), gemm(1, 4096, 4096)]
    for chip in list_chips():
        profile = profile_for(chip)
        assert profile.chip_id == chip.id
        if chip.bf16_dense_tflops is None:
            continue
        t = op_times_s(ops, chip, profile)
        assert np.all(np.isfinite(t)) and np.all(t > 0), chip.id
