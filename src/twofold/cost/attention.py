"""Fused-attention speed by kernel, pass, causal mask, head dimension and sequence length.

A software stack runs attention with one kernel family (FlashAttention-2 through PyTorch SDPA,
FlashAttention-3, cuDNN fused attention through Transformer Engine, ...), and kernels differ by
up to 2x on the same chip: on H100 FlashAttention-2 reaches about 300 TFLOP/s forward where
FlashAttention-3 and cuDNN reach 550-650 (Shah et al., "FlashAttention-3", arXiv 2407.08608,
figures 5-7), because only the latter use Hopper's asynchronous warpgroup MMA and TMA. Every kernel
is also slower at short sequences (too few query blocks to fill the SMs; the partly masked
diagonal blocks weigh more under a causal mask) and saturates past 4-8k tokens. A constant
"attention efficiency" misses both, and so mispredicts long-context runs and stacks that do not
run the vendor's own kernel.

This module reads the published kernel measurements shipped in `cost/data/kernels.csv` (a copy of
`shared/data/kernels.csv`, described in `kernels.md` beside it; every row has its source) and
turns them into the achieved fraction of the measured chip's dense 16-bit peak:

    fraction(kernel, family, pass, causal, head_dim, seq_len) = TFLOP/s measured / peak of that chip

with FLOPs counted as the FlashAttention benchmarks count them (forward 4*s^2*h*d per sequence and
head, halved under a causal mask; backward 2.5x the forward), which is what the operator graph's
`useful_flops` are (`workload.layers.attention_core`, `workload.backward`). A chip of the same
family takes the same fraction of its own peak (H200 = H100's kernels at H200's clocks).

Filling the table (per kernel, family and head dimension):
- forward: the `fwd` rows of the mask; else from `fwd+bwd` rows R with the FlashAttention-2 paper's
  backward/forward speed ratio rho = 0.63 / 0.73 (`cost.roofline.ATTENTION_BACKWARD_RATIO`):
  the step does F + 2.5 F FLOPs in F/f + 2.5F/(rho f) seconds, so f = R (1 + 2.5/rho) / 3.5;
- backward: the `bwd` rows (the FA3 paper's backward figure does not state its mask; it is read as
  non-causal, as the notes say); a causal backward is that times the forward's causal/non-causal
  ratio at the same length; where only `fwd` and `fwd+bwd` exist, b = 2.5 / (3.5/R - 1/f); else
  b = rho * f.
- lookups interpolate linearly in log2(seq_len) and log2(head_dim) and hold the end values outside
  the measured range (no extrapolation past 16k tokens: the kernels are saturated there).

Families without measurements of a kernel: Blackwell takes Hopper's fractions for `cudnn` and
`flash3` (kernels on Hopper's tensor-core path) and Ada takes Ampere's; a kernel written for
Ampere's instructions (FlashAttention 1/2, Triton, xformers, standard attention) is ported to a
later family at the per-SM, per-clock rate of the latest family that measured it (`_source`:
FlashAttention-2 on Blackwell runs at H100's per-SM rate, about 0.18 of B200's peak, not at
Hopper's 0.34); all three are assumptions, reported as such by `kernel_basis`;
kernels with no published table (XLA splash attention on TPU, NKI flash attention on Trainium,
Composable Kernel on AMD, FusedSDPA on Intel Gaudi) return None, and the cost model keeps the
profile's constant attention efficiency for them.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

__all__ = [
    "ATTENTION_KERNELS",
    "KernelCurve",
    "attention_fraction",
    "kernel_basis",
    "kernel_table",
]

RHO = 0.63 / 0.73  # FlashAttention-2 backward/forward speed ratio (arXiv 2307.08691, section 4.1)
BWD_FLOPS = 2.5  # backward FLOPs per forward FLOP (5 matmuls vs 2)

# Kernel ids of the stack files -> (kernel names in kernels.csv, description).
ATTENTION_KERNELS: Mapping[str, tuple[tuple[str, ...], str]] = {
    "flash2": (("FlashAttention-2",), "FlashAttention-2 (flash-attn package or PyTorch SDPA flash backend)"),
    "flash3": (("FlashAttention-3",), "FlashAttention-3 (Hopper warpgroup MMA + TMA)"),
    "cudnn": (("cuDNN",), "cuDNN fused attention (Transformer Engine's default on Hopper and later)"),
    "flash1": (("FlashAttention (v1)",), "FlashAttention v1"),
    "xformers": (("xformers (cutlass)",), "xformers memory-efficient attention (CUTLASS)"),
    "flash-triton": (
        ("FlashAttention Triton",),
        "FlashAttention in Triton (flash-attn's 2022 Triton kernel; llm-foundry's attn_impl=triton)",
    ),
    "math": (
        ("PyTorch standard attention", "Standard attention (PyTorch)"),
        "unfused attention (matmul, softmax, matmul): PyTorch's math path",
    ),
    "xla-splash": ((), "XLA / Pallas splash attention (TPU): no published kernel table"),
    "nki": ((), "NKI flash attention (Trainium): no published kernel table"),
    "ck": ((), "Composable Kernel FlashAttention (AMD Instinct): no published kernel table"),
    "habana-sdpa": ((), "Intel Gaudi FusedSDPA (TPC + MME kernels): no published kernel table"),
}

# Hardware strings of kernels.csv whose rows define a family's fractions, with the catalog chip
# whose dense 16-bit peak they are divided by.
_MEASURED_CHIPS: Mapping[str, tuple[str, str]] = {
    "NVIDIA A100 80GB SXM4": ("NVIDIA Ampere", "a100"),
    "NVIDIA H100 80GB SXM5": ("NVIDIA Hopper", "h100"),
}
# Families that borrow another family's fractions (an assumption, reported by `kernel_basis`). Ada
# keeps Ampere's: kernels.csv's only Ada rows (K0488-K0501, FlashAttention-2 on a GeForce RTX 4090)
# reach ~1.0 of the 4090's 165 TFLOP/s peak, a peak halved by GeForce's half-rate FP32 accumulate;
# as a family fraction they would give the L40S and L4, whose FP32-accumulate rate is full, about
# twice the attention speed any measurement shows. They also hold one sequence length (2k) only.
# Blackwell borrows Hopper's fractions only for kernels built on Hopper's tensor-core path
# (warpgroup MMA + TMA: cuDNN's fused attention, FlashAttention-3), whose vendors ship Blackwell
# versions of them. A kernel written for Ampere's `mma.sync` instructions (FlashAttention 1 and 2,
# the Triton and xformers kernels, PyTorch's standard attention) does not use a newer generation's
# tensor-core path: on a later family without its own measurement it is *ported*, run at the
# per-SM, per-clock rate of the latest earlier family that measured it (fraction x SMs x clock /
# peak of the new chip over the old). Measured check (kernels.csv, A100 -> H100, causal, head dim
# 128, 8k tokens): FlashAttention-2 0.649 -> 0.325 ported vs 0.337 measured, FlashAttention v1
# 0.285 -> 0.143 vs 0.152 (`tests/cost/test_cost_attention.py`).
_HOPPER_CLASS = frozenset({"cudnn", "flash3"})
# family -> (the family it borrows from, the kernels it borrows; None = every kernel).
_BORROWED: Mapping[str, tuple[str, frozenset[str] | None]] = {
    "NVIDIA Blackwell": ("NVIDIA Hopper", _HOPPER_CLASS),
    "NVIDIA Ada": ("NVIDIA Ampere", None),
}
_GENERATIONS: tuple[str, ...] = ("NVIDIA Ampere", "NVIDIA Hopper", "NVIDIA Blackwell")
# The chip whose SMs, clock and 16-bit peak stand for a family when a kernel is ported.
_REFERENCE_CHIP: Mapping[str, str] = {
    "NVIDIA Ampere": "a100",
    "NVIDIA Hopper": "h100",
    "NVIDIA Blackwell": "b200",
}


@dataclass(frozen=True, slots=True)
class KernelCurve:
    """Achieved fraction of dense 16-bit peak against log2(seq_len), for one head dimension."""

    log2_seq: np.ndarray
    fraction: np.ndarray

    def at(self, seq_len: float) -> float:
        return float(np.interp(math.log2(max(seq_len, 1.0)), self.log2_seq, self.fraction))


# (kernel id, family, pass, causal) -> {head_dim: curve}
_Table = Mapping[tuple[str, str, str, bool], Mapping[int, KernelCurve]]


def _read_rows() -> list[dict[str, str]]:
    path = resources.files("twofold.cost").joinpath("data", "kernels.csv")
    # typeshed's Traversable.open omits `newline`, which files() paths pass on to open().
    with path.open(encoding="utf-8", newline="") as handle:  # type: ignore[call-overload]
        return [r for r in csv.DictReader(handle) if r["kind"] == "attention" and r["metric"] == "tflops"]


def _peak(chip_id: str) -> float:
    from twofold.hardware.catalog import get_chip

    return get_chip(chip_id).peak_tflops("bf16")


def _series(points: Mapping[int, float]) -> dict[int, float]:
    return dict(sorted(points.items()))


@cache
def kernel_table() -> _Table:
    """The fractions-of-peak table built from `kernels.csv` (rules in the module docstring)."""
    names = {name: kid for kid, (csv_names, _) in ATTENTION_KERNELS.items() for name in csv_names}
    # (kid, family, head_dim) -> pass key -> {seq: tflops}; pass key in fwd/c, fwd/n, bwd/c, bwd/n, bwd/?,
    # fb/c, fb/n.
    raw: dict[tuple[str, str, int], dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    peaks: dict[str, float] = {}
    for r in _read_rows():
        kid = names.get(r["kernel"])
        measured = _MEASURED_CHIPS.get(r["hardware"])
        if kid is None or measured is None or not r["seq_len"] or not r["head_dim"]:
            continue
        if "FP8" in r["precision"].upper():
            continue
        family, chip_id = measured
        if family not in peaks:
            peaks[family] = _peak(chip_id)
        mask = {"True": "c", "False": "n"}.get(r["causal"], "?")
        key = {"fwd": "fwd", "bwd": "bwd", "fwd+bwd": "fb"}[r["pass"]] + "/" + mask
        raw[(kid, family, int(r["head_dim"]))][key][int(r["seq_len"])] = float(r["value"])
    table: dict[tuple[str, str, str, bool], dict[int, KernelCurve]] = defaultdict(dict)
    for (kid, family, head_dim), passes in raw.items():
        for causal in (True, False):
            fwd, bwd = _fill(passes, causal)
            for name, series in (("forward", fwd), ("backward", bwd)):
                if not series:
                    continue
                s = _series(series)
                curve = KernelCurve(
                    log2_seq=np.log2(np.array(list(s), dtype=float)),
                    fraction=np.array(list(s.values()), dtype=float) / peaks[family],
                )
                table[(kid, family, name, causal)][head_dim] = curve
    return {k: dict(sorted(v.items())) for k, v in table.items()}


def _fill(
    passes: Mapping[str, Mapping[int, float]], causal: bool
) -> tuple[dict[int, float], dict[int, float]]:
    """Forward and backward TFLOP/s by sequence length for one mask (rules in the module docstring)."""
    m = "c" if causal else "n"
    fb = passes.get(f"fb/{m}", {})
    fwd = dict(passes.get(f"fwd/{m}", {}))
    if not fwd and fb:
        fwd = {s: r * (1.0 + BWD_FLOPS / RHO) / (1.0 + BWD_FLOPS) for s, r in fb.items()}
    bwd: dict[int, float] = dict(passes.get(f"bwd/{m}", {}))
    unstated = passes.get("bwd/?", {})  # read as non-causal (module docstring)
    if not bwd:
        if unstated and not causal:
            bwd = dict(unstated)
        elif unstated:
            ratio = _causal_ratio(passes)
            bwd = {s: v * ratio[s] for s, v in unstated.items() if s in ratio}
        elif fb and passes.get(f"fwd/{m}"):
            for s, r in fb.items():
                f = fwd.get(s)
                if f is not None and (1.0 + BWD_FLOPS) / r > 1.0 / f:
                    bwd[s] = BWD_FLOPS / ((1.0 + BWD_FLOPS) / r - 1.0 / f)
    if not bwd and fwd:
        bwd = {s: RHO * f for s, f in fwd.items()}
    return fwd, bwd


def _causal_ratio(passes: Mapping[str, Mapping[int, float]]) -> dict[int, float]:
    causal, full = passes.get("fwd/c", {}), passes.get("fwd/n", {})
    return {s: causal[s] / full[s] for s in causal if s in full and full[s] > 0}


def _per_sm_clock(family: str) -> float:
    """SMs x clock / dense 16-bit peak of the family's reference chip (`_REFERENCE_CHIP`)."""
    from twofold.hardware.catalog import get_chip

    chip = get_chip(_REFERENCE_CHIP[family])
    assert chip.compute_units and chip.clock_ghz, chip.id
    return chip.compute_units * chip.clock_ghz / chip.peak_tflops("bf16")


