"""Shipped calibration profiles from the published MAMF rows (maximum achievable matmul FLOPS).

Stas Bekman's ml-engineering book measures, per accelerator, the best matmul throughput over a
brute-force search of shapes ("Maximum Achievable Matmul FLOPS comparison table",
stas00/ml-engineering compute/accelerator/README.md @744d01e; rows GT0698-GT0717 of
published_results.csv, metric `achieved_matmul_tflops`). Dividing it by the catalog chip's dense
peak gives `gemm_efficiency` for that precision: the fraction of peak a well-shaped GEMM reaches.

Assumptions, stated in each profile's provenance (each such entry starts with "assumed"):
- a precision without a row of its own takes, first, the measured fraction of a chip on the same
  die (`SAME_DIE`: H100/H200, B200/GB200, MI300X/MI325X): the same tensor cores and kernels reach
  the same fraction of the same peak, and the sibling's extra memory and bandwidth do not slow a
  GEMM. H200 has only an FP8 row, so its bf16 is H100's measured 0.8033, not its own FP8
  fraction (0.7344), which had made a bigger H200 train slower than an H100;
- a catalog chip with no MAMF row at all on a measured chip's die (`SAME_DIE_UNMEASURED`: A100
  40GB and A800 on the A100's, H800 on the H100's) takes that chip's measured fractions. Only a
  chip with the measured chip's peaks qualifies: H100 PCIe and NVL are cut-down, power-limited
  versions of the H100 die (114 SMs / 350 W, 132 SMs / 400 W) with lower peaks and no row of their
  own, so they keep the architecture default (a power-limited card need not reach the SXM part's
  fraction: A100 PCIe measures 0.81 of peak, A100 SXM 0.87);
- failing a sibling, the fraction of the chip's other precision (fp8 = bf16 unless a row says
  otherwise);
- every other field (memory and attention efficiency, per-op overhead, tiles) is the
  architecture default of `cost.defaults`.

Left out: the MAMF shapes are each chip's best; it says nothing about the shape sensitivity,
which the tile/wave and systolic-padding mechanisms model instead.

`benchmarks/fit_profiles.py` runs this over the CSV and the catalog and writes
`cost/profiles/<chip id>.yaml`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from types import MappingProxyType

from twofold.cost.defaults import architecture_default
from twofold.cost.profile import CalibrationProfile
from twofold.errors import InputError
from twofold.hardware.types import Chip

__all__ = ["MAMF_HARDWARE", "MAMF_METRICS", "SAME_DIE", "SAME_DIE_UNMEASURED", "mamf_profiles"]

MAMF_METRICS = ("achieved_matmul_tflops", "achievable_matmul_tflops")

# MAMF `hardware` cell -> the catalog id or alias it names (resolved through the catalog; a name
# the catalog does not know is reported as having no catalog chip).
MAMF_HARDWARE: Mapping[str, str] = MappingProxyType(
    {
        "NVIDIA A100 SXM": "a100",
        "NVIDIA A100 PCIe": "a100-pcie",
        "NVIDIA H100 SXM": "h100",
        "NVIDIA H200 SXM": "h200",
        "NVIDIA GH200 SXM (900W, 141GiB)": "gh200",
        "NVIDIA B200 SXM": "b200",
        "NVIDIA B300 SXM": "b300",
        "NVIDIA GB200 SXM": "gb200",
        "AMD MI300X": "mi300x",
        "AMD MI325X (1000W)": "mi325x",
        "AMD MI355X": "mi355x",
        "Intel Gaudi 2": "gaudi2",
        "Intel Gaudi 3": "gaudi3",
    }
)

# Catalog chips built on the same compute die (same SMs/CUs, clocks and peak per precision within
# 1%), differing in memory, bandwidth or package. Each pair lends its measured GEMM fraction to the
# other for a precision the other has no row of.
SAME_DIE: tuple[tuple[str, str], ...] = (("h100", "h200"), ("b200", "gb200"), ("mi300x", "mi325x"))
# Catalog chips with no MAMF row at all, on the die of a measured chip (same SMs, clocks and peak
# per precision; they differ in HBM or NVLink): they take its measured fractions, marked assumed,
# instead of the architecture default (0.75 on GPUs, below the A100's measured 0.87).
SAME_DIE_UNMEASURED: Mapping[str, str] = MappingProxyType(
    {"a100-40gb": "a100", "a800": "a100", "h800": "h100"}
)

_PRECISION = {"BF16": "bf16", "FP8 e4m3": "fp8", "FP8": "fp8", "FP16": "fp16"}


def mamf_profiles(
    rows: Iterable[Mapping[str, str]], get_chip: Callable[[str], Chip]
) -> tuple[dict[str, CalibrationProfile], dict[str, str]]:
    """Profiles for every catalog chip with MAMF rows, and the MAMF hardware left out (with why).

    `rows` are published_results.csv rows as dicts of strings; `get_chip` resolves an id or alias
    and raises `InputError` for an unknown one.
    """
    found: dict[str, dict[str, tuple[float, str]]] = {}  # chip id -> precision -> (eff, provenance)
    chips: dict[str, Chip] = {}
    skipped: dict[str, str] = {}
    for row in rows:
        if row["metric"] not in MAMF_METRICS:
            continue
        hardware = row["hardware"]
        name = MAMF_HARDWARE.get(hardware)
        if name is None:
            skipped[hardware] = "no mapping to a catalog id in cost.mamf.MAMF_HARDWARE"
            continue
        try:
            chip = get_chip(name)
        except InputError:
            skipped[hardware] = f"no catalog chip '{name}'"
            continue
        precision = _PRECISION.get(row["precision"])
        if precision is None:
            raise InputError(
                f"{row['id']}.precision", row["precision"], f"must be one of {sorted(_PRECISION)}"
            )
        peak = chip.peak_tflops(precision)
        value = float(row["value"])
        fraction = value / peak
        if not 0.0 < fraction <= 1.0:
            raise InputError(
                f"{row['id']}.value", value, f"exceeds {chip.id}'s {precision} peak {peak} TFLOPS"
            )
        chips[chip.id] = chip
        note = f"{row['id']}: {value:g} TFLOPS / {peak:g} peak; {row['source']}; {row['source_ref']}"
        found.setdefault(chip.id, {})[precision] = (fraction, note)

    profiles: dict[str, CalibrationProfile] = {}
    for chip_id, by_precision in sorted(found.items()):
        base = architecture_default(chips[chip_id])
        architecture = base.provenance["architecture"]
        provenance = {
            "basis": "published MAMF rows",
            "other fields": f"architecture default ({architecture}): {base.provenance['other fields']}",
        }
        efficiency = {p: round(e, 4) for p, (e, _) in sorted(by_precision.items())}
        for precision, (_, note) in sorted(by_precision.items()):
            provenance[f"gemm_efficiency.{precision}"] = note
        sibling = _sibling(chip_id)
        for precision, (sibling_eff, sibling_note) in sorted(found.get(sibling, {}).items()):
            if precision not in efficiency and getattr(chips[chip_id], f"{precision}_dense_tflops", None):
                efficiency[precision] = round(sibling_eff, 4)
                cited = sibling_note.split(";")[0]
                provenance[f"gemm_efficiency.{precision}"] = (
                    f"assumed: the measured fraction of {sibling}, the same die ({cited})"
                )
        if "bf16" not in efficiency:
            other = sorted(efficiency)[0]  # a measured precision stands in for bf16
            efficiency["bf16"] = efficiency[other]
            provenance["gemm_efficiency.bf16"] = f"assumed equal to the measured {other} fraction"
        if "fp8" not in efficiency and chips[chip_id].fp8_dense_tflops is not None:
            provenance["gemm_efficiency.fp8"] = "assumed equal to the bf16 fraction (no FP8 row)"
        profiles[chip_id] = replace(
            base,
            gemm_efficiency=MappingProxyType(dict(sorted(efficiency.items()))),
            provenance=MappingProxyType(provenance),
        )
    for chip_id, measured in SAME_DIE_UNMEASURED.items():
        if chip_id in profiles or measured not in profiles:
            continue
        try:
            chip = get_chip(chip_id)
        except InputError:
            continue
        if chip.bf16_dense_tflops != chips[measured].bf16_dense_tflops:
            raise InputError(
                "SAME_DIE_UNMEASURED", chip_id, f"must have {measured}'s dense BF16 peak to share its die"
            )
        source = profiles[measured]
        borrowed = {
            key: f"assumed: the measured fraction of {measured}, the same die ({note.split(';')[0]})"
            for key, note in source.provenance.items()
            if key.startswith("gemm_efficiency.")
        }
        profiles[chip_id] = replace(
            source,
            chip_id=chip_id,
            provenance=MappingProxyType(
                {**source.provenance, "basis": f"published MAMF rows of {measured} (same die)", **borrowed}
            ),
        )
    return profiles, skipped


def _sibling(chip_id: str) -> str:
    """The chip on the same die as `chip_id` (`SAME_DIE`), or "" if it has none."""
    for a, b in SAME_DIE:
        if chip_id in (a, b):
            return b if chip_id == a else a
    return ""
