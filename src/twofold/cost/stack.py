"""Software stacks: the third input that decides a run's speed, beside the chip and the model.

The same model on the same chips runs at different speeds under Megatron-LM with Transformer
Engine, plain PyTorch FSDP, torchtitan, DeepSpeed, MaxText or the Neuron SDK, because each stack
picks its own attention kernel, FP8 recipe, sharding flavour, runtime (eager kernels or a compiled
graph) and communication overlaps. A stack is data: one YAML file per stack under
`cost/stacks/` (or a user's file, or `~/.twofold/stacks/<id>.yaml`), each mechanism with its value
and the source that says so. Values may differ by hardware family (`by_family`): Transformer
Engine runs cuDNN attention on Hopper and FlashAttention-2 on Ampere.

Mechanisms and what the estimator does with them:
- `attention_kernel` (flash2, flash3, cudnn, math, xla-splash, nki, ck, ...): the kernel's
  measured speed by pass, mask, head dimension and length (`cost.attention`); kernels without a
  published table keep the profile's attention efficiency.
- `runtime` (eager | compiled): eager stacks pay the fitted per-kernel overhead of eager PyTorch
  (`cost.calibration.op_overhead_factor`); compiled graphs (torch.compile, XLA, the Neuron
  compiler) launch from a graph, so it does not apply. The fitted efficiency of memory-bound
  kernels (`memory_bound_efficiency_factor`) applies on both: fused kernels, hand-written or
  generated, still reach only part of the bandwidth, and what unfused eager forms move beyond
  them is the graph's (`fused_elementwise`).
- `fused_elementwise` (bool, with an eager runtime): whether norms, rotary embeddings and gated
  activations run as hand-written fused kernels (Transformer Engine / Megatron-Core / Apex / Triton
  kernels) or as the framework primitives of a Hugging Face-style module, one kernel per primitive
  with fp32 upcasts (`workload.layers`, the unfused derivations). Optional in a file (default true).
- `grad_reduce_dtype` (fp32 | bf16): the precision of the data-parallel gradient collectives
  (all-reduce, reduce-scatter, HSDP's replica all-reduce): fp32 moves 4 bytes per parameter
  (`estimate.training`). Optional in a file (default bf16, what every stack was priced with before).
- `zero_stages` (a list of 0-3): the ZeRO stages the stack implements, what `plan` searches and
  `estimate` accepts (Megatron-Core's distributed optimizer is ZeRO-1 and Megatron FSDP's
  strategies 1-3; nanotron and NxD stop at ZeRO-1; MaxText shards by mesh axes, 0 or 3).
  Optional in a file (default all four).
- `model_state_bytes` ({weights, gradients, optimizer}): bytes per parameter of each model state
  in mixed-precision training, where the stack keeps them: Megatron-Core's distributed optimizer
  keeps bf16 weights, an fp32 gradient buffer and the fp32 master copy with Adam's moments in the
  optimizer (2 + 4 + 12, "6 + 12/d" bytes with d data-parallel ranks); nanotron adds the bf16
  gradients of its DDP buckets to its fp32 accumulation buffer (2 + 6 + 12); FSDP2, FSDP1's mixed
  precision and MaxText keep fp32 weights that are the master copy (4 + 4 + 8). ZeRO shards them
  as its stage says (`parallel.memory`). Optional in a file (default 2 + 2 + 12, the ZeRO paper's
  accounting every stack was priced with before); pure fp32 training keeps 4 + 4 + 8 on any stack.
- `param_gather_overlap` (bool): whether ZeRO-1/2's all-gather of the updated parameters after the
  optimizer step hides behind the next forward pass (Megatron-Core `--overlap-param-gather`) or
  runs on the critical path at the end of the step (nanotron's and DeepSpeed's ZeRO-1/2 optimizers
  gather synchronously in `step()`). Optional in a file (default true, what every stack was priced
  with before).
- `fsdp_flavour` (megatron-fsdp | fsdp1 | fsdp2 | deepspeed | xla): which fitted overlap fraction
  of the ZeRO-3/FSDP collectives applies (`cost.calibration.TrainingCalibration.fsdp_overlap`).
- `tp_comm_overlap`, `ep_comm_overlap` (bool): whether TP / EP communication hides behind GEMMs
  (Megatron-Core userbuffers and merged MoE micro-batches); false = fully exposed.
- `context_parallel` (ring | all-to-all): how cp > 1 runs attention. Ring attention (Megatron-Core
  CP, torchtitan): K/V chunks circulate in cp - 1 steps that hide behind the attention kernels.
  All-to-all (DeepSpeed-Ulysses): all-to-alls of Q, K, V and the output over the cp group, on
  the critical path, and one attention kernel on the full sequence for heads/cp heads; tp*cp
  must divide the heads (`parallel.rules`). A file written before this mechanism existed (a
  stack `twofold calibrate` wrote) is read as ring, what every stack was priced with then.
- `fp8_recipe` (te-delayed | te-current | torchao-tensorwise | torchao-rowwise | none) and
  `fused_optimizer`, `fused_cross_entropy`: recorded with their sources and reported; the FP8
  recipe selects the FP8 GEMM factor group of the fit (`fp8_recipe` of the fitted calibration).

A stack may also carry fitted factors (`calibration:`, written by `twofold calibrate` from a team's
own runs, `validate.user_fit`): factor names of `cost/calibration.yaml` that replace the shipped ones
whenever the stack runs (`TrainingCalibration.with_stack`), the hardware families its runs measured,
and the leave-one-run-out interval of each such family (`estimate.uncertainty`). Chip-family factors
(`gemm_efficiency_factor["<family> <bits>-bit"]`) keep their family in the key, so they apply only
to chips of that family; the software factors apply on every chip.

`<id>-eager` and `<id>-compile` name a stack with its runtime switched (`RUNTIME_SUFFIXES`):
`--stack torchtitan-eager` is torchtitan with torch.compile off; a shipped file of that id
(`fsdp-compile`, with its own sources and fitted factor) is used where it exists.

A mechanism may carry its `history:`: earlier values with the last year they held (`through`) and
their source. Stacks change under the same name: Megatron-LM ran attention as two batched GEMMs
around a fused softmax, with the score matrix in memory, until FlashAttention and Transformer
Engine's fused attention replaced it in 2023. `<id>@<year>` (`Stack.as_of`) is the stack as it
ran for a run published in that year; `validate` prices every row with the stack as of the row's
year, and `--stack megatron@2021` asks for it by name. The dated stack shares its base stack's
fitted factors (`calibration_id`).

`auto` is not a stack of its own: it names the vendor's reference stack for each chip vendor
(`_auto.yaml`), and every result says which one it resolved to.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from twofold import yaml_strict
from twofold.checks import one_of
from twofold.errors import InputError
from twofold.workload.layers import CP_ALGORITHMS

__all__ = [
    "CALIBRATION_FACTORS",
    "MECHANISMS",
    "OPTIONAL_MECHANISMS",
    "OVERRIDE",
    "RUNTIME_SUFFIXES",
    "Era",
    "Mechanism",
    "Stack",
    "AUTO",
    "auto_table",
    "get_stack",
    "is_stack_id",
    "list_stacks",
    "user_stacks",
    "load_stack_file",
    "resolve_stack",
    "stack_for_chip",
    "user_stack_dir",
]

AUTO = "auto"
RUNTIMES = ("eager", "compiled")
FSDP_FLAVOURS = ("megatron-fsdp", "fsdp1", "fsdp2", "deepspeed", "xla", "none")
FP8_RECIPES = ("te-delayed", "te-current", "te-mxfp8", "torchao-tensorwise", "torchao-rowwise", "xla", "none")
# mechanism -> allowed values (None: any string) or bool
MECHANISMS: Mapping[str, tuple[str, ...] | type | None] = MappingProxyType(
    {
        "attention_kernel": None,  # checked against cost.attention.ATTENTION_KERNELS
        "runtime": RUNTIMES,
        "fsdp_flavour": FSDP_FLAVOURS,
        "fp8_recipe": FP8_RECIPES,
        "tp_comm_overlap": bool,
        "ep_comm_overlap": bool,
        "context_parallel": CP_ALGORITHMS,
        "fused_optimizer": bool,
        "fused_cross_entropy": bool,
        "fused_elementwise": bool,
        "grad_reduce_dtype": ("fp32", "bf16"),
        "zero_stages": list,  # a non-empty subset of 0-3, checked by `_check_value`
        "model_state_bytes": dict,  # {weights, gradients, optimizer}: positive bytes per parameter
        "param_gather_overlap": bool,
    }
)
# Mechanisms a stack file may leave out (files written before they existed), with the value taken:
# what every stack was priced with before the mechanism (context parallelism: ring attention).
OPTIONAL_MECHANISMS: Mapping[str, Any] = MappingProxyType(
    {
        "fused_elementwise": True,
        "context_parallel": "ring",
        "grad_reduce_dtype": "bf16",
        "zero_stages": (0, 1, 2, 3),
        "model_state_bytes": (2.0, 2.0, 12.0),
        "param_gather_overlap": True,
    }
)

# Factors of `cost/calibration.yaml` a stack file may carry, and their kind: a positive number, a
# mapping key -> positive number, or a mapping key -> fraction in [0, 1].
CALIBRATION_FACTORS: Mapping[str, str] = MappingProxyType(
    {
        "gemm_efficiency_factor": "positives",
        "expert_gemm_efficiency_factor": "positive",
        "attention_efficiency_factor": "positive",
        "memory_bound_efficiency_factor": "positive",
        "op_overhead_factor": "positive",
        "collective_efficiency_by_stack": "positives",
        "fsdp_comm_overlap_by_flavour": "fractions",
        "tp_comm_overlap": "fractions",
        "ep_comm_overlap": "fractions",
    }
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Mechanism:
    """One mechanism of a stack: its value (and values per hardware family) and the source."""

    name: str
    value: Any
    source: str
    by_family: Mapping[str, Any] = field(default_factory=dict)
    # Earlier values, oldest first: runs published in or before `through` (a year) ran this one.
    history: tuple[Era, ...] = ()

    def for_family(self, family: str | None) -> Any:
        if family is not None and family in self.by_family:
            return self.by_family[family]
        return self.value

    def era(self, year: int) -> Era | None:
        """The earlier value a run of `year` took (the first era with `through` >= year), or None
        when the current value applies."""
        return next((e for e in self.history if year <= e.through), None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": _plain(self.value), "source": self.source}
        if self.by_family:
            out["by_family"] = {k: _plain(v) for k, v in self.by_family.items()}
        if self.history:
            out["history"] = [e.to_dict() for e in self.history]
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class Era:
    """An earlier value of a mechanism: what the stack ran for runs published up to `through`."""

    through: int
    value: Any
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"through": self.through, "value": _plain(self.value), "source": self.source}


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _id_text(v: Any) -> str:
    """A mechanism value as a stack id writes it (`OVERRIDE`)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple) and v and all(isinstance(x, float) for x in v):
        return ":".join(f"{x:g}" for x in v)  # model_state_bytes: weights:gradients:optimizer
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return str(v)