@cache
def _source(kernel: str, family: str | None) -> tuple[str | None, float, str]:
    """(family whose measurements price `kernel` on `family`, the factor on their fractions, how):
    "measured", "borrowed" (`_BORROWED`) or "ported" (`_HOPPER_CLASS` comment); (None, 1, "") when
    no table applies."""
    if family is None:
        return None, 1.0, ""
    table = kernel_table()

    def has(fam: str) -> bool:
        return (kernel, fam, "forward", True) in table

    if has(family):
        return family, 1.0, "measured"
    lender, kernels = _BORROWED.get(family, (None, None))
    if lender is not None and (kernels is None or kernel in kernels) and has(lender):
        return lender, 1.0, "borrowed"
    if kernel not in _HOPPER_CLASS and family in _GENERATIONS:
        earlier = _GENERATIONS[: _GENERATIONS.index(family)]
        for fam in reversed(earlier):
            if has(fam):
                return fam, _per_sm_clock(family) / _per_sm_clock(fam), "ported"
    return None, 1.0, ""


def kernel_basis(kernel: str, family: str | None) -> str:
    """Where a kernel's speed on a family comes from: "measured (<family>)", "assumed: <family>'s
    measurements", "assumed: ported from <family>" or "no kernel table: profile attention
    efficiency"."""
    fam, factor, how = _source(kernel, family)
    if fam is None:
        return "no kernel table: profile attention efficiency (assumed)"
    if how == "measured":
        return f"measured ({fam}, kernels.csv)"
    if how == "ported":
        return f"assumed: ported from {fam}'s measurements at its per-SM, per-clock rate (x{factor:.2f})"
    return f"assumed: {fam}'s measurements of this kernel"


def attention_fraction(
    kernel: str, family: str | None, phase: str, causal: bool, head_dim: float, seq_len: float
) -> float | None:
    """Fraction of dense 16-bit peak the kernel reaches (module docstring), or None without a table.

    `phase`: "forward" or "backward". `seq_len`: the kernel's key length (a causal benchmark at
    length s has s queries and s keys).
    """
    fam, factor, _ = _source(kernel, family)
    if fam is None:
        return None
    curves = kernel_table().get((kernel, fam, "backward" if phase == "backward" else "forward", causal))
    if not curves:
        return None
    dims = np.array(list(curves), dtype=float)
    values = np.array([c.at(seq_len) for c in curves.values()])
    if len(dims) == 1:
        return factor * float(values[0])
    return factor * float(np.interp(math.log2(max(head_dim, 1.0)), np.log2(dims), values))
