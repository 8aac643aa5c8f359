"""Sweep specs: a YAML document naming axes, expanded into planning scenarios.

A spec is validated whole before any scenario runs: every axis, every value, every name is checked
against the catalogs, and the first problem is an `InputError` naming its place in the document
(`axes.chips[2]='h1000': unknown chip; did you mean: h100, h200?`). Names are resolved to catalog
ids here, so `h100` and `h100-sxm` give the same scenario and the same result key.

    name: chips-for-next-year        # optional, for reports
    mode: training                   # training (default) or inference
    objective: throughput            # what each plan ranks by
    top_k: 3                         # layouts kept per scenario
    axes:
      models: [llama3.1-8b, llama3.1-70b]
      chips: [trn2, h100, tpu-v5p]   # or systems: [trn2.48xlarge, dgx-h100]
      chip_counts: [64, 256]
      seq_lens: [4096]               # training only; default [4096]
      global_batches: [1024]         # training only; default [1024]
      precisions: [bf16]             # default [bf16]
    finetune: {method: lora, rank: 16, targets: attention-mlp}   # optional, training only
                                     # (or `finetune: qlora`; `workload.finetune.Finetune`)

Inference sweeps (`mode: inference`, planned by `plan_inference`) take `input_tokens` and
`output_tokens` axes instead of `seq_lens` and `global_batches` (both required: there is no
standard prompt), and optional top-level latency targets `max_ttft_ms` and `max_tpot_ms`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from twofold.checks import one_of, positive, positive_int
from twofold.errors import InputError

__all__ = [
    "AXES",
    "MODES",
    "Scenario",
    "SweepSpec",
    "load_spec",
    "parse_spec",
    "scenario_key",
]

# Defaults follow `twofold plan` (cli/plan.py): 4M tokens per step, Llama 2's pretraining batch.
_DEFAULT_AXES: dict[str, tuple[Any, ...]] = {
    "seq_lens": (4096,),
    "global_batches": (1024,),
    "precisions": ("bf16",),
}
_COMMON_AXES: tuple[str, ...] = ("models", "chips", "systems", "chip_counts", "precisions")
# mode -> the axes of its workload, which the other mode does not take.
_MODE_AXES: dict[str, tuple[str, ...]] = {
    "training": ("seq_lens", "global_batches"),
    "inference": ("input_tokens", "output_tokens"),
}
AXES: tuple[str, ...] = (*_COMMON_AXES, *_MODE_AXES["training"], *_MODE_AXES["inference"])
MODES: tuple[str, ...] = tuple(_MODE_AXES)
_TOP_LEVEL: tuple[str, ...] = (
    "name",
    "mode",
    "objective",
    "top_k",
    "max_ttft_ms",
    "max_tpot_ms",
    "axes",
    "stack",
    "finetune",
)
# Axes users ask for that twofold cannot sweep yet, with the reason (an unknown-axis error otherwise).
_PLANNED_AXES: dict[str, str] = {"budgets": "needs the price model ($ per chip-hour)"}


@dataclass(frozen=True, kw_only=True, slots=True)
class Scenario:
    """One plan to make: a model on `chips` chips of a system, for one workload.

    Training scenarios set `seq_len` and `global_batch`; inference scenarios set `input_tokens`,
    `output_tokens` and the optional latency targets; the other mode's fields stay None.
    `model_digest` is the sha256 of a config.json's bytes when the model is a file, so that editing
    the file changes the scenario's key; catalog models leave it empty (the version covers them).
    """

    mode: str
    model: str
    chip: str
    system: str
    chips: int
    precision: str
    objective: str
    top_k: int
    seq_len: int | None = None
    global_batch: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    max_ttft_ms: float | None = None
    max_tpot_ms: float | None = None
    model_digest: str = ""
    # The software stack (`cost.stack`: a shipped id or a YAML file path; "auto" = each chip's
    # vendor reference stack).
    stack: str = "auto"
    # LoRA/QLoRA (`Finetune.to_dict()`); None is full training and stays out of the key.
    finetune: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["finetune"] is None:  # full training: the same key as before fine-tuning existed
            del out["finetune"]
        return out

    def canonical_json(self) -> str:
        """Sorted keys, no whitespace: the same scenario always gives the same bytes."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        return cls(**data)


