"""A fake device for tests: kernel times from the cost model with a known chip and profile.

`FakeDevice` implements the `Device` seam deterministically (no clock, no PyTorch): the time of a
kernel is exactly what `cost.ops_time_s` predicts for its operators on the given chip with the given
profile, optionally scaled by a fixed per-kernel factor to emulate measurement noise. A fit on its
measurements must give back the parameters it was built with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from twofold.cost.profile import CalibrationProfile
from twofold.hardware.types import Chip
from twofold.measure.bench import DeviceInfo, Timing
from twofold.measure.kernels import Kernel, kernel_ops

__all__ = ["FakeDevice"]


class FakeDevice:
    """Times from the cost model; `noise` (e.g. 0.02) scales each kernel by a fixed +-noise factor."""

    def __init__(
        self,
        chip: Chip,
        profile: CalibrationProfile,
        *,
        noise: float = 0.0,
        extra_s: Callable[[Kernel], float] | None = None,
    ) -> None:
        self.chip, self.profile, self.noise = chip, profile, noise
        self.extra_s = extra_s or (lambda kernel: 0.0)
        self.calls: list[Kernel] = []
        self.info = DeviceInfo(
            # The fit reads the architecture from the kind: a GPU chip poses as a CUDA device.
            kind="cuda" if chip.architecture == "gpu" else "cpu",
            name=f"fake {chip.name}",
            vendor=chip.vendor,
            threads=1,
            memory_gib=chip.hbm_capacity_gib,
            compute_units=chip.compute_units,
            bf16=chip.bf16_dense_tflops is not None,
            bf16_native=chip.bf16_dense_tflops is not None,
            versions={"twofold": "test"},
        )

    def _factor(self, kernel: Kernel) -> float:
        if not self.noise:
            return 1.0
        # A deterministic pseudo-random factor in [1 - noise, 1 + noise] per kernel name.
        digest = int(hashlib.sha256(kernel.name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        return 1.0 + self.noise * (2.0 * digest - 1.0)

    def time_kernel(self, kernel: Kernel) -> Timing:
        from twofold.cost import ops_time_s

        self.calls.append(kernel)
        seconds = ops_time_s(kernel_ops(kernel), self.chip, self.profile) + self.extra_s(kernel)
        seconds *= self._factor(kernel)
        return Timing(time_s=seconds, min_s=seconds, repeats=1)
