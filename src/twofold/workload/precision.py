"""Bytes per element of the number formats twofold prices.

Block-scaled formats carry one shared scale per block on top of the element bits (OCP
Microscaling Formats (MX) Specification v1.0, 2023, https://www.opencompute.org/documents/ocp-
microscaling-formats-mx-v1-0-spec-final-pdf: 8-bit E8M0 scale per 32 elements; NVIDIA NVFP4:
FP8 E4M3 scale per 16 elements, "Introducing NVFP4", NVIDIA technical blog, 2025,
https://developer.nvidia.com/blog/introducing-nvfp4-for-efficient-and-accurate-low-precision-inference/).
Plain `fp8` and `fp4` count the element bits only (per-tensor scales are negligible). Left out:
the per-tensor amax history of delayed-scaling FP8 recipes and any padding of blocks.
"""

from __future__ import annotations

from twofold.errors import InputError

__all__ = ["BYTES_PER_ELEMENT", "bytes_per_element"]

BYTES_PER_ELEMENT: dict[str, float] = {
    "fp32": 4.0,
    "tf32": 4.0,  # stored as fp32
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "mxfp8": 1.0 + 1.0 / 32,
    "fp4": 0.5,
    "mxfp4": 0.5 + 1.0 / 32,
    "nvfp4": 0.5 + 1.0 / 16,
    "int8": 1.0,
    "int4": 0.5,
}


def bytes_per_element(precision: str, field: str = "precision") -> float:
    """Bytes one element occupies in `precision` (block scales included); `InputError` if unknown."""
    try:
        return BYTES_PER_ELEMENT[precision]
    except KeyError:
        raise InputError(
            field, precision, f"unknown precision; known: {', '.join(BYTES_PER_ELEMENT)}"
        ) from None