def scenario_key(scenario: Scenario, version: str) -> str:
    """sha256 of the canonical scenario JSON and the twofold version (a new version replans)."""
    return hashlib.sha256(f"{scenario.canonical_json()}\n{version}".encode()).hexdigest()


@dataclass(frozen=True, kw_only=True, slots=True)
class SweepSpec:
    """A validated spec: resolved ids on every axis, in the order the document gave them."""

    name: str
    mode: str
    objective: str
    top_k: int
    models: tuple[str, ...]
    model_digests: tuple[str, ...]
    hardware: tuple[tuple[str, str], ...]  # (chip id, system id)
    chip_counts: tuple[int, ...]
    precisions: tuple[str, ...]
    # The workload axes of the mode, in document order: ((scenario field, values), ...).
    workload_axes: tuple[tuple[str, tuple[int, ...]], ...]
    targets: tuple[tuple[str, float], ...] = ()  # inference latency targets that were given
    stack: str = "auto"  # the software stack of every scenario (`cost.stack`)
    finetune: Mapping[str, Any] | None = None  # LoRA/QLoRA of every training scenario

    def scenarios(self) -> tuple[Scenario, ...]:
        """The cartesian product of the axes: models outermost, then hardware, chip counts, the
        workload axes, precisions innermost."""
        names = [name for name, _ in self.workload_axes]
        out = []
        axes: list[Iterable[Any]] = [
            zip(self.models, self.model_digests, strict=True),
            self.hardware,
            self.chip_counts,
            *(values for _, values in self.workload_axes),
            self.precisions,
        ]
        for (model, digest), (chip, system), chips, *workload, precision in itertools.product(*axes):
            out.append(
                Scenario(
                    mode=self.mode,
                    model=model,
                    model_digest=digest,
                    chip=chip,
                    system=system,
                    chips=chips,
                    precision=precision,
                    objective=self.objective,
                    top_k=self.top_k,
                    **dict[str, Any](zip(names, workload, strict=True)),
                    **dict[str, Any](self.targets),
                    stack=self.stack,
                    finetune=self.finetune,
                )
            )
        return tuple(out)

    def __len__(self) -> int:
        n = len(self.models) * len(self.hardware) * len(self.chip_counts) * len(self.precisions)
        for _, values in self.workload_axes:
            n *= len(values)
        return n


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a YAML spec file."""
    import yaml  # here so that importing the sweep package stays free of PyYAML

    from twofold.yaml_strict import load as load_yaml

    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError("spec", str(path), f"cannot read file ({exc.strerror})") from None
    try:
        doc = load_yaml(text)  # a duplicate key is an error, not "the last one wins"
    except yaml.YAMLError as exc:
        raise InputError("spec", str(path), f"not valid YAML ({exc})") from None
    return parse_spec(doc, base_dir=path.parent, default_name=path.stem)


def parse_spec(doc: object, *, base_dir: Path | None = None, default_name: str = "sweep") -> SweepSpec:
    """Validate a parsed spec document; `base_dir` resolves relative config.json paths."""
    if not isinstance(doc, Mapping):
        raise InputError("spec", type(doc).__name__, "must be a mapping with an `axes` section")
    for key in doc:
        if key not in _TOP_LEVEL:
            raise InputError(str(key), doc[key], f"unknown spec field; known: {', '.join(_TOP_LEVEL)}")
    name = doc.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        raise InputError("name", name, "must be a non-empty string")
    mode = _check_mode(doc.get("mode", "training"))
    objective = _check_objective(doc.get("objective", "throughput"), mode)
    top_k = positive_int("top_k", doc.get("top_k", 10))
    targets = _targets(doc, mode)
    stack = _stack(doc.get("stack", "auto"), base_dir or Path.cwd())
    finetune = _finetune(doc.get("finetune"), mode)

    axes = doc.get("axes")
    if not isinstance(axes, Mapping):
        raise InputError("axes", axes, "must be a mapping of axis name to a list of values")
    allowed = (*_COMMON_AXES, *_MODE_AXES[mode])
    for key in axes:
        if key in _PLANNED_AXES:
            raise InputError(f"axes.{key}", axes[key], f"not available yet ({_PLANNED_AXES[key]})")
        if key in AXES and key not in allowed:
            raise InputError(
                f"axes.{key}", axes[key], f"not an axis of {mode} sweeps; they take {', '.join(allowed)}"
            )
        if key not in AXES:
            raise InputError(f"axes.{key}", axes[key], f"unknown axis; known: {', '.join(allowed)}")
    required_axes = ("models", "chip_counts", *(_MODE_AXES[mode] if mode == "inference" else ()))
    for required in required_axes:
        if required not in axes:
            raise InputError(f"axes.{required}", None, "is required")
    if ("chips" in axes) == ("systems" in axes):
        raise InputError("axes", sorted(axes), "needs exactly one of `chips` or `systems`")

    models, digests = _models(_axis(axes, "models"), base_dir)
    if "chips" in axes:
        hardware = _each(axes, "chips", _chip_hardware)
    else:
        hardware = _each(axes, "systems", _system_hardware)
    _no_duplicates("chips" if "chips" in axes else "systems", hardware)
    if objective == "cost":
        _check_prices("chips" if "chips" in axes else "systems", hardware)
    chip_counts = _each(axes, "chip_counts", positive_int)
    # Axis name -> the Scenario field it sets.
    fields = {
        "seq_lens": "seq_len",
        "global_batches": "global_batch",
        "input_tokens": "input_tokens",
        "output_tokens": "output_tokens",
    }
    workload_axes = tuple((fields[a], _each(axes, a, positive_int)) for a in _MODE_AXES[mode])
    precisions = _each(axes, "precisions", _precision)
    return SweepSpec(
        name=name.strip(),
        mode=mode,
        objective=objective,
        top_k=top_k,
        models=models,
        model_digests=digests,
        hardware=hardware,
        chip_counts=chip_counts,
        precisions=precisions,
        workload_axes=workload_axes,
        targets=targets,
        stack=stack,
        finetune=finetune,
    )


def _finetune(value: Any, mode: str) -> dict[str, Any] | None:
    """The spec's `finetune`: `lora`/`qlora`/`full`, or a mapping of method, rank, targets,
    base_precision (the `--finetune` flags), validated now; None for full training."""
    from twofold.workload.finetune import Finetune

    if value is None or value == "full":
        return None
    if mode != "training":
        raise InputError("finetune", value, "applies to training sweeps only")
    doc = {"method": value} if isinstance(value, str) else value
    if not isinstance(doc, Mapping):
        raise InputError("finetune", value, "must be lora, qlora or a mapping with a `method`")
    known = ("method", "rank", "targets", "base_precision")
    for key in doc:
        if key not in known:
            raise InputError(f"finetune.{key}", doc[key], f"unknown field; known: {', '.join(known)}")
    try:
        return Finetune(**doc).to_dict()
    except TypeError:
        raise InputError("finetune", value, "needs a `method` (lora or qlora)") from None
    except InputError as exc:
        raise _relabel(f"finetune.{exc.field}", exc) from None


def _stack(value: Any, base_dir: Path) -> str:
    """The spec's `stack`: a shipped id, `auto`, or a YAML file (relative to the spec), checked now."""
    if not isinstance(value, str) or not value.strip():
        raise InputError("stack", value, "must be a stack id or a YAML file")
    if value == "auto":
        return value
    from twofold.cost.stack import get_stack

    if value.endswith((".yaml", ".yml")):
        value = str((base_dir / value).resolve())
    get_stack(value)
    return value


