"""From a published row to something twofold can predict: chip, system, model, layout, workload.

`express(row)` returns a `Case` (everything the estimator needs, the software stack the row ran, plus
the caveats taken on the way) or an `Unexpressible` (with the reason), for the rows of every shipped
file (`validate.dataset.DATA_FILES`). The rules are data in `validate/data/mapping.yaml` (hardware
strings, precision and recompute spellings, model catalog ids, how to build a model from the CSV
columns, architecture figures a row omits with their citation, per-source conventions and caveats,
and the `stacks` rules of `row_stack`); this module applies them. No row is dropped: every row is one
or the other.

LoRA/QLoRA fine-tuning rows (`task` finetune-lora / finetune-qlora) become `Case`s of kind
"finetune" (`_finetune_case`): the workload carries a `workload.finetune.Finetune` whose rank,
targets and base format come from the row's notes where they state them, else stated defaults
(caveats say which). Their throughput and peak-memory figures are summarised apart from the
training rows (`validate.run`: `finetune_rows`) and never enter the training fit. Rows that are not
predicted by construction: training rows whose metric `validate.metrics` has no prediction for
(peak memory, whole-job tokens/s or samples/s) or whose MFU is published as a fraction rather than
a percentage.

The steps live apart: the rules of mapping.yaml and the lookups every step shares (hardware,
source conventions, stack, precision) in `validate.mapping_rules`, the layout and its conventions in
`validate.mapping_layout`, the model (catalog entry or built from the columns) in
`validate.mapping_model`; this module turns a row into a `Case` with them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Literal

from twofold.errors import InputError
from twofold.validate.dataset import TRAINING_METRICS, PublishedRow
from twofold.validate.mapping_layout import _one_microbatch_batch, layout_for, row_network
from twofold.validate.mapping_model import _model, model_from_columns
from twofold.validate.mapping_rules import (
    STACKS,
    NotExpressible,
    _precision,
    _source_caveats,
    _stack_and_reading,
    hardware_entry,
    hardware_family,
    mapping_data,
    row_stack,
    source_convention,
    stack_rule,
)
from twofold.validate.reading import read_stated_mechanisms

__all__ = [
    "Case",
    "FINETUNE_METRICS",
    "NotExpressible",
    "STACKS",
    "Unexpressible",
    "express",
    "hardware_family",
    "layout_for",
    "row_hardware",
    "mapping_data",
    "model_from_columns",
    "row_network",
    "row_stack",
    "source_convention",
    "stack_rule",
]

LORA_TASKS = ("finetune-lora", "finetune-qlora")
# Fine-tuning figures: the training throughput metrics, and peak memory per chip (GiB).
FINETUNE_METRICS = (
    "tokens_per_s_per_chip",
    "tokens_per_s",
    "sequences_per_s",
    "step_time_s",
    "peak_memory_gib",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Case:
    """A row twofold can predict. `kind` is "train", "finetune", "gemm" or "allreduce"; fields a kind does not
    use are None (a GEMM microbenchmark has no model or layout)."""

    row: PublishedRow
    kind: str
    family: str
    chip: Any  # twofold.hardware.types.Chip (kept Any: the catalog module is imported lazily)
    system: Any  # twofold.hardware.types.System
    model: Any = None  # twofold.workload.model.ModelConfig
    layout: Any = None  # twofold.parallel.layout.Layout
    workload: Any = None  # twofold.parallel.layout.TrainingWorkload
    steps: int | None = None  # optimizer steps, for time-to-train rows
    gemm_mnk: tuple[int, int, int] | None = None
    caveats: tuple[str, ...] = ()
    stack: str = "auto"  # the software stack the row ran (`row_stack`, one of STACKS)


@dataclass(frozen=True, kw_only=True, slots=True)
class Unexpressible:
    """A row twofold cannot predict yet, and why."""

    row: PublishedRow
    family: str
    reason: str


def _unexpressible_rule(row: PublishedRow) -> str | None:
    for rule in mapping_data().get("unexpressible_rules", ()):
        if "rows" in rule and row.id not in rule["rows"]:
            continue
        if rule.get("source") and not re.search(rule["source"], row.source):
            continue
        if rule.get("notes") and not re.search(rule["notes"], row.notes):
            continue
        return str(rule["reason"])
    return None


def express(row: PublishedRow) -> Case | Unexpressible:
    """Map one row onto twofold's objects, or say why it cannot be."""
    family = hardware_family(row)
    try:
        reason = _unexpressible_rule(row)
        if reason:
            raise NotExpressible(reason)
        chip, system, caveats = _hardware(row)
        if row.task == "infer":
            raise NotExpressible("inference row: predicted by the serving estimator (validate.inference)")
        if row.task == "micro":
            case = _micro_case(row, family, chip, system, caveats)
        elif row.task in LORA_TASKS:
            case = _finetune_case(row, family, chip, system, caveats)
        else:
            case = _train_case(row, family, chip, system, caveats)
    except NotExpressible as skip:
        return Unexpressible(row=row, family=family, reason=str(skip))
    stack, why = _stack_and_reading(row)
    if why is not None:
        case = replace(case, caveats=(*case.caveats, f"stack {stack!r} read from the row's text ({why})"))
    stated = [
        f"{name.replace('_', ' ')} {value} read from the row's text ({reason})"
        for name, (value, reason) in read_stated_mechanisms(row.notes).items()
    ]
    return replace(case, stack=stack, caveats=(*case.caveats, *_era_caveat(stack, row.year), *stated))


