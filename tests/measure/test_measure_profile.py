"""Profile files: the YAML written for the local chip reads back to the same chip and profile.

Reference: the hand-set chip and profile below; every field read back is compared with them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from twofold.cost.profile import CalibrationProfile
from twofold.errors import InputError
from twofold.hardware.local import (
    default_profile_path,
    load_local_chip,
    local_profile_dict,
    save_profile_file,
)
from twofold.hardware.types import Chip

CHIP = Chip(
    id="local",
    name="Test CPU 9000",
    vendor="intel",
    family="cpu",
    architecture="cpu",
    fp32_dense_tflops=0.3,
    bf16_dense_tflops=1.5,
    hbm_bandwidth_tb_s=0.09,
    hbm_capacity_gib=24.0,
    compute_units=2,
)
PROFILE = CalibrationProfile(
    chip_id="local",
    gemm_efficiency={"fp32": 0.9, "bf16": 0.7},
    gemm_half_flops=1.2e7,
    memory_efficiency=0.4,
    attention_efficiency=0.25,
    op_overhead_s=3e-5,
    extra={"kernel_overhead_s": 2e-6},
)
PROV = {"run_id": "20260101T000000Z-abc-0001", "date": "2026-01-01T00:00:00+00:00", "threads": 2}


def _write(tmp_path: Path, name: str = "p.yaml") -> Path:
    return save_profile_file(tmp_path / name, local_profile_dict(CHIP, PROFILE, PROV))


def test_round_trip(tmp_path: Path) -> None:
    chip = load_local_chip(str(_write(tmp_path)))
    for field in ("id", "name", "vendor", "architecture", "fp32_dense_tflops", "bf16_dense_tflops"):
        assert getattr(chip, field) == getattr(CHIP, field)
    assert chip.hbm_bandwidth_tb_s == CHIP.hbm_bandwidth_tb_s
    assert chip.compute_units == 2
    cal = chip.calibration
    assert isinstance(cal, CalibrationProfile)
    assert dict(cal.gemm_efficiency) == {"fp32": 0.9, "bf16": 0.7}
    assert (cal.gemm_half_flops, cal.memory_efficiency, cal.attention_efficiency, cal.op_overhead_s) == (
        1.2e7,
        0.4,
        0.25,
        3e-5,
    )
    assert dict(cal.extra) == {"kernel_overhead_s": 2e-6}
    assert cal.provenance["run_id"] == PROV["run_id"] and cal.provenance["threads"] == "2"


def test_local_reads_twofold_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWOFOLD_HOME", str(tmp_path))
    with pytest.raises(InputError, match="run `twofold measure` first"):
        load_local_chip("local")
    assert default_profile_path() == tmp_path / "profiles" / "local.yaml"
    save_profile_file(default_profile_path(), local_profile_dict(CHIP, PROFILE, PROV))
    assert load_local_chip("local").name == "Test CPU 9000"


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("chip", "hbm_bandwidth_tb_s"),
        ("chip", "name"),
        ("calibration", "gemm_efficiency"),
        ("chip", "architecture"),
    ],
)
def test_missing_field_names_the_field(tmp_path: Path, section: str, field: str) -> None:
    path = _write(tmp_path)
    doc = yaml.safe_load(path.read_text())
    del doc[section][field]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(InputError) as info:
        load_local_chip(str(path))
    assert field in str(info.value)


def test_bad_values_are_input_errors(tmp_path: Path) -> None:
    path = _write(tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc["calibration"]["memory_efficiency"] = 1.7
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(InputError, match="memory_efficiency"):
        load_local_chip(str(path))
    path.write_text("twofold_profile: 1\nchip: [1, 2]\n")
    with pytest.raises(InputError, match="chip"):
        load_local_chip(str(path))
    path.write_text(": not yaml : [")
    with pytest.raises(InputError, match="not valid YAML"):
        load_local_chip(str(path))
    with pytest.raises(InputError, match="no such profile file"):
        load_local_chip(str(tmp_path / "absent.yaml"))


def test_catalog_resolves_local_and_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = pytest.importorskip("twofold.hardware.catalog", reason="hardware catalog not built yet")
    monkeypatch.setenv("TWOFOLD_HOME", str(tmp_path))
    save_profile_file(default_profile_path(), local_profile_dict(CHIP, PROFILE, PROV))
    assert catalog.get_chip("local").calibration is not None
    other = save_profile_file(tmp_path / "shared.yml", local_profile_dict(CHIP, PROFILE, PROV))
    assert catalog.get_chip(str(other)).name == "Test CPU 9000"