def _axis(axes: Mapping[str, Any], name: str) -> list[Any]:
    values = axes.get(name, list(_DEFAULT_AXES.get(name, ())))
    if isinstance(values, (str, int)) and not isinstance(values, bool):
        values = [values]  # a scalar is a one-value axis
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise InputError(f"axes.{name}", values, "must be a list of values")
    if not values:
        raise InputError(f"axes.{name}", list(values), "is empty; give at least one value")
    return list(values)


def _each(axes: Mapping[str, Any], name: str, check: Callable[[str, Any], Any]) -> tuple[Any, ...]:
    values = _axis(axes, name)
    out = tuple(check(f"axes.{name}[{i}]", v) for i, v in enumerate(values))
    _no_duplicates(name, out)
    return out


def _no_duplicates(name: str, values: Sequence[Any]) -> None:
    seen: dict[Any, int] = {}
    for i, value in enumerate(values):
        if value in seen:
            raise InputError(f"axes.{name}[{i}]", value, f"repeats axes.{name}[{seen[value]}]")
        seen[value] = i


def _relabel(field: str, exc: InputError) -> InputError:
    """The registry's message (with its near matches), placed at the spec field."""
    return InputError(field, exc.value, exc.rule)


def _check_mode(mode: Any) -> str:
    one_of("mode", mode, MODES)
    return mode


