"""Timing kernels with PyTorch on the local device, behind a one-method seam.

`Device.time_kernel(kernel) -> Timing` is the only thing the rest of `measure/` asks of a device;
`TorchDevice` implements it with real PyTorch kernels and `measure.fake.FakeDevice` with a cost
model (deterministic, for tests). Each device also carries a `DeviceInfo` describing itself.

Timing method: one untimed warm-up call; a probe call sets an inner loop count so that one sample
lasts at least `min_sample_s` (small kernels are timed over many calls, so that the clock's
resolution and the Python loop do not dominate); `repeats` samples; the median is the value and
the minimum is kept too. GEMMs rotate through 256 MiB of operand sets, so that every call
reads operands that are not cache-hot, as in a training step (`_cold_gemm`). On CUDA every
sample is bracketed by `torch.cuda.synchronize()`. The thread count is set explicitly
(`torch.set_num_threads`) and recorded.

torch is imported inside functions only.
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from twofold.errors import InputError
from twofold.measure.kernels import Kernel
from twofold.units import GIB

__all__ = ["Device", "DeviceInfo", "Timing", "TorchDevice", "resolve_device"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Timing:
    """Seconds per call of a kernel: median (the value used) and minimum over `repeats` samples."""

    time_s: float
    min_s: float
    repeats: int
    inner: int = 1
    round_s: tuple[float, ...] = ()  # per-pass medians when timed in several passes


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceInfo:
    """What was measured: enough to tell machines apart and to reproduce the run."""

    kind: str  # "cpu" | "cuda" | "fake"
    name: str  # CPU model or GPU name
    vendor: str
    threads: int
    memory_gib: float
    compute_units: int | None
    bf16: bool  # bf16 GEMMs are measured
    bf16_native: bool | None  # the hardware has bf16 matrix instructions (None: unknown)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """A short stable hash of the hardware identity (not of software versions)."""
        key = (
            f"{self.kind}|{self.name}|{self.vendor}|{self.compute_units}|{self.threads}|{self.memory_gib:.0f}"
        )
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "vendor": self.vendor,
            "threads": self.threads,
            "memory_gib": self.memory_gib,
            "compute_units": self.compute_units,
            "bf16": self.bf16,
            "bf16_native": self.bf16_native,
            "fingerprint": self.fingerprint,
            "versions": dict(self.versions),
        }


class Device(Protocol):
    """The seam between measurement and hardware: one method."""

    info: DeviceInfo

    def time_kernel(self, kernel: Kernel) -> Timing: ...


def _versions() -> dict[str, str]:
    import numpy
    import torch

    from twofold import __version__

    return {
        "twofold": __version__,
        "torch": str(torch.__version__),  # a str subclass that YAML cannot represent
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "platform": platform.platform(),
    }


def _cpuinfo() -> tuple[str, str, set[str]]:
    """(model name, vendor, flags) from /proc/cpuinfo; platform fallbacks elsewhere."""
    name, vendor = platform.processor() or platform.machine(), ""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as fh:
            text = fh.read()
    except OSError:
        return name, vendor, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and value:
            name = value
        elif key == "vendor_id" and not vendor:
            vendor = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}.get(value, value.lower())
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return name, vendor, flags


def _memory_gib() -> float:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024 / GIB
    except OSError:
        pass
    return float("nan")


def resolve_device(device: str) -> str:
    """ "auto" -> "cuda" if PyTorch sees a GPU else "cpu"; InputError for anything unusable."""
    if device not in ("auto", "cpu", "cuda"):
        raise InputError("device", device, "must be auto, cpu or cuda")
    try:
        import torch
    except ImportError:
        raise InputError("device", device, "PyTorch is not installed; pip install 'twofold[torch]'") from None
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device", "cuda", "PyTorch sees no CUDA device on this machine")
    return device


class TorchDevice:
    """Times kernels with PyTorch on `device` ("cpu" or "cuda")."""

    def __init__(
        self,
        device: str = "auto",
        *,
        threads: int | None = None,
        repeats: int = 5,
        min_sample_s: float = 2e-3,
        step_repeats: int = 3,
    ) -> None:
        import torch

        self.device = resolve_device(device)
        if threads is None:
            threads = (
                len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            )
        if threads < 1:
            raise InputError("threads", threads, "must be >= 1")
        torch.set_num_threads(threads)
        self.repeats, self.min_sample_s, self.step_repeats = repeats, min_sample_s, step_repeats
        cuda = self.device == "cuda"
        self._sync: Callable[[], None] = torch.cuda.synchronize if cuda else (lambda: None)
        if cuda:
            props = torch.cuda.get_device_properties(0)
            self.info = DeviceInfo(
                kind="cuda",
                name=torch.cuda.get_device_name(0),
                vendor="nvidia" if torch.version.cuda else "amd",
                threads=threads,
                memory_gib=props.total_memory / GIB,
                compute_units=props.multi_processor_count,
                bf16=torch.cuda.is_bf16_supported(),
                bf16_native=props.major >= 8,
                versions={**_versions(), "cuda": str(torch.version.cuda or torch.version.hip)},
            )
        else:
            name, vendor, flags = _cpuinfo()
            native = bool(flags & {"amx_bf16", "avx512_bf16", "bf16"}) if flags else None
            self.info = DeviceInfo(
                kind="cpu",
                name=name,
                vendor=vendor or "unknown",
                threads=threads,
                memory_gib=_memory_gib(),
                compute_units=threads,
                bf16=True,  # always measurable on CPU; `bf16_native` says whether it is emulated
                bf16_native=native,
                versions={**_versions(), "cpu_capability": torch.backends.cpu.get_cpu_capability()},
            )

    def time_kernel(self, kernel: Kernel) -> Timing:
        if kernel.kind == "train_step":
            from twofold.measure.torch_model import time_training_step

            assert kernel.model is not None
            step = time_training_step(
                kernel.model,
                micro_batch=kernel.dims["micro_batch"],
                seq_len=kernel.dims["seq_len"],
                device=self.device,
                repeats=self.step_repeats,
                sync=self._sync,
            )
            return Timing(time_s=step.step_time_s, min_s=min(step.samples_s), repeats=len(step.samples_s))
        return self._time(_build(kernel, self.device))

    def _time(self, fn: Callable[[], object]) -> Timing:
        fn()
        self._sync()
        start = time.perf_counter()
        fn()
        self._sync()
        probe = max(time.perf_counter() - start, 1e-7)
        inner = min(max(1, math.ceil(self.min_sample_s / probe)), 10_000)
        samples = []
        for _ in range(self.repeats):
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            self._sync()
            samples.append((time.perf_counter() - start) / inner)
        samples.sort()
        return Timing(time_s=samples[len(samples) // 2], min_s=samples[0], repeats=len(samples), inner=inner)


def _build(kernel: Kernel, device: str) -> Callable[[], object]:
    """A zero-argument callable that runs `kernel` once (inputs allocated here, outside timing)."""
    import torch
    from torch.nn import functional as F

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[kernel.dtype]
    d = kernel.dims

    def rand(*shape: int, grad: bool = False) -> Any:
        return torch.randn(*shape, device=device, dtype=dtype, requires_grad=grad)

    if kernel.kind == "gemm":
        return _cold_gemm(d["m"], d["n"], d["k"], dtype, device)
    if kernel.kind in ("copy", "add", "mul", "silu"):
        x, y, out = rand(d["numel"]), rand(d["numel"]), rand(d["numel"])
        return {
            "copy": lambda: out.copy_(x),
            "add": lambda: torch.add(x, y, out=out),
            "mul": lambda: torch.mul(x, y, out=out),
            "silu": lambda: F.silu(x),
        }[kernel.kind]
    if kernel.kind in ("rmsnorm", "layernorm"):
        x, w, bias = rand(d["rows"], d["hidden"]), rand(d["hidden"]), rand(d["hidden"])
        shape = (d["hidden"],)
        if kernel.kind == "rmsnorm":
            return lambda: F.rms_norm(x, shape, w, 1e-5)
        return lambda: F.layer_norm(x, shape, w, bias, 1e-5)
    if kernel.kind == "sdpa":
        b, h, kv, s, hd = d["batch"], d["heads"], d["kv_heads"], d["seq"], d["head_dim"]
        backward = bool(d.get("backward"))
        q, k, v = (
            rand(b, h, s, hd, grad=backward),
            rand(b, kv, s, hd, grad=backward),
            rand(b, kv, s, hd, grad=backward),
        )
        grad_out = rand(b, h, s, hd)

        def attention() -> object:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=kv != h)
            if backward:
                # autograd.grad rather than .backward(): no gradient accumulation kernels are timed.
                return torch.autograd.grad(out, (q, k, v), grad_out)
            return out

        return attention
    raise ValueError(f"no PyTorch builder for kernel kind {kernel.kind!r}")


# Bytes of GEMM operands a timed GEMM rotates through (see `_cold_gemm`): well beyond the
# per-core caches (2 MiB L2 on the development machine) and the share of the last-level cache a
# training step's working set leaves to one operator.
GEMM_ROTATION_BYTES = 256 * 2**20
_POOLS: dict[tuple[str, Any], Any] = {}


def _pool(device: str, dtype: Any, numel: int, *, random: bool) -> Any:
    """A flat buffer of at least `numel` elements, kept for the process (one per role)."""
    import torch

    key = (f"{device}:{'in' if random else 'out'}", dtype)
    buf = _POOLS.get(key)
    if buf is None or buf.numel() < numel:
        make = torch.randn if random else torch.empty
        buf = _POOLS[key] = make(numel, device=device, dtype=dtype)
    return buf


def _cold_gemm(m: int, n: int, k: int, dtype: Any, device: str) -> Callable[[], object]:
    """`torch.matmul` of (m x k) @ (k x n), each call on operands not touched for a while.

    Why: in a training step every GEMM reads a weight last touched one forward (or backward)
    pass ago and activations other kernels have since pushed out of the per-core caches, so
    re-running one GEMM on the same cache-hot operands overstates its rate. On the 2-core
    development machine (Xeon, 2 MiB L2 per core) mid-sized fp32 GEMMs (0.1-2 GFLOP) reached
    250-320 GFLOP/s hot, 150-260 cold, and 190-270 inside the timed training steps
    (torch.profiler), so the fit priced the steps' GEMMs 15-30% too fast. Each call therefore
    takes the next of as many operand sets as fit into `GEMM_ROTATION_BYTES` (views into one
    random buffer, so setting up costs one allocation per run), writing into rotating outputs.
    """
    import torch

    matmul = torch.matmul
    es = torch.empty((), dtype=dtype).element_size()
    na, nb, no = m * k, k * n, m * n
    sets = max(1, GEMM_ROTATION_BYTES // ((na + nb) * es))
    pool_in = _pool(device, dtype, sets * (na + nb), random=True)
    out_sets = max(1, min(sets, GEMM_ROTATION_BYTES // 2 // (no * es)))
    pool_out = _pool(device, dtype, out_sets * no, random=False)
    operands = [
        (
            pool_in[i * (na + nb) : i * (na + nb) + na].view(m, k),
            pool_in[i * (na + nb) + na : (i + 1) * (na + nb)].view(k, n),
            pool_out[(i % out_sets) * no : (i % out_sets + 1) * no].view(m, n),
        )
        for i in range(sets)
    ]
    state = {"i": 0}

    def gemm() -> object:
        a, b, out = operands[state["i"] % sets]
        state["i"] += 1
        return matmul(a, b, out=out)

    return gemm
