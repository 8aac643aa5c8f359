"""The shipped calibration multipliers: `validate/data/calibration.yaml` (read and written here)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from twofold.errors import InputError
from twofold.validate.calibrate import Calibration

__all__ = ["load_calibration", "save_calibration", "CALIBRATION_FILE"]

CALIBRATION_FILE = "calibration.yaml"


def calibration_from_dict(data: Any) -> Calibration:
    if not isinstance(data, dict) or not isinstance(data.get("theta", {}), dict):
        raise InputError("calibration.yaml", type(data).__name__, "must be a mapping with a 'theta' mapping")
    theta = {}
    for name, value in (data.get("theta") or {}).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise InputError(f"calibration.theta.{name}", value, "must be a positive number")
        theta[str(name)] = float(value)
    return Calibration(
        theta=theta,
        rows_used=int(data.get("rows_used", 0)),
        ridge_lambda=float(data.get("ridge_lambda", 1.0)),
    )


@lru_cache(maxsize=1)
def load_calibration() -> Calibration:
    """The shipped multipliers (empty = uncalibrated when the file is absent)."""
    resource = resources.files("twofold.validate").joinpath("data", CALIBRATION_FILE)
    if not resource.is_file():
        return Calibration()
    return calibration_from_dict(yaml.safe_load(resource.read_text(encoding="utf-8")))


def save_calibration(calibration: Calibration, path: Path | str, header: str = "") -> None:
    """Write multipliers as YAML, with a comment header saying how they were produced."""
    text = yaml.safe_dump(calibration.to_dict(), sort_keys=False)
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    Path(path).write_text(comment + text, encoding="utf-8")
