"""The shipped training calibration: `cost/calibration.yaml` (read and written through
`twofold.cost.calibration`; the fit lives in `validate.calibrate`)."""

from __future__ import annotations

from twofold.cost.calibration import (
    CALIBRATION_FILE,
    TrainingCalibration,
    calibration_from_dict,
    save_calibration,
    shipped_calibration,
)

__all__ = ["load_calibration", "save_calibration", "calibration_from_dict", "CALIBRATION_FILE"]


def load_calibration() -> TrainingCalibration:
    """The shipped factors (`cost/calibration.yaml`)."""
    return shipped_calibration()
