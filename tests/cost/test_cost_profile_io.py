"""Profile YAML round-trip, validation at the boundary, and which profile a chip gets."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from cost_fixtures import CPU, H100, TRN2, profile

from twofold.cost import (
    CalibrationProfile,
    load_profile,
    profile_for,
    profile_from_dict,
    profile_to_dict,
    save_profile,
)
from twofold.errors import InputError


def _full_profile() -> CalibrationProfile:
    return profile_from_dict(
        {
            "chip_id": "local-cpu",
            "gemm_efficiency": {"fp32": 0.61, "bf16": 0.33},
            "gemm_half_flops": 2.5e8,
            "memory_efficiency": 0.72,
            "attention_efficiency": 0.55,
            "op_overhead_s": 3e-6,
            "gemm_tiles": [[64, 64], [128, 128]],
            "systolic_moving_tile": 256,
            "provenance": {"basis": "measured", "run_id": 42},
            "extra": {"l2_bytes": 5e7},
        }
    )


def test_yaml_round_trip_keeps_every_field(tmp_path: Path) -> None:
    original = _full_profile()
    path = tmp_path / "sub" / "profile.yaml"
    save_profile(original, path)
    loaded = load_profile(path)
    assert profile_to_dict(loaded) == profile_to_dict(original)
    assert loaded.gemm_tiles == ((64, 64), (128, 128))
    assert loaded.provenance["run_id"] == "42"
    assert dict(loaded.gemm_efficiency) == {"fp32": 0.61, "bf16": 0.33}


def test_missing_optional_fields_take_the_dataclass_defaults() -> None:
    p = profile_from_dict({"chip_id": "x", "gemm_efficiency": {"bf16": 0.7}})
    assert p == CalibrationProfile(chip_id="x", gemm_efficiency=p.gemm_efficiency)
    assert p.memory_efficiency == 0.8 and p.op_overhead_s == 0.0 and p.systolic_moving_tile == 512


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"gemm_efficiency": {"bf16": 1.5}}, "gemm_efficiency.bf16"),
        ({"gemm_efficiency": {"bf17": 0.5}}, "gemm_efficiency.bf17"),
        ({"gemm_efficiency": {}}, "gemm_efficiency"),
        ({"gemm_efficiency": 0.7}, "gemm_efficiency"),
        ({"memory_efficiency": 0.0}, "memory_efficiency"),
        ({"attention_efficiency": "high"}, "attention_efficiency"),
        ({"op_overhead_s": -1e-6}, "op_overhead_s"),
        ({"gemm_half_flops": float("nan")}, "gemm_half_flops"),
        ({"gemm_tiles": [[128, 0]]}, "gemm_tiles"),
        ({"gemm_tiles": [[128]]}, "gemm_tiles"),
        ({"systolic_moving_tile": 51.2}, "systolic_moving_tile"),
        ({"memory_eficiency": 0.8}, "memory_eficiency"),
        ({"chip_id": ""}, "chip_id"),
        ({"extra": {"x": "y"}}, "extra.x"),
    ],
)
def test_bad_field_is_an_input_error_naming_it(patch: dict[str, object], field: str) -> None:
    data = {"chip_id": "x", "gemm_efficiency": {"bf16": 0.7}, **patch}
    with pytest.raises(InputError) as info:
        profile_from_dict(data)
    assert info.value.field == field


def test_misspelt_field_suggests_the_right_one() -> None:
    with pytest.raises(InputError, match="memory_efficiency"):
        profile_from_dict({"chip_id": "x", "gemm_efficiency": {"bf16": 0.7}, "memory_eficiency": 0.8})


def test_missing_required_field() -> None:
    with pytest.raises(InputError) as info:
        profile_from_dict({"chip_id": "x"})
    assert info.value.field == "gemm_efficiency"


def test_unreadable_and_non_mapping_files_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot be read"):
        load_profile(tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="mapping"):
        load_profile(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("chip_id: [unclosed\n")
    with pytest.raises(InputError, match="YAML"):
        load_profile(tmp_path / "bad.yaml")


def test_profile_for_prefers_the_chips_own_calibration() -> None:
    own = profile("test-h100", gemm_efficiency={"bf16": 0.9})
    assert profile_for(replace(H100, calibration=own)) is own
    as_dict = profile_for(replace(H100, calibration=profile_to_dict(own)))
    assert as_dict.gemm_efficiency["bf16"] == 0.9


@pytest.mark.parametrize(("chip", "expected"), [(H100, 0.75), (TRN2, 0.80), (CPU, 0.5)])
def test_unknown_chip_gets_its_architecture_default_marked_as_such(chip: object, expected: float) -> None:
    p = profile_for(chip)  # type: ignore[arg-type]
    assert p.provenance["basis"] == "architecture default"
    assert p.gemm_efficiency["bf16"] == expected
    assert p.chip_id == chip.id  # type: ignore[attr-defined]