@dataclass(frozen=True, kw_only=True, slots=True)
class Stack:
    """A software stack (module docstring). `path`: the file it was read from."""

    id: str
    name: str
    summary: str
    mechanisms: Mapping[str, Mechanism]
    path: str = ""
    provenance: Mapping[str, Any] = field(default_factory=dict)
    # Fitted factors (`CALIBRATION_FACTORS` names -> value), empty for the shipped stacks.
    factors: Mapping[str, Any] = field(default_factory=dict)
    # family -> {"log_low", "log_high", "runs"}: the leave-one-run-out interval of log(measured /
    # predicted) throughput on the families the calibration runs measured.
    intervals: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # The stack a runtime variant (`<id>-eager` / `<id>-compile`) was made from; "" for a file's.
    variant_of: str = ""

    @property
    def calibration_id(self) -> str:
        """The id its fitted per-stack factors are kept under: a runtime variant shares its base
        stack's (collective efficiency and FSDP exposure do not depend on torch.compile)."""
        return self.variant_of or self.id

    def value(self, mechanism: str, family: str | None = None) -> Any:
        return self.mechanisms[mechanism].for_family(family)

    def attention_kernel(self, family: str | None) -> str:
        return str(self.value("attention_kernel", family))

    def eager(self, family: str | None) -> bool:
        return bool(self.value("runtime", family) == "eager")

    def unfused(self, family: str | None) -> bool:
        """Eager with framework primitives one by one (`fused_elementwise` false): memory-bound ops
        move and launch what their unfused forms do (`workload.ops.Op.unfused_traffic`)."""
        return self.eager(family) and not bool(self.value("fused_elementwise", family))

    def grad_reduce_fp32(self, family: str | None) -> bool:
        """Whether data-parallel gradient reductions run in fp32 (`grad_reduce_dtype`)."""
        return bool(self.value("grad_reduce_dtype", family) == "fp32")

    def model_state_bytes(self, family: str | None) -> tuple[float, float, float]:
        """(weights, gradients, optimizer) bytes per parameter of mixed-precision training
        (`model_state_bytes`)."""
        w, g, o = self.value("model_state_bytes", family)
        return (float(w), float(g), float(o))

    def param_gather_overlap(self, family: str | None) -> bool:
        """Whether ZeRO-1/2's gather of the updated parameters hides behind the next forward
        (`param_gather_overlap`)."""
        return bool(self.value("param_gather_overlap", family))

    def zero_stages(self, family: str | None) -> tuple[int, ...]:
        """The ZeRO stages the stack implements (`zero_stages`): what `plan` searches and
        `estimate` accepts with data parallelism."""
        return tuple(int(z) for z in self.value("zero_stages", family))

    def default_zero(self, family: str | None) -> int:
        """The ZeRO stage an estimate takes when none is asked for: 1 (optimizer states sharded)
        where the stack has it, else its nearest stage above 1 (MaxText: 3, its default FSDP mesh),
        else 0."""
        stages = self.zero_stages(family)
        above = [z for z in stages if z >= 1]
        return min(above) if above else 0

    def fsdp_flavour(self, family: str | None) -> str:
        return str(self.value("fsdp_flavour", family))

    def fp8_recipe(self, family: str | None) -> str:
        return str(self.value("fp8_recipe", family))

    def context_parallel(self, family: str | None) -> str:
        return str(self.value("context_parallel", family))

    def as_of(self, year: int | None) -> Stack:
        """The stack as it ran for a run published in `year`: every mechanism with an era reaching
        that year (`Mechanism.history`) takes the era's value on every family; id `<id>@<year>`.
        The stack itself when no era applies (or `year` is None)."""
        if year is None:
            return self
        changed = {}
        for name, m in self.mechanisms.items():
            era = m.era(year)
            if era is not None:
                source = f"as of {year} (through {era.through}): {era.source}"
                changed[name] = Mechanism(name=name, value=era.value, source=source)
        if not changed:
            return self
        return replace(
            self,
            id=f"{self.id}@{year}",
            name=f"{self.name}, as run in {year}",
            mechanisms=MappingProxyType({**self.mechanisms, **changed}),
            variant_of=self.calibration_id,
        )

    def with_values(self, values: Mapping[str, Any], why: str) -> Stack:
        """The stack with `values` ({mechanism: value}, checked) on every family, id
        `<id>+<mechanism>=<value>...` (sorted by mechanism), its fitted factors kept under its base
        (`calibration_id`); `why` says where the values come from. The stack itself when every
        value is already its own on every family."""

        def same(m: Mechanism, v: Any) -> bool:
            return bool(m.value == v and not m.by_family)

        changed = {k: v for k, v in values.items() if not same(self.mechanisms[k], v)}
        if not changed:
            return self
        base_id = self.id.split(OVERRIDE)[0]
        done = dict(_override_pairs(self.id.partition(OVERRIDE)[2])) if OVERRIDE in self.id else {}
        done.update(changed)
        suffix = "".join(f"{OVERRIDE}{k}={_id_text(v)}" for k, v in sorted(done.items()))
        mechanisms = dict(self.mechanisms)
        for name, value in changed.items():
            mechanisms[name] = Mechanism(name=name, value=value, source=f"set by {why}")
        return replace(
            self,
            id=base_id + suffix,
            name=f"{self.name}, with {', '.join(f'{k}={_id_text(v)}' for k, v in sorted(changed.items()))}",
            mechanisms=MappingProxyType(mechanisms),
            variant_of=self.calibration_id,
        )

    def describe(self, family: str | None) -> dict[str, Any]:
        """The mechanism values that apply on a family, for results and `twofold stacks`."""
        return {name: m.for_family(family) for name, m in self.mechanisms.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "summary": self.summary,
            "path": self.path,
            "mechanisms": {k: m.to_dict() for k, m in self.mechanisms.items()},
            **({"provenance": dict(self.provenance)} if self.provenance else {}),
            **({"calibration": self.calibration_dict()} if self.factors else {}),
        }

    def calibration_dict(self) -> dict[str, Any]:
        """The `calibration:` section of the stack file (empty for a stack without fitted factors)."""
        if not self.factors:
            return {}
        factors = {k: dict(v) if isinstance(v, Mapping) else v for k, v in self.factors.items()}
        return {"factors": factors, "intervals": {k: dict(v) for k, v in self.intervals.items()}}


