"""Calibration profiles to and from dicts and YAML files: defined in `hardware.profile_io` (a
measured chip's file holds one), re-exported here for the cost model's callers."""

from __future__ import annotations

from twofold.hardware.profile_io import load_profile, profile_from_dict, profile_to_dict, save_profile

__all__ = ["load_profile", "profile_from_dict", "profile_to_dict", "save_profile"]
