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

Layout conventions applied here (each documented where it is applied):
- `dp` empty: chips / (tp * pp * cp), as the dataset's `dp derived` note says.
- AWS Neuron rows count NeuronCores in tp/dp/pp; they are converted to chips (`cores_per_chip`).
- MaxText (JAX) rows give a per-device batch and run without gradient accumulation: each data-parallel
  rank processes global_batch / dp sequences in one micro-batch.
- `zero_or_fsdp`: FSDP or ZeRO-3 -> zero=3; an explicit ZeRO-0/1/2 -> that stage; otherwise the source's
  default (Megatron's distributed optimizer, ZeRO-1, unless the source says it predates it).
- `recompute`: a spelling maps to a mode, or to a rule that reads the mode from the notes (tpu-recipes
  "see notes": the MaxText remat policy), or to the reason it is not modelled (host offload).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal

from twofold import yaml_strict
from twofold.errors import InputError
from twofold.validate.dataset import TRAINING_METRICS, PublishedRow
from twofold.validate.reading import read_hardware, read_model_id, read_precision, read_recompute, read_stack

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

# The software stacks `row_stack` can answer (mapping.yaml `stacks` explains each).
STACKS = (
    "megatron",
    "torchtitan",
    "fsdp",
    "fsdp-compile",
    "deepspeed",
    "maxtext",
    "neuronx",
    "nanotron",
    "serving",
    "other",
)
LORA_TASKS = ("finetune-lora", "finetune-qlora")
# Fine-tuning figures: the training throughput metrics, and peak memory per chip (GiB).
FINETUNE_METRICS = (
    "tokens_per_s_per_chip",
    "tokens_per_s",
    "sequences_per_s",
    "step_time_s",
    "peak_memory_gib",
)


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
class Unexpressible:
    """A row twofold cannot predict yet, and why."""

    row: PublishedRow
    family: str
    reason: str


class NotExpressible(Exception):
    """A row cannot be expressed; the message is the reason (`express` turns it into `Unexpressible`)."""


@lru_cache(maxsize=1)
def mapping_data() -> Mapping[str, Any]:
    """The parsed `validate/data/mapping.yaml`."""
    text = resources.files("twofold.validate").joinpath("data", "mapping.yaml").read_text(encoding="utf-8")
    return yaml_strict.load(text)


def hardware_entry(row: PublishedRow) -> Mapping[str, Any] | None:
    """The row's hardware as mapping.yaml gives it ({chip, system, family, cores_per_chip} or
    {chip: None, reason}); for a spelling mapping.yaml does not list, what `validate.reading`
    reads from the text (marked `read: True`), or None."""
    entry = mapping_data()["hardware"].get(row.hardware)
    return entry if entry is not None else _read_hardware_entry(row.hardware)


@lru_cache(maxsize=256)
def _read_hardware_entry(text: str) -> Mapping[str, Any] | None:
    """`hardware_entry` for a spelling mapping.yaml lacks (read once per spelling: every row of a
    file asks several times)."""
    reading = read_hardware(text)
    if reading is None:
        return None
    return MappingProxyType(
        {
            "chip": reading.chip,
            "family": reading.family,
            "reason": reading.reason,
            "cores_per_chip": reading.cores_per_chip,
            "read": True,
        }
    )


def hardware_family(row: PublishedRow) -> str:
    """The summary family of a row's hardware ("NVIDIA Hopper", "Google TPU", ...)."""
    entry = hardware_entry(row)
    return str(entry["family"]) if entry else "unknown"


def source_convention(row: PublishedRow) -> Mapping[str, Any]:
    """The per-source conventions of `mapping.yaml` (`flops` formula, `mfu_peak_tflops`, ...)."""
    return mapping_data().get("sources", {}).get(row.source, {})


def stack_rule(row: PublishedRow) -> Mapping[str, Any] | None:
    """The first `stacks` rule of mapping.yaml that matches the row (source, notes, zero_or_fsdp), or None."""
    for rule in mapping_data().get("stacks", ()):
        if not re.search(rule["source"], row.source):
            continue
        if rule.get("notes") and not re.search(rule["notes"], row.notes):
            continue
        if rule.get("zero_or_fsdp") and not re.search(rule["zero_or_fsdp"], row.zero_or_fsdp):
            continue
        return rule
    return None


def row_stack(row: PublishedRow) -> str:
    """The software stack the row ran, one of `STACKS`: the first mapping.yaml rule that matches;
    else the framework the row's notes or source name (`validate.reading.read_stack`); else "other"."""
    return _stack_and_reading(row)[0]


def _stack_and_reading(row: PublishedRow) -> tuple[str, str | None]:
    """(`row_stack`, why the text was read so) - the reason is None when a mapping.yaml rule
    decided or nothing did."""
    rule = stack_rule(row)
    if rule:
        return str(rule["stack"]), None
    read = read_stack(row.notes, row.source)
    return (read[0], read[1]) if read else ("other", None)


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
    return replace(case, stack=stack)


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


def row_precision(row: PublishedRow) -> str | None:
    """The row's precision: mapping.yaml's reading of its spelling (None there: not stated), else
    the number format the text names (`validate.reading.read_precision`), else None."""
    table = mapping_data()["precision"]
    if row.precision in table:
        value = table[row.precision]
        return str(value) if value else None
    return read_precision(row.precision)


def _precision(row: PublishedRow) -> str:
    value = row_precision(row)
    if not value:
        raise NotExpressible("precision not published")
    return value


def _check_training_metric(row: PublishedRow) -> None:
    if row.metric not in TRAINING_METRICS:
        raise NotExpressible(f"metric {row.metric!r} ({row.unit}): validate.metrics has no prediction for it")
    if row.metric == "mfu" and row.unit.strip() not in ("%", "fraction"):
        raise NotExpressible(f"MFU published as {row.unit!r}: neither a percentage nor a fraction")


def _source_caveats(row: PublishedRow) -> list[str]:
    out = []
    for rule in mapping_data().get("caveats", ()):
        if re.search(rule["source"], row.source) and (
            not rule.get("notes") or re.search(rule["notes"], row.notes)
        ):
            out.append(str(rule["text"]))
    return out


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


_NODE_NETWORK = re.compile(r"(\d+(?:\.\d+)?) ?Gbps inter-node", re.IGNORECASE)


def row_network(row: PublishedRow, system: Any, caveats: list[str]) -> Any:
    """The catalog system with its scale-out network set to what the row's notes state
    ("400 Gbps inter-node": per node, shared by the node's chips), where they state it. The
    catalog's systems carry the vendor reference network (e.g. one 200-400 Gb/s NIC per GPU);
    clusters with fewer NICs per node run the same collectives over less bandwidth."""
    from dataclasses import replace

    match = _NODE_NETWORK.search(row.notes)
    if match is None or not system.levels or system.levels[-1].kind != "network":
        return system
    per_chip = float(match.group(1)) / 8.0 / max(system.node_chips, 1)  # Gb/s per node -> GB/s per chip
    outer = system.levels[-1]
    caveats.append(
        f"scale-out network from the row's notes: {match.group(1)} Gb/s per node = {per_chip:.2f} GB/s "
        f"per chip (catalog {system.id}: {outer.bandwidth_gb_s_per_chip:g})"
    )
    levels = (*system.levels[:-1], replace(outer, bandwidth_gb_s_per_chip=per_chip))
    return replace(system, levels=levels)


def _one_microbatch_batch(row: PublishedRow, caveats: list[str]) -> PublishedRow:
    """A row without a global batch whose source trains one micro-batch per rank per step (no
    gradient accumulation; `one_microbatch_per_step` in mapping.yaml cites where it says so): the
    global batch is micro_batch x dp. Other rows are returned as they are."""
    from dataclasses import replace

    if row.global_batch is not None or not source_convention(row).get("one_microbatch_per_step"):
        return row
    if row.micro_batch is None or row.chips is None:
        return row
    model_parallel = (row.tp or 1) * (row.pp or 1) * (row.cp or 1)
    if row.chips % model_parallel:
        return row
    batch = row.micro_batch * (row.chips // model_parallel)
    caveats.append(
        f"global batch not published: {batch} = micro batch {row.micro_batch} x dp "
        f"{row.chips // model_parallel} (the source's training loop has no gradient accumulation)"
    )
    return replace(row, global_batch=batch)


def _hybrid_shard(
    row: PublishedRow, system: Any, tp: int, cp: int, dp: int, caveats: list[str]
) -> int | None:
    """The shard group of a hybrid-sharded (HSDP) row: the data-parallel ranks of one scale-up
    domain (PyTorch FSDP HYBRID_SHARD shards within a node and replicates across nodes)."""
    if system is None or not re.search(r"HSDP|hybrid", row.zero_or_fsdp, re.IGNORECASE):
        return None
    domain = system.levels[0].domain_chips if system.levels else None
    if not domain or domain % (tp * cp) or dp % (domain // (tp * cp)):
        return None
    shard = domain // (tp * cp)
    caveats.append(f"hybrid sharding: states sharded within each {domain}-chip node ({shard} dp ranks)")
    return shard if shard < dp else None


def layout_for(row: PublishedRow, caveats: list[str] | None = None, system: Any = None) -> Any:
    """The row's `Layout` in chips (conventions in the module docstring); raises NotExpressible.
    Conversions taken on the way are appended to `caveats`."""
    from twofold.parallel.layout import Layout

    caveats = [] if caveats is None else caveats
    if row.global_batch is None:
        raise NotExpressible("global batch not published")
    convention = source_convention(row)
    chips = row.chips
    if chips is None:
        raise NotExpressible("chip count not published")
    entry = hardware_entry(row) or {}
    cores = int(entry.get("cores_per_chip", 1))
    tp, pp, cp = row.tp or 1, row.pp or 1, row.cp or 1
    dp = row.dp
    if entry.get("read") and cores > 1 and dp is not None and dp * tp * pp * cp == chips:
        cores = 1  # a row read from its text that counts chips, not NeuronCores
    micro_batch = row.micro_batch or 1
    fsdp = bool(re.search(r"fsdp|zero[-_ ]?(stage[-_ ]?)?3|hybrid shard", row.zero_or_fsdp, re.IGNORECASE))
    if cores > 1:
        # NeuronCore counts -> chips: fold the cores of a chip into tensor parallelism when it is a
        # multiple of the cores per chip, otherwise into data parallelism (micro-batches merge).
        dp_cores = dp if dp is not None else chips * cores // (tp * pp * cp)
        if tp % cores == 0:
            tp //= cores
            dp = dp_cores
        elif dp_cores % cores == 0:
            dp = dp_cores // cores
            micro_batch *= cores
        else:
            raise NotExpressible(
                f"NeuronCore layout tp={tp} dp={dp_cores} does not fold onto {cores}-core chips"
            )
        caveats.append(f"layout given in NeuronCores; converted to chips ({cores} cores per chip)")
    if dp is None or dp * tp * pp * cp != chips:
        if dp is not None and not fsdp:
            raise NotExpressible(f"dp*tp*pp*cp = {dp * tp * pp * cp} does not equal chips = {chips}")
        if chips % (tp * pp * cp):
            raise NotExpressible(f"chips={chips} is not a multiple of tp*pp*cp={tp * pp * cp}")
        dp = chips // (tp * pp * cp)
    if row.source.startswith("MaxText") or "framework: maxtext" in row.notes:
        # JAX/MaxText: per-device batch, no gradient accumulation (one micro-batch per step).
        if row.global_batch % dp:
            raise NotExpressible(f"global batch {row.global_batch} does not split over dp={dp}")
        micro_batch = row.global_batch // dp
    if fsdp and row.micro_batch is None and convention.get("fsdp_one_microbatch"):
        # The source ran ZeRO-3 without gradient accumulation (mapping.yaml cites where it says so).
        if row.global_batch % dp:
            raise NotExpressible(f"global batch {row.global_batch} does not split over dp={dp}")
        micro_batch = row.global_batch // dp
    if row.global_batch % (dp * micro_batch):
        raise NotExpressible(
            f"global batch {row.global_batch} is not a multiple of dp*micro_batch={dp * micro_batch}"
        )
    stage = re.search(r"zero[-_ ]?(?:stage[-_ ]?)?([0-2])\b", row.zero_or_fsdp, re.IGNORECASE)
    zero = 3 if fsdp else int(stage.group(1)) if stage else int(convention.get("zero", 1))
    recompute = _recompute(row)
    sequence_parallel = bool(convention.get("sequence_parallel", True)) and tp > 1
    ep = row.ep or 1
    vp = row.vp or 1
    # An ep that does not fit in dp*cp can only have run with expert tensor parallelism 1 (EP
    # folded over the TP ranks, Megatron-Core `--expert-tensor-parallel-size 1`); otherwise
    # Megatron's default etp = tp.
    etp = 1 if tp > 1 and (dp * cp) % ep and (tp * dp * cp) % ep == 0 else None
    if etp == 1:
        caveats.append("ep exceeds dp*cp: expert tensor parallelism 1 assumed (EP over the TP ranks)")
    return Layout(
        dp=dp,
        tp=tp,
        pp=pp,
        vp=vp,
        cp=cp,
        ep=ep,
        zero=zero,
        micro_batch=micro_batch,
        recompute=recompute,
        sequence_parallel=sequence_parallel,
        etp=etp,
        shard=_hybrid_shard(row, system, tp, cp, dp, caveats) if zero == 3 else None,
    )


def _recompute(row: PublishedRow) -> Any:  # a RECOMPUTE_MODES entry, checked by Layout
    """The row's recompute mode (mapping.yaml `recompute`); raises NotExpressible."""
    entry = mapping_data()["recompute"].get(row.recompute)
    if entry is None:
        entry = read_recompute(row.recompute)
    if entry is None:
        raise NotExpressible(f"recompute mode {row.recompute!r}: not none/selective/full (or offloads)")
    if not isinstance(entry, Mapping):
        return str(entry)
    if entry.get("reason"):
        raise NotExpressible(str(entry["reason"]))
    match = re.search(str(entry["notes"]), row.notes)
    if match is None and entry.get("default"):
        return str(entry["default"])  # the framework's documented default (cited in mapping.yaml)
    if match is None:
        raise NotExpressible(str(entry["missing"]))
    mode = entry.get("values", {}).get(match.group(1))
    if mode is None:
        raise NotExpressible(str(entry["unmodelled"]).format(match.group(1)))
    return str(mode)


# --- models -----------------------------------------------------------------------------------------

_STRUCTURE_HINTS = ("MLA", "shared expert", "dense layer")


def _model(row: PublishedRow, caveats: list[str]) -> Any:
    data = mapping_data()
    reason = data["unexpressible_models"].get(row.model)
    if reason:
        raise NotExpressible(str(reason))
    catalog_id = data["catalog_models"].get(row.model)
    if not catalog_id and (catalog_id := read_model_id(row.model)):
        caveats.append(f"model {row.model!r} read as catalog {catalog_id}")
    if catalog_id:
        from twofold.workload.registry import get_model

        try:
            model = get_model(catalog_id)
        except InputError:
            if any(hint.lower() in row.notes.lower() for hint in _STRUCTURE_HINTS):
                raise NotExpressible(
                    f"model catalog has no {catalog_id!r}, and the row's columns cannot express its "
                    "structure (MLA / shared experts / leading dense layers)"
                ) from None
            caveats.append(f"model catalog has no {catalog_id!r}; built from the row's columns")
            return model_from_columns(row, caveats)
        caveats.extend(_catalog_mismatches(row, model))
        return model
    model = model_from_columns(row, caveats)
    arch = data.get("architectures", {}).get(row.model)
    if arch:
        caveats.append(f"architecture not in the row: taken from {arch['citation']}")
    return model


def _catalog_mismatches(row: PublishedRow, model: Any) -> list[str]:
    pairs = {
        "layers": model.num_layers,
        "hidden": model.hidden_size,
        "heads": model.num_attention_heads,
        "kv_heads": model.num_kv_heads,
        "vocab": model.vocab_size,
        "moe_experts": model.num_experts or None,
    }
    out = []
    for column, catalog_value in pairs.items():
        value = getattr(row, column)
        if value is not None and catalog_value is not None and value != catalog_value:
            out.append(
                f"row {column}={value} differs from catalog {model.name} ({catalog_value}); catalog used"
            )
    return out


def _supplement(row: PublishedRow, what: str) -> int | None:
    for key, block in mapping_data()["supplements"].items():
        if key.split("_")[0] == what and row.id in block["rows"]:
            return int(block["rows"][row.id])
    return None


# A model name no `column_families` rule knows (a row from elsewhere): a pre-norm decoder with
# RMSNorm and RoPE, its MLP gated (SwiGLU) or plain (GELU, two matrices) by which of the two gives
# the row's published parameter count (`params_b`); gated when the row has none.
_DECODER = {"norm": "rmsnorm", "position_embedding": "rope"}
_DECODER_RULES = (
    {"family": "llama", "mlp_gated": True, "activation": "silu", **_DECODER},
    {"family": "gpt2", "mlp_gated": False, "activation": "gelu", **_DECODER},
)


def model_from_columns(row: PublishedRow, caveats: list[str] | None = None) -> Any:
    """A ModelConfig from the row's architecture columns and the first matching `column_families`
    rule of mapping.yaml (which decides gated vs plain MLP, norm and positions; see the comment
    there). Figures the row omits come from `supplements` or `architectures` (cited there) or make
    the row unexpressible. A name no rule matches gets the decoder of `_DECODER_RULES` whose
    parameter count is nearer the row's `params_b` (a caveat says which)."""
    rule = next((r for r in mapping_data()["column_families"] if re.search(r["match"], row.model)), None)
    if rule is not None:
        return _columns_model(row, rule)
    from twofold.workload.params import param_counts

    candidates = [_columns_model(row, r) for r in _DECODER_RULES]
    chosen = candidates[0]
    why = "no published parameter count: gated (SwiGLU) assumed"
    if row.params_b:
        target = row.params_b * 1e9
        chosen = min(candidates, key=lambda m: abs(param_counts(m).total - target))
        total = param_counts(chosen).total / 1e9
        why = f"{total:.2f}B parameters against {row.params_b:g}B published"
    if caveats is not None:
        kind = "gated (SwiGLU)" if chosen.mlp_gated else "plain GELU"
        caveats.append(f"model {row.model!r} built from the columns as a {kind} RMSNorm/RoPE decoder ({why})")
    return chosen


def _columns_model(row: PublishedRow, rule: Mapping[str, Any]) -> Any:
    from twofold.workload.model import ModelConfig

    arch = mapping_data().get("architectures", {}).get(row.model, {})
    layers = row.layers or arch.get("layers")
    hidden = row.hidden or arch.get("hidden")
    heads = row.heads or _supplement(row, "heads") or arch.get("heads")
    ffn = row.ffn or arch.get("ffn")
    vocab = row.vocab or _supplement(row, "vocab") or arch.get("vocab")
    missing = [
        name
        for name, value in (
            ("layers", layers),
            ("hidden", hidden),
            ("heads", heads),
            ("ffn", ffn),
            ("vocab", vocab),
        )
        if value is None
    ]
    if missing:
        raise NotExpressible(f"architecture not published in the row ({', '.join(missing)} empty)")
    assert layers and hidden and heads and ffn and vocab  # narrowed above
    head_dim = int(rule.get("head_dim") or hidden // heads)
    moe: dict[str, Any] = {}
    if row.moe_experts:
        moe = dict(
            num_experts=row.moe_experts, num_experts_per_tok=row.moe_topk or 1, moe_intermediate_size=ffn
        )
    return ModelConfig(
        name=row.model,
        family=str(rule["family"]),
        num_layers=int(layers),
        hidden_size=int(hidden),
        num_attention_heads=int(heads),
        num_kv_heads=int(row.kv_heads or arch.get("kv_heads") or heads),
        head_dim=head_dim,
        intermediate_size=int(ffn),
        vocab_size=int(vocab),
        max_position_embeddings=max(row.seq_len or 0, 2048),
        mlp_gated=bool(rule["mlp_gated"]),
        activation=str(rule["activation"]),
        norm=str(rule["norm"]),  # type: ignore[arg-type]
        position_embedding=str(rule["position_embedding"]),  # type: ignore[arg-type]
        tie_word_embeddings=bool(arch.get("tie_word_embeddings", False)),
        source=f"published results row {row.id} columns" + (f" + {arch['citation']}" if arch else ""),
        **moe,
    )
