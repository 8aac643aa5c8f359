"""The measured local device as a chip: read and write calibration profile files.

`twofold measure` writes a profile YAML (default `$TWOFOLD_HOME/profiles/local.yaml`, with
`TWOFOLD_HOME` defaulting to `~/.twofold`). The file is meant to be kept and shared: it names the
device, the software versions, the date and the run it came from, and holds

- `chip`: the figures of a `Chip`. For a measured device they are measurements, not datasheet
  figures: the peak of a precision is the best GEMM throughput the run reached (or the fitted
  asymptote, whichever is larger, so that every fitted efficiency is <= 1), and the memory bandwidth
  is the measured streaming-copy bandwidth.
- `calibration`: the fitted `CalibrationProfile` parameters (see `hardware.profile`).
- `provenance`: where it came from (run id, date, device name, versions, threads).

`--chip local` loads the default file; `--chip path/to/profile.yaml` loads that file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from twofold.errors import InputError
from twofold.hardware.profile import CalibrationProfile
from twofold.hardware.profile_io import profile_from_dict, profile_to_dict
from twofold.hardware.types import Chip, Figure
from twofold.yaml_strict import load as load_yaml

__all__ = [
    "PROFILE_FORMAT",
    "default_profile_path",
    "load_local_chip",
    "local_profile_dict",
    "read_profile_file",
    "save_profile_file",
    "twofold_home",
]

PROFILE_FORMAT = 1

_CHIP_REQUIRED = ("id", "name", "vendor", "architecture", "hbm_bandwidth_tb_s", "hbm_capacity_gib")
_CHIP_OPTIONAL_FLOAT = ("fp32_dense_tflops", "bf16_dense_tflops", "tf32_dense_tflops", "clock_ghz")


def twofold_home() -> Path:
    """Where twofold keeps per-user state: `$TWOFOLD_HOME`, else `~/.twofold`."""
    return Path(os.environ.get("TWOFOLD_HOME") or Path.home() / ".twofold")


def default_profile_path() -> Path:
    """The profile `--chip local` reads and `twofold measure` writes by default."""
    return twofold_home() / "profiles" / "local.yaml"


def local_profile_dict(
    chip: Chip, calibration: CalibrationProfile, provenance: Mapping[str, object]
) -> dict[str, Any]:
    """The YAML document for a measured chip and its fitted calibration."""
    chip_doc: dict[str, Any] = {
        "id": chip.id,
        "name": chip.name,
        "vendor": chip.vendor,
        "family": chip.family,
        "architecture": chip.architecture,
        "fp32_dense_tflops": chip.fp32_dense_tflops,
        "bf16_dense_tflops": chip.bf16_dense_tflops,
        "hbm_bandwidth_tb_s": chip.hbm_bandwidth_tb_s,
        "hbm_capacity_gib": chip.hbm_capacity_gib,
        "compute_units": chip.compute_units,
    }
    # chip_id and provenance live once, in the `chip` and `provenance` sections.
    cal_doc = {k: v for k, v in profile_to_dict(calibration).items() if k not in ("chip_id", "provenance")}
    return {
        "twofold_profile": PROFILE_FORMAT,
        "chip": chip_doc,
        "calibration": cal_doc,
        "provenance": {str(k): _plain(v) for k, v in provenance.items()},
    }


def _plain(value: object) -> str | int | float | bool | None:
    """A YAML-safe scalar (str subclasses such as torch's version string become plain str)."""
    if value is None or type(value) in (bool, int, float, str):
        return value  # type: ignore[return-value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return str(value)


def save_profile_file(path: str | Path, doc: Mapping[str, Any]) -> Path:
    """Write a profile document atomically (a crash never leaves half a file behind)."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".profile-", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(dict(doc), fh, sort_keys=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_profile_file(path: str | Path) -> dict[str, Any]:
    """Parse a profile file; unreadable or malformed files are `InputError`s naming the file."""
    path = Path(path).expanduser()
    try:
        doc = load_yaml(path.read_text())  # a duplicate key is an error, not "the last one wins"
    except OSError as exc:
        raise InputError("chip", str(path), f"cannot read profile file ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise InputError("chip", str(path), f"profile file is not valid YAML ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("twofold_profile") != PROFILE_FORMAT:
        raise InputError(
            "chip", str(path), f"not a twofold profile (needs `twofold_profile: {PROFILE_FORMAT}`)"
        )
    for section in ("chip", "calibration"):
        if not isinstance(doc.get(section), dict):
            raise InputError(f"{path}:{section}", doc.get(section), "missing section (a mapping)")
    return doc


def _number(path: Path, section: str, doc: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = doc.get(name)
    if value is None:
        if required:
            raise InputError(f"{path}:{section}.{name}", None, "missing field")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise InputError(f"{path}:{section}.{name}", value, "must be a non-negative number")
    return float(value)


def _calibration(
    path: Path, chip_id: str, doc: Mapping[str, Any], prov: Mapping[str, Any]
) -> CalibrationProfile:
    fields = {**doc, "chip_id": chip_id, "provenance": {str(k): str(v) for k, v in prov.items()}}
    try:
        return profile_from_dict(fields)
    except InputError as exc:
        raise InputError(f"{path}:calibration.{exc.field}", exc.value, exc.rule) from None


def load_local_chip(name: str) -> Chip:
    """The chip a profile file describes, with its fitted calibration attached.

    `name` is "local" (the profile the last `twofold measure` saved) or a path to a profile YAML.
    """
    path = default_profile_path() if name == "local" else Path(name).expanduser()
    if not path.is_file():
        if name == "local":
            raise InputError(
                "chip", "local", f"no calibration profile at {path}; run `twofold measure` first"
            )
        raise InputError("chip", name, "no such profile file")
    doc = read_profile_file(path)
    chip_doc, prov = doc["chip"], doc.get("provenance") or {}
    for field_name in ("id", "name", "vendor", "architecture"):
        if not isinstance(chip_doc.get(field_name), str) or not chip_doc[field_name]:
            raise InputError(
                f"{path}:chip.{field_name}", chip_doc.get(field_name), "missing field (a string)"
            )
    if chip_doc["architecture"] not in ("cpu", "gpu", "systolic"):
        raise InputError(
            f"{path}:chip.architecture", chip_doc["architecture"], "must be cpu, gpu or systolic"
        )
    nums = {n: _number(path, "chip", chip_doc, n, required=n in _CHIP_REQUIRED) for n in _CHIP_OPTIONAL_FLOAT}
    bandwidth = _number(path, "chip", chip_doc, "hbm_bandwidth_tb_s", required=True)
    capacity = _number(path, "chip", chip_doc, "hbm_capacity_gib", required=True)
    if nums["fp32_dense_tflops"] is None and nums["bf16_dense_tflops"] is None:
        raise InputError(f"{path}:chip.fp32_dense_tflops", None, "missing field (a measured peak is needed)")
    units = chip_doc.get("compute_units")
    chip_id = chip_doc["id"]
    note = f"measured by twofold run {prov.get('run_id', '?')} on {prov.get('date', '?')}"
    return Chip(
        id=chip_id,
        name=chip_doc["name"],
        vendor=chip_doc["vendor"],
        family=str(chip_doc.get("family") or chip_doc["architecture"]),
        architecture=chip_doc["architecture"],
        hbm_bandwidth_tb_s=float(bandwidth),  # type: ignore[arg-type]
        hbm_capacity_gib=float(capacity),  # type: ignore[arg-type]
        compute_units=int(units) if isinstance(units, int) and not isinstance(units, bool) else None,
        figures={n: Figure(value=v, note=note) for n, v in nums.items() if v is not None},
        calibration=_calibration(path, chip_id, doc["calibration"], prov),
        **nums,  # type: ignore[arg-type]
    )