def user_stack_dir() -> Path:
    """Where `twofold calibrate` writes stacks and `--stack NAME` looks after the shipped ones."""
    return Path.home() / ".twofold" / "stacks"


@cache
def _shipped_ids() -> tuple[str, ...]:
    """The ids of `cost/stacks/*.yaml` (read once: validate asks for every row)."""
    folder = resources.files("twofold.cost").joinpath("stacks")
    names = (p.name for p in folder.iterdir())
    return tuple(sorted(n[: -len(".yaml")] for n in names if n.endswith(".yaml") and not n.startswith("_")))


def _check_value(where: str, mechanism: str, value: Any) -> Any:
    rule = MECHANISMS[mechanism]
    if rule is bool:
        if not isinstance(value, bool):
            raise InputError(where, value, "must be true or false")
        return value
    if rule is list:
        ok = (
            isinstance(value, (list, tuple))
            and value
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 3 for v in value)
        )
        if not ok:
            raise InputError(where, value, "must be a non-empty list of ZeRO stages 0-3")
        return tuple(sorted(set(value)))
    if rule is dict:
        return _state_bytes_value(where, value)
    if mechanism == "attention_kernel":
        from twofold.cost.attention import ATTENTION_KERNELS

        return str(one_of(where, value, ATTENTION_KERNELS))
    assert isinstance(rule, tuple)
    return str(one_of(where, value, rule))


