"""Hardware value objects: a chip, the topology levels that connect chips, and the systems they ship in.

Units are in the field names. Figures are per chip and dense (no structured sparsity). A figure that
no source publishes is `None` and stays `None`: estimators must report it as unknown, never guess.
Each figure's provenance (source keys, note, alternative values where sources disagree) is kept in
`Chip.figures`, keyed by the field name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from twofold.checks import one_of
from twofold.errors import InputError
from twofold.hardware.profile import CalibrationProfile
from twofold.units import GIB, TB

__all__ = [
    "PRECISIONS",
    "PRICE_KINDS",
    "PRICE_QUALITIES",
    "Chip",
    "Figure",
    "Precision",
    "PriceKind",
    "PriceQuote",
    "Source",
    "System",
    "TopologyLevel",
]

Precision = Literal["fp32", "tf32", "bf16", "fp16", "fp8", "mxfp8", "fp4", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16", "fp8", "mxfp8", "fp4", "int8")
# On-demand list price; AWS EC2 Capacity Blocks for ML (a reserved block of instances, paid ahead);
# spot (interruptible, market price at the time of the snapshot); committed-use prices for a 1- or
# 3-year term (Google Cloud CUDs), published for some systems only.
PriceKind = Literal["on-demand", "capacity-block", "spot", "committed-1y", "committed-3y"]
PRICE_KINDS: tuple[str, ...] = ("on-demand", "capacity-block", "spot", "committed-1y", "committed-3y")
# Quality grade of a price quote, strongest first (shared/data/prices_power.md): A = vendor page or
# a catalog built from the vendor's pricing API; B = a reputable secondary source reproducing vendor
# figures; C = a single third-party page or a hand-entered value. Disputed (D) prices are not shipped.
PRICE_QUALITIES: tuple[str, ...] = ("A", "B", "C")


@dataclass(frozen=True, kw_only=True, slots=True)
class Source:
    """Where a figure comes from: a title and an address (URL or repo/path@commit), and a date."""

    key: str
    title: str
    url: str = ""
    date: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Figure:
    """Provenance of one spec field: which sources give it, a note, and disagreeing values."""

    value: float | int | str | None
    sources: tuple[str, ...] = ()
    note: str = ""
    # Values other sources give for the same quantity, e.g. ({"value": 3.0, "sources": ("nki",)},)
    alternatives: tuple[Mapping[str, object], ...] = ()
    # "high" unless the source flags the figure as an estimate or a derivation ("medium", "low").
    confidence: Literal["high", "medium", "low"] = "high"


@dataclass(frozen=True, kw_only=True, slots=True)
class Chip:
    """One accelerator chip (a GPU, a Trainium/Inferentia device, a TPU chip, a CPU package)."""

    id: str
    name: str
    vendor: str
    family: str  # "trainium", "inferentia", "nvidia-gpu", "tpu", "amd-gpu", "apple", "cpu"
    aliases: tuple[str, ...] = ()
    year: int | None = None

    # Peak dense throughput per chip; None = not supported or not published (see figures[...].note).
    fp32_dense_tflops: float | None = None
    tf32_dense_tflops: float | None = None
    bf16_dense_tflops: float | None = None
    # Only where FP16 differs from BF16 (V100: FP16 tensor cores, no BF16); None = the bf16 rate.
    fp16_dense_tflops: float | None = None
    fp8_dense_tflops: float | None = None
    mxfp8_dense_tflops: float | None = None
    fp4_dense_tflops: float | None = None
    int8_dense_tops: float | None = None

    hbm_capacity_gib: float
    hbm_bandwidth_tb_s: float
    sram_mib: float | None = None

    # Micro-architecture, for the single-chip cost model.
    architecture: Literal["gpu", "systolic", "cpu"] = "gpu"
    compute_units: int | None = None  # SMs, CUs, NeuronCores, TensorCores
    systolic_array_dim: int | None = None  # 128 on Trainium TensorE and TPU v4/v5 MXU, 256 on v6e+
    matrix_units: int | None = None  # systolic arrays per chip (TensorEs, MXUs)
    clock_ghz: float | None = None

    tdp_w: float | None = None
    idle_w: float | None = None

    default_system: str = ""
    figures: Mapping[str, Figure] = field(default_factory=dict)
    sources: tuple[Source, ...] = ()
    # A fitted calibration profile, or its dict form (set for the measured `local` chip); None = the
    # cost model uses the chip's shipped default profile (`cost.defaults.profile_for`).
    calibration: CalibrationProfile | Mapping[str, Any] | None = None
    notes: tuple[str, ...] = ()  # chip-level caveats that belong to no single figure

    def peak_tflops(self, precision: str) -> float:
        """Dense peak TFLOPS for a precision; raises InputError if the chip has no such rate.

        fp16 runs at the bf16 rate on every catalogued chip that has no fp16 figure of its own (a
        chip without BF16, the V100, has one); mxfp8 falls back to the fp8 rate where the vendor
        publishes no separate microscaling figure.
        """
        if precision == "fp16" and self.fp16_dense_tflops is not None:
            return float(self.fp16_dense_tflops)
        name = {"fp16": "bf16"}.get(precision, precision)
        value = getattr(self, f"{name}_dense_tflops", None) if name != "int8" else self.int8_dense_tops
        if value is None and name == "mxfp8":
            value = self.fp8_dense_tflops
        if value is None:
            one_of("precision", precision, PRECISIONS)
            raise InputError("precision", precision, f"chip {self.id} publishes no dense {precision} rate")
        return float(value)

    @property
    def hbm_capacity_bytes(self) -> float:
        return self.hbm_capacity_gib * GIB

    @property
    def hbm_bandwidth_bytes_per_s(self) -> float:
        return self.hbm_bandwidth_tb_s * TB


@dataclass(frozen=True, kw_only=True, slots=True)
class TopologyLevel:
    """One level of the interconnect, innermost first.

    `domain_chips` is how many chips one domain of this level holds (8 for an HGX NVLink domain,
    64 for a Trn2 UltraServer); the outermost network level has `domain_chips=None` (unbounded).
    `bandwidth_gb_s_per_chip` is the unidirectional bandwidth one chip can inject at this level,
    in GB/s (1e9 B/s). For a torus, `torus_dims` gives its shape (e.g. (4, 4) or (4, 4, 4)) and the
    bandwidth is the chip's total over all its links.
    """

    name: str  # "nvlink", "neuronlink", "ici", "efa", "infiniband", "dcn", "xgmi"
    kind: Literal["switched", "torus", "mesh", "network"]
    domain_chips: int | None
    bandwidth_gb_s_per_chip: float
    latency_us: float
    torus_dims: tuple[int, ...] = ()
    note: str = ""
    sources: tuple[str, ...] = ()
    # True for a level no source documents, stated as an assumption (`hardware.scale`): estimates
    # that use it say so in their notes.
    assumed: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class PriceQuote:
    """One published price of a system, per chip-hour, of one kind (on-demand, capacity-block, spot).

    `usd_per_chip_hour` is the quoted instance's price divided by its chips (None: no price of this
    kind is published, `note` says why). `instance` is the instance the price was quoted for, which
    may differ from the system (a capacity block of p5e for an HGX H200 sold as p5en). `as_of` is
    when the price was published or seen ("" = not recorded), `valid_until` the end of its validity
    where the source gives one; `sources` are keys into the system's sources. `provider` is who
    sells it (aws, gcp, lambda) and `quality` its grade (`PRICE_QUALITIES`; "" for an unknown price):
    a grade belongs to the quote and is never lent to another kind or provider.
    """

    kind: PriceKind
    usd_per_chip_hour: float | None
    provider: str = ""
    quality: str = ""
    usd_per_instance_hour: float | None = None
    instance: str = ""
    instance_chips: int | None = None
    region: str = ""
    as_of: str = ""
    valid_until: str = ""
    sources: tuple[str, ...] = ()
    note: str = ""

    def describe(self) -> str:
        """One line: kind, price arithmetic, instance, region, date, note (or why it is unknown)."""
        if self.usd_per_chip_hour is None:
            if self.note.lower().startswith("unknown"):
                return f"{self.kind}: {self.note}"
            return f"{self.kind}: unknown; {self.note}".rstrip("; ")
        parts = [f"{self.kind} (grade {self.quality or '?'})"]
        if self.provider:
            parts.append(self.provider)
        if self.usd_per_instance_hour is not None and self.instance_chips:
            usd = f"{self.usd_per_instance_hour:.5f}".rstrip("0").rstrip(".")
            parts.append(f"${usd}/h / {self.instance_chips} chips")
        parts += [self.instance, self.region or "region not recorded"]
        parts.append(f"as of {self.as_of}" if self.as_of else "date not recorded")
        if self.valid_until:
            parts.append(f"valid until {self.valid_until}")
        text = ", ".join(p for p in parts if p)
        return f"{text}; {self.note}" if self.note else text


@dataclass(frozen=True, kw_only=True, slots=True)
class System:
    """A system a chip ships in: an instance, a server, a rack or a pod slice, with its topology."""

    id: str
    name: str
    chip_id: str
    aliases: tuple[str, ...] = ()
    node_chips: int  # chips per instance/server (the unit you rent)
    max_chips: int | None = None  # largest documented deployment
    levels: tuple[TopologyLevel, ...]
    price_usd_per_chip_hour: float | None = None
    price_note: str = ""  # region, date, source of the price; why it is missing if it is
    # Published prices by kind (PRICE_KINDS); the on-demand one matches `price_usd_per_chip_hour`.
    prices: Mapping[str, PriceQuote] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # structure and caveats (how levels nest, what is assumed)
    sources: tuple[Source, ...] = ()
    # The chip object itself when it is not the catalog's (a what-if such as
    # `replace(get_chip("h100"), hbm_bandwidth_tb_s=10)`, or the measured local device); None = the
    # catalog chip `chip_id`. Estimates resolve the chip through `hardware.catalog.chip_of`, so a
    # what-if is never silently replaced by the catalog entry of the same id.
    chip: Chip | None = field(default=None, hash=False, repr=False)

    def __post_init__(self) -> None:
        if self.chip is not None and self.chip.id != self.chip_id:
            raise InputError("system.chip", self.chip.id, f"must be the system's chip {self.chip_id}")

    def price(self, kind: str = "on-demand") -> PriceQuote:
        """The published price of one kind; an unknown quote (None, with the reason) if there is none.

        A system built without `prices` (a what-if or a single device) has only its on-demand
        price, from `price_usd_per_chip_hour` and `price_note`. Never falls back to another kind.
        """
        one_of("price_kind", kind, PRICE_KINDS)
        quote = self.prices.get(kind)
        if quote is not None:
            return quote
        if kind == "on-demand":
            return PriceQuote(
                kind="on-demand", usd_per_chip_hour=self.price_usd_per_chip_hour, note=self.price_note
            )
        return PriceQuote(kind=kind, usd_per_chip_hour=None, note=f"no {kind} price in the sources")  # type: ignore[arg-type]
