"""Training calibration: the fitted efficiency factors the cost and communication models apply.

The shipped cost profiles (`cost/profiles/`) say what a chip reaches in microbenchmarks (best-shape
GEMMs, streaming copies). A real training step reaches less, by amounts that depend on the chip
generation's software stack and on a few mechanisms the roofline does not resolve. These factors are
fitted against published training measurements (`twofold validate`, procedure in
`twofold.validate.calibrate`) and stored in `cost/calibration.yaml`; `cost.profile_for` applies them,
so the model `twofold estimate` / `plan` run IS the model `twofold validate` reports errors for.

Each factor (GEMM per family and precision, routed-expert GEMMs, attention, memory-bound kernels,
collectives with their per-stack and FSDP factors, TP/EP/FSDP overlap, per-op overhead), why it is a
mechanism, its citations, `NVLS_FAMILIES`, measured profiles and what is left out:
docs/cost-model.md, "Training calibration: the fitted factors".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from twofold import yaml_strict
from twofold.checks import fraction, positive
from twofold.errors import InputError
from twofold.workload.ops import EXPERT_GEMM_PREFIX  # the ops expert_gemm_efficiency_factor applies to

__all__ = [
    "TrainingCalibration",
    "UNCALIBRATED",
    "CALIBRATION_FILE",
    "shipped_calibration",
    "calibration_from_dict",
    "calibration_to_dict",
    "save_calibration",
    "precision_bits",
    "runs_eager",
    "FSDP_FLAVOUR_PRIOR",
    "gemm_key",
    "MEMORY_BOUND_KINDS",
    "EXPERT_GEMM_PREFIX",
    "NVLS_FAMILIES",
]

# NVSwitch generations with in-switch reduction (NVLink SHARP): third-generation NVSwitch (H100/H200
# HGX) and later (B200 HGX, GB200 NVL72). NVIDIA H100 Tensor Core GPU Architecture whitepaper (2022),
# "NVLink Switch System" / SHARP; NCCL documentation, NCCL_NVLS_ENABLE.
NVLS_FAMILIES = frozenset({"NVIDIA Hopper", "NVIDIA Blackwell"})

CALIBRATION_FILE = "calibration.yaml"
# Op kinds the memory-bound factor applies to (everything but GEMMs, attention and convolutions).
MEMORY_BOUND_KINDS = frozenset({"norm", "elementwise", "embedding", "softmax", "loss", "router", "optimizer"})
_BITS = {
    "fp32": "16-bit",
    "tf32": "16-bit",
    "bf16": "16-bit",
    "fp16": "16-bit",
    "fp8": "8-bit",
    "mxfp8": "8-bit",
    "int8": "8-bit",
    "fp4": "4-bit",
}


def precision_bits(precision: str) -> str:
    """The GEMM precision class of a precision ("16-bit", "8-bit", "4-bit"); fp32/tf32 count as
    16-bit (no training row runs them; their GEMMs use the same tensor-core stack)."""
    return _BITS.get(precision, precision)


def gemm_key(family: str, precision: str) -> str:
    """The `gemm_efficiency_factor` key of a family and precision, e.g. "NVIDIA Hopper 8-bit"."""
    return f"{family} {precision_bits(precision)}"


# FSDP flavours without fitted rows -> the flavour whose overlap they inherit. FSDP2 (`fully_shard`)
# keeps FSDP1's prefetching: the next module's all-gather is issued on a separate stream one module
# ahead in the forward (implicit forward prefetch) and in the backward (BACKWARD_PRE), with explicit
# prefetch optional (PyTorch FSDP2 RFC, pytorch/pytorch#114299, "Prefetching"; torch.distributed.fsdp
# `fully_shard` docs), so its overlap is expected to be FSDP1's, not the shared Megatron/DeepSpeed
# value. Measured on no shipped row: torchtitan's rows are not expressible yet.
FSDP_FLAVOUR_PRIOR: Mapping[str, str] = MappingProxyType({"fsdp2": "fsdp1"})


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainingCalibration:
    """Fitted efficiency factors (module docstring). Missing entries are 1.0."""

    gemm_efficiency_factor: Mapping[str, float] = field(default_factory=dict)
    expert_gemm_efficiency_factor: float = 1.0
    attention_efficiency_factor: float = 1.0
    memory_bound_efficiency_factor: float = 1.0
    collective_efficiency: float = 1.0
    fsdp_collective_efficiency: float = 1.0
    tp_comm_overlap: Mapping[str, float] = field(default_factory=dict)
    ep_comm_overlap: Mapping[str, float] = field(default_factory=dict)
    op_overhead_factor: float = 1.0
    fsdp_comm_overlap: float = 1.0
    # FSDP flavour (`cost.stack`, e.g. "fsdp1", "deepspeed") -> its own fitted overlap fraction;
    # a flavour without one takes `fsdp_comm_overlap`.
    fsdp_comm_overlap_by_flavour: Mapping[str, float] = field(default_factory=dict)
    # Stack id -> its collective efficiency relative to `collective_efficiency` (the bucketing,
    # stream use and collective library of a framework; 1 where a stack has no fitted value).
    collective_efficiency_by_stack: Mapping[str, float] = field(default_factory=dict)
    # chip id -> hardware family (the key of `gemm_efficiency_factor`).
    chip_families: Mapping[str, str] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    # The software stack (`cost.stack`): a Stack, a stack id or file, or None = `auto` (the chip
    # vendor's reference stack). Not fitted: it selects which mechanisms and factors apply.
    stack: Any = None
    # The calibration before a stack's own fitted factors replaced some of it (`with_stack`); None
    # when the stack carries none. Priors for families without rows read it, so that a stack
    # calibrated on one family leaves every other family's factors as they were.
    stack_base: TrainingCalibration | None = field(default=None, compare=False, repr=False)

    def family(self, chip_id: str) -> str | None:
        return self.chip_families.get(chip_id)

    def stack_family(self, chip_id: str) -> str | None:
        """The family a stack's per-family mechanisms are looked up by (and kernel measurements
        found for): the chip's family, from the shipped file when this calibration has none
        (UNCALIBRATED still runs the stack's kernels; it only has no fitted factors)."""
        if self.chip_families:
            return self.chip_families.get(chip_id)
        shipped = shipped_calibration()
        return shipped.chip_families.get(chip_id) if shipped.chip_families else None

    # --- the stack's mechanisms on a chip (`cost.stack`) -----------------------------------------

    def stack_for(self, chip: Any) -> Any:
        """The resolved `cost.stack.Stack` on `chip` (`auto` -> the vendor's reference stack)."""
        from twofold.cost.stack import resolve_stack

        return resolve_stack(self.stack, chip)

    def with_stack(self, stack: Any) -> TrainingCalibration:
        """A copy running `stack` (a Stack, an id, a file path, or None for `auto`).

        A stack with fitted factors (`twofold calibrate`; `cost.stack`, `Stack.factors`) replaces
        these factors by its own: scalars on every chip, per-key mappings key by key, so a
        chip-family factor ("NVIDIA Ampere 16-bit") changes that family only and every other
        family keeps this calibration's. The factors before the override are kept
        (`stack_base`), so that a later `with_stack` starts from them again."""
        if isinstance(stack, str) and stack != "auto":
            from twofold.cost.stack import get_stack

            stack = get_stack(stack)  # fail early on an unknown id
        base = self.stack_base if self.stack_base is not None else self
        stack = None if stack == "auto" else stack
        factors = getattr(stack, "factors", None)
        if not factors:
            return dataclasses.replace(base, stack=stack, stack_base=None)
        changes: dict[str, Any] = {}
        for name, value in factors.items():
            if isinstance(value, Mapping):
                changes[name] = MappingProxyType({**getattr(base, name), **value})
            else:
                changes[name] = float(value)
        runs = stack.provenance.get("num_runs")
        where = f"{stack.id} ({stack.path or 'in memory'})"
        own = f"stack {where}: factors fitted on {runs} runs" if runs else f"stack {where}: its own factors"
        summary = f"{base.provenance.get('summary', 'shipped factors')}; {own}"
        note = {"stack_calibration": where, "summary": summary}
        return dataclasses.replace(
            base,
            **changes,
            stack=stack,
            stack_base=base,
            provenance=MappingProxyType({**base.provenance, **note}),
        )

    def eager_on(self, chip: Any) -> bool:
        """Whether the stack runs `chip`'s steps as eager kernels (per-op overhead, unfused ops)."""
        return bool(self.stack_for(chip).eager(self.stack_family(chip.id)))

    def tp_overlap_on(self, chip: Any) -> float:
        """The family's fitted TP overlap where the stack overlaps TP communication, else 0."""
        stack = self.stack_for(chip)
        return self.tp_overlap(chip.id) if stack.value("tp_comm_overlap", self.stack_family(chip.id)) else 0.0

    def ep_overlap_on(self, chip: Any) -> float:
        stack = self.stack_for(chip)
        return self.ep_overlap(chip.id) if stack.value("ep_comm_overlap", self.stack_family(chip.id)) else 0.0

    def context_parallel_on(self, chip: Any) -> str:
        """How the stack runs context parallelism on `chip`: "ring" (ring attention) or "all-to-all"
        (DeepSpeed-Ulysses), `workload.layers.CP_ALGORITHMS`."""
        return str(self.stack_for(chip).context_parallel(self.stack_family(chip.id)))

    def grad_reduce_fp32_on(self, chip: Any) -> bool:
        """Whether the stack reduces data-parallel gradients in fp32 on `chip` (`grad_reduce_dtype`)."""
        return bool(self.stack_for(chip).grad_reduce_fp32(self.stack_family(chip.id)))

    def model_state_bytes_on(self, chip: Any) -> tuple[float, float, float]:
        """(weights, gradients, optimizer) bytes per parameter of mixed-precision training where the
        stack keeps its model states on `chip` (`cost.stack` model_state_bytes)."""
        stack = self.stack_for(chip)
        states: tuple[float, float, float] = stack.model_state_bytes(self.stack_family(chip.id))
        return states

    def param_gather_overlap_on(self, chip: Any) -> bool:
        """Whether the stack hides ZeRO-1/2's parameter gather behind the next forward on `chip`
        (`cost.stack` param_gather_overlap)."""
        return bool(self.stack_for(chip).param_gather_overlap(self.stack_family(chip.id)))

    def zero_stages_on(self, chip: Any) -> tuple[int, ...]:
        """The ZeRO stages the stack implements on `chip` (`cost.stack` zero_stages)."""
        return tuple(self.stack_for(chip).zero_stages(self.stack_family(chip.id)))

    def default_zero_on(self, chip: Any) -> int:
        """The ZeRO stage an estimate takes on `chip` when none is asked for (`Stack.default_zero`)."""
        return int(self.stack_for(chip).default_zero(self.stack_family(chip.id)))

    def collective_efficiency_on(self, chip: Any) -> float:
        """`collective_efficiency` times the stack's own factor (`collective_efficiency_by_stack`)."""
        stack = self.stack_for(chip).calibration_id
        return self.collective_efficiency * float(self.collective_efficiency_by_stack.get(stack, 1.0))

    def fsdp_flat_ring_on(self, chip: Any) -> bool:
        """Whether the stack's ZeRO-3 collectives run as one flat ring over the data-parallel group
        (DeepSpeed ZeRO-3: Narayanan et al. 2021 Table 2 stays flat with scale, `parallel.comm`)
        rather than at the bus bandwidth NCCL reaches across multi-NIC nodes (PyTorch FSDP,
        Megatron-FSDP, XLA)."""
        return bool(self.stack_for(chip).fsdp_flavour(self.stack_family(chip.id)) == "deepspeed")

    def fsdp_overlap_on(self, chip: Any) -> float:
        """The fitted overlap fraction of the stack's FSDP flavour; a flavour without rows takes the
        flavour it inherits its prefetching from (`FSDP_FLAVOUR_PRIOR`), else `fsdp_comm_overlap`."""
        flavour: str | None = self.stack_for(chip).fsdp_flavour(self.stack_family(chip.id))
        while flavour is not None:
            if flavour in self.fsdp_comm_overlap_by_flavour:
                return float(self.fsdp_comm_overlap_by_flavour[flavour])
            flavour = FSDP_FLAVOUR_PRIOR.get(flavour)
        return float(self.fsdp_comm_overlap)

    def gemm_factor(self, chip_id: str, precision: str) -> float:
        """The family's fitted factor; where it has none for this precision class, the prior below.

        Prior for a family fitted at other precision classes only: the geometric mean of its own
        factors. What the family's factors carry that is not precision-specific (the generation's
        clock and power limits under sustained load, its framework's gaps) is the larger part of
        the factor, and the precision-specific part (scaling and cast work) is what no row shows;
        measured: Blackwell's 16-bit factor left out with the Megatron-Bridge source, LOSO 15.6% ->
        15.3% on the Blackwell rows. Prior for a family without training rows: the geometric mean
        of the fitted factors of the same precision class over all other families (falling back to
        every fitted factor when no family has that class). What the fitted families show is how
        far microbenchmark GEMM efficiency overstates a real training step on a typical stack; an
        unseen family is expected to be typical, not to run at its microbenchmark figure
        (measured: Trainium left out of the fit, 54% -> 36% error).
        """
        family = self.family(chip_id)
        if family is None:
            return 1.0
        fitted = self.gemm_efficiency_factor.get(gemm_key(family, precision))
        if fitted is not None:
            return float(fitted)
        own = [v for k, v in self.gemm_efficiency_factor.items() if k.startswith(f"{family} ")]
        if own:
            return _geometric_mean(own)
        return self._prior_gemm_factor(precision_bits(precision))

    def gemm_basis(self, chip_id: str, precision: str) -> str:
        """Where `gemm_factor` comes from: "fitted (<key>)", or which prior stands in (assumed)."""
        family = self.family(chip_id)
        if family is None:
            return "no hardware family: 1.0 (assumed)"
        key = gemm_key(family, precision)
        if key in self.gemm_efficiency_factor:
            return f"fitted ({key})"
        if any(k.startswith(f"{family} ") for k in self.gemm_efficiency_factor):
            return f"assumed: geometric mean of {family}'s factors at other precisions"
        return f"assumed: no {family} training rows; geometric mean of the fitted families"

    def _prior_gemm_factor(self, bits: str) -> float:
        base = self.stack_base if self.stack_base is not None else self
        same = [v for k, v in base.gemm_efficiency_factor.items() if k.endswith(f" {bits}")]
        values = same or list(base.gemm_efficiency_factor.values())
        return _geometric_mean(values) if values else 1.0

    def tp_overlap(self, chip_id: str) -> float:
        family = self.family(chip_id)
        return 0.0 if family is None else float(self.tp_comm_overlap.get(family, 0.0))

    def ep_overlap(self, chip_id: str) -> float:
        family = self.family(chip_id)
        return 0.0 if family is None else float(self.ep_comm_overlap.get(family, 0.0))

    def in_network_reduction(self, chip_id: str) -> bool:
        return self.family(chip_id) in NVLS_FAMILIES

    def with_factors(self, **changes: Any) -> TrainingCalibration:
        """A copy with some factors replaced (the families and provenance kept)."""
        return dataclasses.replace(self, **changes)


UNCALIBRATED = TrainingCalibration()


def runs_eager(chip: Any, calibration: TrainingCalibration | None = None) -> bool:
    """Whether a chip's training steps are priced as an eager framework's, i.e. whether
    `op_overhead_factor` applies: the stack's `runtime`
    (`cost.stack`; `auto`: GPUs run eager Megatron/PyTorch, TPU and Trainium compiled graphs)."""
    return (calibration or UNCALIBRATED).eager_on(chip)


def _geometric_mean(values: list[float]) -> float:
    return float(math.exp(sum(math.log(v) for v in values) / len(values)))


def _positive(name: str, value: object) -> float:
    return float(positive(name, value))  # type: ignore[arg-type]  # a YAML value, checked by `positive`


def _fractions(data: Mapping[str, Any], name: str) -> dict[str, float]:
    raw = data.get(name) or {}
    if not isinstance(raw, Mapping):
        raise InputError("calibration", name, "must be a mapping")
    out = {}
    for k, v in raw.items():
        out[str(k)] = float(fraction(f"calibration.{name}.{k}", v, "a fraction", closed=True))
    return out


def _positives(data: Mapping[str, Any], name: str) -> dict[str, float]:
    raw = data.get(name) or {}
    if not isinstance(raw, Mapping):
        raise InputError("calibration", name, "must be a mapping")
    return {str(k): _positive(f"calibration.{name}.{k}", v) for k, v in raw.items()}


def calibration_from_dict(data: Any) -> TrainingCalibration:
    """Parse the YAML form (see `cost/calibration.yaml`), validating every factor."""
    if not isinstance(data, Mapping):
        raise InputError("calibration", type(data).__name__, "must be a mapping")
    gemm_raw = data.get("gemm_efficiency_factor") or {}
    families_raw = data.get("chip_families") or {}
    if not isinstance(gemm_raw, Mapping) or not isinstance(families_raw, Mapping):
        raise InputError("calibration", "gemm_efficiency_factor/chip_families", "must be mappings")
    gemm = _positives(data, "gemm_efficiency_factor")
    scalars: dict[str, Any] = {
        name: _positive(f"calibration.{name}", data.get(name, 1.0))
        for name in (
            "expert_gemm_efficiency_factor",
            "attention_efficiency_factor",
            "memory_bound_efficiency_factor",
            "collective_efficiency",
            "fsdp_collective_efficiency",
            "op_overhead_factor",
        )
    }
    overlap = data.get("fsdp_comm_overlap", 1.0)
    fraction("calibration.fsdp_comm_overlap", overlap, "a fraction", closed=True)
    return TrainingCalibration(
        fsdp_comm_overlap=float(overlap),
        fsdp_comm_overlap_by_flavour=MappingProxyType(_fractions(data, "fsdp_comm_overlap_by_flavour")),
        collective_efficiency_by_stack=MappingProxyType(_positives(data, "collective_efficiency_by_stack")),
        gemm_efficiency_factor=MappingProxyType(gemm),
        tp_comm_overlap=MappingProxyType(_fractions(data, "tp_comm_overlap")),
        ep_comm_overlap=MappingProxyType(_fractions(data, "ep_comm_overlap")),
        chip_families=MappingProxyType({str(k): str(v) for k, v in families_raw.items()}),
        provenance=MappingProxyType(dict(data.get("provenance") or {})),
        **scalars,
    )


def calibration_to_dict(c: TrainingCalibration) -> dict[str, Any]:
    return {
        "gemm_efficiency_factor": {
            k: round(float(v), 4) for k, v in sorted(c.gemm_efficiency_factor.items())
        },
        "expert_gemm_efficiency_factor": round(float(c.expert_gemm_efficiency_factor), 4),
        "attention_efficiency_factor": round(float(c.attention_efficiency_factor), 4),
        "memory_bound_efficiency_factor": round(float(c.memory_bound_efficiency_factor), 4),
        "collective_efficiency": round(float(c.collective_efficiency), 4),
        "fsdp_collective_efficiency": round(float(c.fsdp_collective_efficiency), 4),
        "op_overhead_factor": round(float(c.op_overhead_factor), 4),
        "fsdp_comm_overlap": round(float(c.fsdp_comm_overlap), 4),
        "collective_efficiency_by_stack": {
            k: round(float(v), 4) for k, v in sorted(c.collective_efficiency_by_stack.items())
        },
        "fsdp_comm_overlap_by_flavour": {
            k: round(float(v), 4) for k, v in sorted(c.fsdp_comm_overlap_by_flavour.items())
        },
        "tp_comm_overlap": {k: round(float(v), 4) for k, v in sorted(c.tp_comm_overlap.items())},
        "ep_comm_overlap": {k: round(float(v), 4) for k, v in sorted(c.ep_comm_overlap.items())},
        "chip_families": dict(sorted(c.chip_families.items())),
        "provenance": dict(c.provenance),
    }


@cache
def shipped_calibration() -> TrainingCalibration:
    """`cost/calibration.yaml` (UNCALIBRATED when the file is absent)."""
    resource = resources.files("twofold.cost").joinpath(CALIBRATION_FILE)
    if not resource.is_file():
        return UNCALIBRATED
    return calibration_from_dict(yaml_strict.load(resource.read_text(encoding="utf-8")))


def save_calibration(c: TrainingCalibration, path: Path | str, header: str = "") -> None:
    """Write the YAML form with a comment header saying how it was produced."""
    text = yaml.safe_dump(calibration_to_dict(c), sort_keys=False, allow_unicode=True)
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    Path(path).write_text(comment + text, encoding="utf-8")