# The model states of `model_state_bytes`, in the order its value keeps them.
STATE_PARTS = ("weights", "gradients", "optimizer")


def _state_bytes_value(where: str, value: Any) -> tuple[float, float, float]:
    """`model_state_bytes` as (weights, gradients, optimizer) bytes per parameter: a mapping with
    exactly those keys (a stack file) or the tuple itself (an override), each a positive number."""
    if isinstance(value, Mapping):
        if set(value) != set(STATE_PARTS):
            raise InputError(where, dict(value), f"must have exactly the keys {', '.join(STATE_PARTS)}")
        value = tuple(value[k] for k in STATE_PARTS)
    if not isinstance(value, (list, tuple)) or len(value) != len(STATE_PARTS):
        raise InputError(where, value, "must give weights, gradients and optimizer bytes per parameter")
    out = []
    for part, x in zip(STATE_PARTS, value, strict=True):
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 < x <= 64:
            raise InputError(f"{where}.{part}", x, "must be a number of bytes per parameter in (0, 64]")
        out.append(float(x))
    return (out[0], out[1], out[2])


def stack_from_dict(data: Any, path: str = "") -> Stack:
    """Parse and validate the YAML form of a stack (see `cost/stacks/megatron.yaml`)."""
    where = path or "stack"
    if not isinstance(data, Mapping):
        raise InputError(where, type(data).__name__, "must be a mapping")
    for key in ("id", "name", "summary", "mechanisms"):
        if key not in data:
            raise InputError(f"{where}:{key}", None, "is required")
    stack_id = data["id"]
    if not isinstance(stack_id, str) or not stack_id.replace("-", "").replace("_", "").isalnum():
        raise InputError(f"{where}:id", stack_id, "must be a word (letters, digits, - and _)")
    raw = data["mechanisms"]
    if not isinstance(raw, Mapping):
        raise InputError(f"{where}:mechanisms", type(raw).__name__, "must be a mapping")
    unknown = sorted(set(raw) - set(MECHANISMS))
    if unknown:
        known = ", ".join(MECHANISMS)
        raise InputError(f"{where}:mechanisms", unknown[0], f"unknown mechanism; known: {known}")
    missing = [m for m in MECHANISMS if m not in raw and m not in OPTIONAL_MECHANISMS]
    if missing:
        raise InputError(f"{where}:mechanisms.{missing[0]}", None, "is required (every mechanism is stated)")
    mechanisms: dict[str, Mechanism] = {}
    for name, entry in raw.items():
        at = f"{where}:mechanisms.{name}"
        if not isinstance(entry, Mapping) or "value" not in entry:
            raise InputError(at, entry, "must be a mapping with `value` and `source`")
        source = entry.get("source")
        if not isinstance(source, str) or not source.strip():
            raise InputError(f"{at}.source", source, "every mechanism names its source")
        by_family_raw = entry.get("by_family") or {}
        if not isinstance(by_family_raw, Mapping):
            raise InputError(f"{at}.by_family", by_family_raw, "must be a mapping family -> value")
        mechanisms[name] = Mechanism(
            name=name,
            value=_check_value(f"{at}.value", name, entry["value"]),
            source=source.strip(),
            by_family=MappingProxyType(
                {str(k): _check_value(f"{at}.by_family.{k}", name, v) for k, v in by_family_raw.items()}
            ),
            history=_history(f"{at}.history", name, entry.get("history")),
        )
    for name, value in OPTIONAL_MECHANISMS.items():
        if name not in mechanisms:
            mechanisms[name] = Mechanism(name=name, value=value, source="not stated in the file: the default")
    factors, intervals = _calibration_section(where, data.get("calibration"))
    return Stack(
        id=stack_id,
        name=str(data["name"]),
        summary=" ".join(str(data["summary"]).split()),
        mechanisms=MappingProxyType(mechanisms),
        path=path,
        provenance=MappingProxyType(dict(data.get("provenance") or {})),
        factors=factors,
        intervals=intervals,
    )


