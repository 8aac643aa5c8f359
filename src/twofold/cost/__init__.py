"""Single-chip operator cost model: seconds per operator from a roofline, the architecture's GEMM
mechanics (tile/wave quantization on GPUs, array padding and fill/drain on systolic arrays) and a
calibration profile. See docs/cost-model.md.
"""

from twofold.cost.defaults import architecture_default, profile_for, shipped_profile
from twofold.cost.profile import CalibrationProfile
from twofold.cost.profile_io import load_profile, profile_from_dict, profile_to_dict, save_profile
from twofold.cost.roofline import OpTimeTerms, op_time_terms, op_times_s, ops_time_s, time_breakdown

__all__ = [
    "CalibrationProfile",
    "OpTimeTerms",
    "architecture_default",
    "load_profile",
    "op_time_terms",
    "op_times_s",
    "ops_time_s",
    "profile_for",
    "profile_from_dict",
    "profile_to_dict",
    "save_profile",
    "shipped_profile",
    "time_breakdown",
]