def _check_objective(objective: Any, mode: str) -> str:
    if not isinstance(objective, str):
        raise InputError("objective", objective, "must be a string")
    if mode == "training":
        from twofold.search.plan import check_objective

        check_objective(objective)
    else:
        from twofold.search.infer_plan import INFERENCE_OBJECTIVES

        one_of("objective", objective, INFERENCE_OBJECTIVES)
    return objective


def _targets(doc: Mapping[str, Any], mode: str) -> tuple[tuple[str, float], ...]:
    out = []
    for name in ("max_ttft_ms", "max_tpot_ms"):
        if name not in doc:
            continue
        value = doc[name]
        if mode != "inference":
            raise InputError(name, value, "is a latency target of inference sweeps (mode: inference)")
        positive(name, value, "must be a positive number of milliseconds", finite=True)
        out.append((name, float(value)))
    return tuple(out)


def _check_prices(axis: str, hardware: Sequence[tuple[str, str]]) -> None:
    """The cost objective divides by a price: every system must have one (never an invented one)."""
    from twofold.hardware.catalog import get_system

    for i, (_, system_id) in enumerate(hardware):
        system = get_system(system_id)
        if system.price_usd_per_chip_hour is None:
            raise InputError(
                f"axes.{axis}[{i}]",
                system_id,
                f"has no price, so objective: cost cannot rank it ({system.price_note})",
            )


def _precision(field: str, value: Any) -> str:
    from twofold.hardware.types import PRECISIONS

    return one_of(field, value, PRECISIONS)


def _models(values: list[Any], base_dir: Path | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    from twofold.workload import registry

    names: list[str] = []
    digests: list[str] = []
    for i, value in enumerate(values):
        field = f"axes.models[{i}]"
        if not isinstance(value, str) or not value.strip():
            raise InputError(field, value, "must be a catalog model id or a path to a config.json")
        try:
            entry = registry.catalog_entry(value)
        except InputError:
            entry = None
        if entry is not None:
            names.append(entry["id"])
            digests.append("")
            continue
        path = Path(value).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            registry.get_model(str(path) if path.exists() else value)
        except InputError as exc:
            raise _relabel(field, exc) from None
        config = path / "config.json" if path.is_dir() else path
        names.append(str(path.resolve()))
        digests.append(hashlib.sha256(config.read_bytes()).hexdigest())
    _no_duplicates("models", names)
    return tuple(names), tuple(digests)


def _chip_hardware(field: str, value: Any) -> tuple[str, str]:
    from twofold.hardware import catalog

    name = value.strip().lower() if isinstance(value, str) else ""
    if name == "local" or name.endswith((".yaml", ".yml")):
        # A measured profile has no catalog id a worker on another machine could look up.
        raise InputError(
            field, value, "sweeps take catalog chips; plan a measured profile with `twofold plan`"
        )
    try:
        chip = catalog.get_chip(value)
        system = catalog.system_for(chip, None)
    except InputError as exc:
        raise _relabel(field, exc) from None
    return chip.id, system.id


def _system_hardware(field: str, value: Any) -> tuple[str, str]:
    from twofold.hardware import catalog

    try:
        system = catalog.get_system(value)
        chip = catalog.get_chip(system.chip_id)
    except InputError as exc:
        raise _relabel(field, exc) from None
    return chip.id, system.id