def _history(at: str, mechanism: str, raw: Any) -> tuple[Era, ...]:
    """A mechanism's `history:` list (module docstring): eras sorted by `through`, each with a
    value of the mechanism's kind and its source."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise InputError(at, raw, "must be a non-empty list of {through, value, source}")
    eras = []
    for i, entry in enumerate(raw):
        spot = f"{at}[{i}]"
        if not isinstance(entry, Mapping) or not {"through", "value", "source"} <= set(entry):
            raise InputError(spot, entry, "must be a mapping with through (a year), value and source")
        through = entry["through"]
        if isinstance(through, bool) or not isinstance(through, int) or not 1990 <= through <= 2100:
            raise InputError(f"{spot}.through", through, "must be a year (1990-2100)")
        source = entry["source"]
        if not isinstance(source, str) or not source.strip():
            raise InputError(f"{spot}.source", source, "every era names its source")
        eras.append(
            Era(
                through=through,
                value=_check_value(f"{spot}.value", mechanism, entry["value"]),
                source=source.strip(),
            )
        )
    eras.sort(key=lambda e: e.through)
    if len({e.through for e in eras}) != len(eras):
        raise InputError(at, [e.through for e in eras], "two eras end in the same year")
    return tuple(eras)


def _number(at: str, value: Any, kind: str) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if kind == "fractions" and not (ok and 0.0 <= value <= 1.0):
        raise InputError(at, value, "must be a fraction in [0, 1]")
    if kind != "fractions" and not (ok and value > 0):
        raise InputError(at, value, "must be a positive number")
    return float(value)


def _calibration_section(where: str, raw: Any) -> tuple[Mapping[str, Any], Mapping[str, Mapping[str, float]]]:
    """Validate a stack file's `calibration:` section (module docstring): (factors, intervals)."""
    if raw is None:
        return MappingProxyType({}), MappingProxyType({})
    at = f"{where}:calibration"
    if not isinstance(raw, Mapping):
        raise InputError(at, type(raw).__name__, "must be a mapping with `factors` (and `intervals`)")
    factors_raw = raw.get("factors") or {}
    if not isinstance(factors_raw, Mapping):
        raise InputError(f"{at}.factors", type(factors_raw).__name__, "must be a mapping")
    factors: dict[str, Any] = {}
    for name, value in factors_raw.items():
        kind = CALIBRATION_FACTORS.get(name)
        if kind is None:
            raise InputError(
                f"{at}.factors", name, f"unknown factor; known: {', '.join(CALIBRATION_FACTORS)}"
            )
        if kind == "positive":
            factors[name] = _number(f"{at}.factors.{name}", value, kind)
            continue
        if not isinstance(value, Mapping):
            raise InputError(f"{at}.factors.{name}", value, "must be a mapping")
        factors[name] = MappingProxyType(
            {str(k): _number(f"{at}.factors.{name}.{k}", v, kind) for k, v in value.items()}
        )
    intervals_raw = raw.get("intervals") or {}
    if not isinstance(intervals_raw, Mapping):
        raise InputError(
            f"{at}.intervals", type(intervals_raw).__name__, "must be a mapping family -> interval"
        )
    intervals: dict[str, Mapping[str, float]] = {}
    for family, entry in intervals_raw.items():
        spot = f"{at}.intervals.{family}"
        if not isinstance(entry, Mapping) or not {"log_low", "log_high"} <= set(entry):
            raise InputError(spot, entry, "must be a mapping with log_low and log_high")
        low, high = entry["log_low"], entry["log_high"]
        if (
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
            or low > high
        ):
            raise InputError(spot, entry, "log_low and log_high must be numbers with log_low <= log_high")
        intervals[str(family)] = MappingProxyType({k: float(v) for k, v in entry.items()})
    return MappingProxyType(factors), MappingProxyType(intervals)