def _era_caveat(stack: str, year: int | None) -> list[str]:
    """A caveat where the row runs its stack as of its year (`cost.stack.Stack.as_of`)."""
    from twofold.cost.stack import get_stack, is_stack_id

    if year is None or stack == "auto" or not is_stack_id(stack):
        return []
    base = get_stack(stack)
    dated = base.as_of(year)
    if dated is base:
        return []
    eras = [name for name in dated.mechanisms if dated.mechanisms[name] is not base.mechanisms[name]]
    changed = ", ".join(f"{name} {dated.value(name)}" for name in eras)
    return [f"{dated.id}: the stack as it ran in {year} ({changed})"]


def row_hardware(row: PublishedRow) -> tuple[Any, Any]:
    """The catalog chip and system of a row's hardware (mapping.yaml); `NotExpressible` with the reason."""
    chip, system, _ = _hardware(row)
    return chip, system


def _hardware(row: PublishedRow) -> tuple[Any, Any, list[str]]:
    entry = hardware_entry(row)
    if entry is None:
        raise NotExpressible(
            f"hardware string {row.hardware!r} names no catalog chip (and mapping.yaml has no entry)"
        )
    if entry.get("chip") is None:
        raise NotExpressible(str(entry["reason"]))
    try:
        from twofold.hardware import catalog
    except ImportError:
        raise NotExpressible("hardware catalog (twofold.hardware.catalog) not available") from None
    try:
        chip = catalog.get_chip(entry["chip"])
    except InputError as exc:
        raise NotExpressible(f"chip {entry['chip']!r} not in the hardware catalog ({exc})") from None
    caveats: list[str] = []
    if entry.get("read"):
        caveats.append(f"hardware {row.hardware!r} read as {chip.id} on its standard system")
    try:
        system = catalog.system_for(chip, entry.get("system"))
    except InputError as exc:
        system = catalog.system_for(chip, None)
        caveats.append(f"system {entry.get('system')!r} not in the catalog ({exc}); used {system.id}")
    return chip, system, caveats


_MAMF_SHAPE = re.compile(r"best shape (\d+)x(\d+)x(\d+)")


def _micro_case(row: PublishedRow, family: str, chip: Any, system: Any, caveats: list[str]) -> Case:
    if row.metric == "achieved_matmul_tflops":
        match = _MAMF_SHAPE.search(row.model)
        if match is None:
            raise NotExpressible("GEMM shape not given in the row")
        m, n, k = (int(g) for g in match.groups())
        _precision(row)  # validates that the precision is known
        caveats.append("MAMF rows are the data the shipped cost profiles were fitted on: in-sample by design")
        return Case(
            row=row,
            kind="gemm",
            family=family,
            chip=chip,
            system=system,
            gemm_mnk=(m, n, k),
            caveats=tuple(caveats),
        )
    if row.metric == "allreduce_busbw":
        return Case(
            row=row, kind="allreduce", family=family, chip=chip, system=system, caveats=tuple(caveats)
        )
    raise NotExpressible(f"metric {row.metric!r}: no model of host or peer-to-peer copies")


def _check_training_metric(row: PublishedRow) -> None:
    if row.metric not in TRAINING_METRICS:
        raise NotExpressible(f"metric {row.metric!r} ({row.unit}): validate.metrics has no prediction for it")
    if row.metric == "mfu" and row.unit.strip() not in ("%", "fraction"):
        raise NotExpressible(f"MFU published as {row.unit!r}: neither a percentage nor a fraction")


def _train_case(row: PublishedRow, family: str, chip: Any, system: Any, caveats: list[str]) -> Case:
    from twofold.parallel.layout import TrainingWorkload

    _check_training_metric(row)
    model = _model(row, caveats)
    row = _one_microbatch_batch(row, caveats)
    if row.seq_len is None or row.global_batch is None:
        raise NotExpressible("sequence length or global batch not published")
    precision = _precision(row)
    steps = None
    if row.metric == "time_to_train_min":
        tokens = row.note_number("trained_tokens")
        if tokens is None:
            raise NotExpressible("number of steps to the target (trained tokens) not published")
        steps = round(tokens / (row.global_batch * row.seq_len))
        caveats.append("time-to-train includes evaluation and initialisation that twofold does not model")
    system = row_network(row, system, caveats)
    layout = layout_for(row, caveats, system=system)
    caveats.extend(_source_caveats(row))
    workload = TrainingWorkload(global_batch=row.global_batch, seq_len=row.seq_len, precision=precision)
    return Case(
        row=row,
        kind="train",
        family=family,
        chip=chip,
        system=system,
        model=model,
        layout=layout,
        workload=workload,
        steps=steps,
        caveats=tuple(caveats),
    )


