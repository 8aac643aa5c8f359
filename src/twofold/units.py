"""Unit conversions, written once: a quantity's unit is in its name (`memory_per_chip_gib`,
`hbm_bandwidth_tb_s`), and these constants turn one unit into another (`gib * GIB` is bytes).

Binary for memory capacity (GiB, as PyTorch and the vendors' HBM figures count it), decimal for
bandwidth and rates (GB/s, TB/s, TFLOP/s, as the datasheets give them).
"""

from __future__ import annotations

__all__ = ["GB", "GIB", "SECONDS_PER_DAY", "SECONDS_PER_HOUR", "TB", "TFLOPS"]

GIB = 2**30  # bytes per GiB
GB = 1e9  # bytes per GB (link and memory bandwidth in GB/s)
TB = 1e12  # bytes per TB (HBM bandwidth in TB/s)
TFLOPS = 1e12  # FLOP/s per TFLOP/s
SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86400.0