def load_stack_file(path: Path | str) -> Stack:
    p = Path(path)
    try:
        data = yaml_strict.load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError("stack", str(path), f"cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise InputError("stack", str(path), f"is not valid YAML ({exc})") from None
    return stack_from_dict(data, str(p))


@cache
def _shipped(stack_id: str) -> Stack:
    resource = resources.files("twofold.cost").joinpath("stacks", f"{stack_id}.yaml")
    data = yaml_strict.load(resource.read_text(encoding="utf-8"))
    return stack_from_dict(data, f"cost/stacks/{stack_id}.yaml")


@cache
def auto_table() -> Mapping[str, str]:
    """Chip family (`Chip.family`) -> the stack `auto` picks (`cost/stacks/_auto.yaml`)."""
    resource = resources.files("twofold.cost").joinpath("stacks", "_auto.yaml")
    data = yaml_strict.load(resource.read_text(encoding="utf-8"))
    return MappingProxyType({str(k): str(v) for k, v in data["reference_stack"].items()})


def list_stacks() -> list[str]:
    """The shipped stack ids, `auto` first."""
    return [AUTO, *_shipped_ids()]


def is_stack_id(name: str) -> bool:
    """A shipped stack id, `auto`, a runtime variant of a shipped stack (`RUNTIME_SUFFIXES`), one of
    those as of a year (`<id>@<year>`, `Stack.as_of`), or one of those with mechanisms set
    (`<id>+<mechanism>=<value>`, `Stack.with_values`)."""
    if OVERRIDE in name:
        base, _, rest = name.partition(OVERRIDE)
        try:
            _override_pairs(rest)
        except InputError:
            return False
        return base != AUTO and is_stack_id(base)
    dated = _year_split(name)
    if dated is not None:
        name = dated[0]
        if name == AUTO:
            return False
    if name in list_stacks():
        return True
    split = _variant_split(name)
    return split is not None and split[0] in _shipped_ids()


def _year_split(name: str) -> tuple[str, int] | None:
    """(stack name, year) of `<name>@<year>`, else None."""
    base, at, year = name.rpartition("@")
    if at and base and year.isdigit() and len(year) == 4:
        return base, int(year)
    return None


def _dated(name: str, year: int) -> Stack:
    return _dated_shipped(name, year) if name in _shipped_ids() else get_stack(name).as_of(year)


@cache
def _dated_shipped(name: str, year: int) -> Stack:
    return _shipped(name).as_of(year)


def user_stacks() -> list[str]:
    """The ids of the stacks in `~/.twofold/stacks/` (written by `twofold calibrate`), sorted."""
    folder = user_stack_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.yaml") if p.stem not in _shipped_ids())


def get_stack(name: str) -> Stack:
    """A shipped stack by id, a user stack in `~/.twofold/stacks/<id>.yaml`, or a YAML file path.
    `auto` is resolved per chip (`stack_for_chip`), not here."""
    if not isinstance(name, str) or not name:
        raise InputError("stack", name, "must be a stack id or a YAML file")
    if name.endswith((".yaml", ".yml")) or "/" in name:
        return load_stack_file(name)
    if OVERRIDE in name:
        base, _, rest = name.partition(OVERRIDE)
        if base == AUTO:
            raise InputError("stack", name, "auto is one stack per chip: set mechanisms on a named stack")
        return get_stack(base).with_values(_override_pairs(rest), "the stack id")
    dated = _year_split(name)
    if dated is not None and dated[0] != AUTO:
        return _dated(*dated)
    if name in _shipped_ids():
        return _shipped(name)
    user = user_stack_dir() / f"{name}.yaml"
    if user.is_file():
        return load_stack_file(user)
    variant = _runtime_variant(name)
    if variant is not None:
        return variant
    from difflib import get_close_matches

    known = list_stacks()
    near = get_close_matches(name, known, n=3)
    hint = f"did you mean: {', '.join(near)}?" if near else f"known: {', '.join(known)}"
    raise InputError("stack", name, f"unknown stack; {hint}")


# `<id>+<mechanism>=<value>[+...]`: the stack with those mechanisms set on every family
# (`Stack.with_values`): `--stack fsdp+attention_kernel=flash-triton`, what `validate` builds where
# a row's notes state a mechanism (`validate.reading.read_stated_mechanisms`).
OVERRIDE = "+"


def _override_pairs(text: str) -> dict[str, Any]:
    """{mechanism: value} of `m=v+m=v`, each value checked as a stack file's (`_check_value`);
    booleans as true/false, ZeRO stages as 0,1,3, model state bytes as 2:4:12."""
    out: dict[str, Any] = {}
    for part in text.split(OVERRIDE):
        mechanism, eq, raw = part.partition("=")
        where = f"stack.{mechanism}"
        if not eq or mechanism not in MECHANISMS:
            known = ", ".join(MECHANISMS)
            raise InputError("stack", part, f"must be <mechanism>=<value> with a mechanism of: {known}")
        rule = MECHANISMS[mechanism]
        value: Any = raw
        if rule is bool:
            if raw.lower() not in ("true", "false"):
                raise InputError(where, raw, "must be true or false")
            value = raw.lower() == "true"
        elif rule is list:
            try:
                value = [int(v) for v in raw.split(",")]
            except ValueError:
                raise InputError(where, raw, "must be ZeRO stages such as 0,1,3") from None
        elif rule is dict:
            try:
                value = tuple(float(v) for v in raw.split(":"))
            except ValueError:
                rule_text = "must be weights:gradients:optimizer bytes such as 2:4:12"
                raise InputError(where, raw, rule_text) from None
        out[mechanism] = _check_value(where, mechanism, value)
    return out


# Stack id suffix -> the runtime it selects (`<id>-eager`, `<id>-compile`): the same stack with
# torch.compile off or on, for stacks where that is a switch (torchtitan's `--compile`, a PyTorch
# training script's `torch.compile(model)`). A file with that id (`fsdp-compile`) comes first.
RUNTIME_SUFFIXES: Mapping[str, str] = MappingProxyType({"-eager": "eager", "-compile": "compiled"})


def _variant_split(name: str) -> tuple[str, str] | None:
    """(base id, runtime suffix) of a name that ends in a `RUNTIME_SUFFIXES` suffix, else None."""
    for suffix in RUNTIME_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], suffix
    return None