_LORA_RANK = re.compile(r"\b(?:lora )?rank (\d+)", re.IGNORECASE)
_QV_MLP = re.compile(r"q/v/output_proj \+ MLP")


def _finetune_case(row: PublishedRow, family: str, chip: Any, system: Any, caveats: list[str]) -> Case:
    """A LoRA/QLoRA row: the training case with a `Finetune` (module docstring). Rank from the notes
    ("rank 8", "lora rank 16"), else 16 (twofold's default; adapters are under 1% of the FLOPs, so
    the rank hardly moves the figures); targets attention+MLP unless the notes say otherwise; QLoRA's
    base NF4 (bitsandbytes `nf4` without double quantization stores 4.5 bits, not 4.127: noted)."""
    from twofold.parallel.layout import TrainingWorkload
    from twofold.workload.finetune import Finetune

    if row.metric not in FINETUNE_METRICS:
        raise NotExpressible(f"metric {row.metric!r} ({row.unit}): no fine-tuning prediction for it")
    model = _model(row, caveats)
    if row.seq_len is None:
        raise NotExpressible("sequence length not published (examples of varying length, no fixed seq_len)")
    if row.global_batch is None:
        raise NotExpressible("global batch not published")
    precision = _precision(row)
    system = row_network(row, system, caveats)
    layout = layout_for(row, caveats, system=system)
    if layout.recompute == "none" and re.search(r"activation checkpointing on", row.notes, re.IGNORECASE):
        layout = replace(layout, recompute="full")
        caveats.append("activation checkpointing from the row's notes: full recompute")
    elif layout.recompute == "none" and not row.recompute and layout.chips > 1 and "torchtune" in row.notes:
        layout = replace(layout, recompute="full")
        caveats.append(
            "recompute not published: full activation checkpointing assumed (torchtune's distributed "
            "LoRA configs set enable_activation_checkpointing: True)"
        )
    match = _LORA_RANK.search(row.notes)
    if match:
        rank = int(match.group(1))
        caveats.append(f"LoRA rank {rank} from the row's notes")
    else:
        rank = 16
        caveats.append("LoRA rank not published: 16 assumed")
    if _QV_MLP.search(row.notes):
        caveats.append(
            "adapters on q, v, output and MLP: twofold's attention-mlp also adapts k (r*(h+kv*d) more)"
        )
    else:
        caveats.append("LoRA targets not published: attention and MLP projections assumed")
    method: Literal["lora", "qlora"] = "qlora" if row.task == "finetune-qlora" else "lora"
    if method == "qlora":
        caveats.append("QLoRA base in NF4 with double quantization (4.127 bits per weight)")
    if row.metric == "peak_memory_gib":
        caveats.append("peak memory compared with the predicted memory per chip (allocator peak vs model)")
        if re.search(r"\bGB\b", row.unit + " " + row.notes):
            caveats.append("the source prints GB; read as GiB as its other rows are")
    caveats.extend(_source_caveats(row))
    workload = TrainingWorkload(
        global_batch=row.global_batch,
        seq_len=row.seq_len,
        precision=precision,
        finetune=Finetune(method=method, rank=rank),
    )
    row = _whole_job_if_beyond_peak(row, model, chip, workload, caveats)
    return Case(
        row=row,
        kind="finetune",
        family=family,
        chip=chip,
        system=system,
        model=model,
        layout=layout,
        workload=workload,
        caveats=tuple(caveats),
    )


def _whole_job_if_beyond_peak(
    row: PublishedRow, model: Any, chip: Any, workload: Any, caveats: list[str]
) -> PublishedRow:
    """A per-chip tokens/s that would need more than the chip's dense peak (at the fine-tuning's
    own model FLOPs per token, `estimate.training.model_flops_per_token`) cannot be per chip: it is
    read as the whole job's (the torchtune README does not say which; its rows' notes guess per GPU)."""
    from twofold.estimate.training import model_flops_per_token

    if row.metric != "tokens_per_s_per_chip":
        return row
    per_token = model_flops_per_token(model, workload.seq_len, finetune=workload.finetune)
    implied_tflops = row.value * per_token / 1e12
    peak = chip.peak_tflops(workload.precision)
    if implied_tflops <= peak:
        return row
    caveats.append(
        f"{row.value:g} tokens/s per chip would need {implied_tflops:.0f} TFLOP/s per chip, above the "
        f"{peak:g} TFLOP/s peak: read as the whole job's tokens/s"
    )
    return replace(row, metric="tokens_per_s")
