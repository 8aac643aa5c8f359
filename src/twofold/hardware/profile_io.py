"""Calibration profiles to and from plain dicts and YAML files, validated at the boundary.

The YAML form is the dict form: the field names of `CalibrationProfile`, with `gemm_tiles` as a
list of `[rows, cols]` pairs. Every bad field raises `InputError` naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from twofold.checks import positive_int
from twofold.errors import InputError, near_matches
from twofold.hardware.profile import CalibrationProfile
from twofold.hardware.types import PRECISIONS
from twofold.yaml_strict import load as load_yaml

__all__ = ["profile_from_dict", "profile_to_dict", "load_profile", "save_profile"]

_FIELDS = (
    "chip_id",
    "gemm_efficiency",
    "gemm_half_flops",
    "memory_efficiency",
    "attention_efficiency",
    "op_overhead_s",
    "gemm_tiles",
    "systolic_moving_tile",
    "provenance",
    "extra",
)


def _number(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(field, value, "must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise InputError(field, value, "must be finite")
    return number


def _fraction(field: str, value: object) -> float:
    number = _number(field, value)
    if not 0.0 < number <= 1.0:
        raise InputError(field, value, "must be a fraction in (0, 1]; above 1 means the chip's peak is wrong")
    return number


def _non_negative(field: str, value: object) -> float:
    number = _number(field, value)
    if number < 0.0:
        raise InputError(field, value, "must be >= 0")
    return number


def _mapping(field: str, value: object) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise InputError(field, value, "must be a mapping")
    return value


def profile_from_dict(d: Mapping[str, Any]) -> CalibrationProfile:
    """Build a validated profile from its dict (YAML) form; missing optional fields take defaults."""
    d = _mapping("profile", d)
    for key in d:
        if key not in _FIELDS:
            hint = near_matches(str(key), _FIELDS)
            rule = "unknown profile field" + (f"; did you mean {', '.join(hint)}?" if hint else "")
            raise InputError(str(key), d[key], rule)
    for key in ("chip_id", "gemm_efficiency"):
        if key not in d:
            raise InputError(key, None, "is required")
    chip_id = d["chip_id"]
    if not isinstance(chip_id, str) or not chip_id:
        raise InputError("chip_id", chip_id, "must be a non-empty string")

    efficiency: dict[str, float] = {}
    for precision, value in _mapping("gemm_efficiency", d["gemm_efficiency"]).items():
        if precision not in PRECISIONS:
            raise InputError(f"gemm_efficiency.{precision}", value, f"precision must be one of {PRECISIONS}")
        efficiency[precision] = _fraction(f"gemm_efficiency.{precision}", value)
    if not efficiency:
        raise InputError("gemm_efficiency", d["gemm_efficiency"], "needs at least one precision")

    kwargs: dict[str, Any] = {}
    if "gemm_half_flops" in d:
        kwargs["gemm_half_flops"] = _non_negative("gemm_half_flops", d["gemm_half_flops"])
    for key in ("memory_efficiency", "attention_efficiency"):
        if key in d:
            kwargs[key] = _fraction(key, d[key])
    if "op_overhead_s" in d:
        kwargs["op_overhead_s"] = _non_negative("op_overhead_s", d["op_overhead_s"])
    if "gemm_tiles" in d:
        tiles = d["gemm_tiles"]
        if not isinstance(tiles, (list, tuple)) or not tiles:
            raise InputError("gemm_tiles", tiles, "must be a non-empty list of [rows, cols] pairs")
        pairs = []
        for tile in tiles:
            if not isinstance(tile, (list, tuple)) or len(tile) != 2:
                raise InputError("gemm_tiles", tile, "each tile must be a [rows, cols] pair")
            pairs.append((positive_int("gemm_tiles", tile[0]), positive_int("gemm_tiles", tile[1])))
        kwargs["gemm_tiles"] = tuple(pairs)
    if "systolic_moving_tile" in d:
        kwargs["systolic_moving_tile"] = positive_int("systolic_moving_tile", d["systolic_moving_tile"])
    if "provenance" in d:
        provenance = {}
        for key, value in _mapping("provenance", d["provenance"]).items():
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise InputError(f"provenance.{key}", value, "must be a string or a number")
            provenance[str(key)] = str(value)
        kwargs["provenance"] = MappingProxyType(provenance)
    if "extra" in d:
        extra = {str(k): _number(f"extra.{k}", v) for k, v in _mapping("extra", d["extra"]).items()}
        kwargs["extra"] = MappingProxyType(extra)
    return CalibrationProfile(chip_id=chip_id, gemm_efficiency=MappingProxyType(efficiency), **kwargs)


def profile_to_dict(p: CalibrationProfile) -> dict[str, Any]:
    """Plain dict (YAML-safe) form of a profile; `profile_from_dict` inverts it."""
    return {
        "chip_id": p.chip_id,
        "gemm_efficiency": {k: float(v) for k, v in p.gemm_efficiency.items()},
        "gemm_half_flops": float(p.gemm_half_flops),
        "memory_efficiency": float(p.memory_efficiency),
        "attention_efficiency": float(p.attention_efficiency),
        "op_overhead_s": float(p.op_overhead_s),
        "gemm_tiles": [[int(tm), int(tn)] for tm, tn in p.gemm_tiles],
        "systolic_moving_tile": int(p.systolic_moving_tile),
        "provenance": {str(k): str(v) for k, v in p.provenance.items()},
        "extra": {str(k): float(v) for k, v in p.extra.items()},
    }


def load_profile(path: str | Path) -> CalibrationProfile:
    """Read and validate a profile YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError("profile", str(path), f"cannot be read: {exc.strerror}") from None
    try:
        data = load_yaml(text)  # a duplicate key is an error, not "the last one wins"
    except yaml.YAMLError as exc:
        raise InputError("profile", str(path), f"is not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise InputError("profile", str(path), "must hold a YAML mapping of profile fields")
    return profile_from_dict(data)


def save_profile(p: CalibrationProfile, path: str | Path) -> None:
    """Write a profile as YAML (creating parent folders)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(profile_to_dict(p), sort_keys=False), encoding="utf-8")