def _runtime_variant(name: str) -> Stack | None:
    """`<id>-eager` / `<id>-compile` for a known stack `<id>` (shipped or a user's): its mechanisms
    with the runtime set on every family (module docstring), or None when the name is not such a
    variant."""
    split = _variant_split(name)
    if split is None:
        return None
    base_id, suffix = split
    if base_id not in _shipped_ids() and not (user_stack_dir() / f"{base_id}.yaml").is_file():
        return None
    base = get_stack(base_id)
    runtime = RUNTIME_SUFFIXES[suffix]
    switch = "on" if runtime == "compiled" else "off"
    mechanisms = dict(base.mechanisms)
    mechanisms["runtime"] = Mechanism(
        name="runtime",
        value=runtime,
        source=f"{base.id} with torch.compile {switch} (the stack id's `{suffix}` suffix)",
    )
    return replace(
        base,
        id=name,
        name=f"{base.name}, torch.compile {switch}",
        mechanisms=MappingProxyType(mechanisms),
        variant_of=base.id,
    )


def stack_for_chip(chip: Any) -> Stack:
    """The vendor's reference stack for a chip (what `auto` means; `cost/stacks/_auto.yaml`)."""
    table = auto_table()
    key = getattr(chip, "family", "") or ""
    return get_stack(table.get(key, table["default"]))


def resolve_stack(stack: Stack | str | None, chip: Any) -> Stack:
    """A Stack for `chip` from a Stack, an id/path, or None/`auto` (the chip's reference stack)."""
    if isinstance(stack, Stack):
        return stack
    if stack is None or stack == AUTO:
        return stack_for_chip(chip)
    return get_stack(stack)
