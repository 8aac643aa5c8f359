"""A team's own measured runs, for `twofold calibrate`: read, checked before any fit, turned into Cases.

A runs file is a CSV (or a YAML list of mappings) in the columns of the shipped
`published_results.csv` (`validate.dataset`; a missing column counts as an empty cell, `task`
defaults to "train", `id` to the line number), plus two optional columns:

- `chip`: a catalog chip id or alias; without it the `hardware` text is looked up in
  `validate/data/mapping.yaml` as `twofold validate` maps the published rows;
- `config`: a Hugging Face config.json path; without it `model` is a catalog id or alias, or the
  architecture columns (layers, hidden, heads, kv_heads, ffn, vocab, moe_experts, moe_topk) with a
  `model` name that `mapping.yaml`'s `column_families` recognise (Llama, GPT, ...).

Metrics and their units (`UNIT_RULES`): tokens_per_s_per_chip, tokens_per_s (whole job),
sequences_per_s, step_time_s, tflops_per_chip, mfu (% or fraction), and peak_memory_gib (checked
and named in the notes, not fitted: the fit is of time).

Layout in chips: tp, pp, cp, ep, vp default 1, dp defaults to chips / (tp pp cp) and must multiply to
the chip count when given; `zero_or_fsdp` "FSDP"/"ZeRO-3"/"HSDP" is ZeRO-3 (HSDP: states sharded
within the scale-up domain), "ZeRO-0/1/2" that stage, empty ZeRO-1 (Megatron's distributed
optimizer, as `mapping.yaml`'s default); micro_batch defaults to 1; recompute is one of none,
selective, full or a spelling of `mapping.yaml`. A `notes` cell stating "N Gbps inter-node" sets
the scale-out network per node, as `twofold validate` does for the published rows. Other source
conventions of the published files (per-source FLOP formulas and MFU peaks, NeuronCore counts) do
not apply: MFU and TFLOP/s are read against the chip's dense peak at the run's precision and
Megatron's FLOP count.

`check_runs` refuses a bad run before anything is fitted, naming the row and the field (unknown
chip, a layout that does not multiply to the chip count, a zero or negative value, a unit that does
not match the metric, ...): `InputError`, exit 2 at the command line.

`runs_from_history` reads what `twofold measure` stored (`measure.db`): the training steps it timed
on the local device (small Llama-style models, one device, fp32). They carry the model's
architecture, micro-batch, length and the measured step time; what they lack for a calibration is
said in the returned notes (a catalog chip for the device, more than one device, a precision the
shipped factors are fitted at).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from twofold import yaml_strict
from twofold.errors import InputError
from twofold.validate.dataset import COLUMNS, PublishedRow, parse_row  # the shipped files' parser
from twofold.validate.mapping import Case
from twofold.validate.mapping_rules import hardware_entry, mapping_data, row_precision
from twofold.validate.reading import read_recompute

__all__ = [
    "FITTED_METRICS",
    "UNIT_RULES",
    "UserRun",
    "check_run",
    "check_runs",
    "read_runs",
    "run_case",
    "runs_from_history",
]

# metric -> (regex a unit must match, what the rule says)
UNIT_RULES: Mapping[str, tuple[str, str]] = {
    "tokens_per_s_per_chip": (
        r"tokens?/s.*(/|per ?)(chip|gpu|device|tpu|accelerator|gcd|core)|tgs",
        "tokens/s per chip (e.g. tokens/s/GPU)",
    ),
    "tokens_per_s": (
        r"^(?!.*(/|per ?)(chip|gpu|device|tpu|accelerator)\b).*tokens?/s",
        "tokens/s of the job",
    ),
    "sequences_per_s": (r"(seq|sequences|samples)/s", "sequences/s (or samples/s) of the job"),
    "step_time_s": (r"^(s|sec|secs|seconds?)\b|^s/", "seconds per step (s)"),
    "tflops_per_chip": (r"tflop", "TFLOP/s per chip"),
    "mfu": (r"^(%|fraction)$", "% or fraction"),
    "peak_memory_gib": (r"\bgi?b\b", "GiB (or GB) per chip"),
}
FITTED_METRICS = tuple(m for m in UNIT_RULES if m != "peak_memory_gib")
_PRECISIONS = ("bf16", "fp16", "fp32", "tf32", "fp8", "mxfp8", "fp4", "int8")
_RECOMPUTE = ("none", "selective", "full")
_POSITIVE_INT = ("chips", "dp", "tp", "pp", "vp", "cp", "ep", "micro_batch", "global_batch", "seq_len")
_ARCH = ("layers", "hidden", "heads", "kv_heads", "ffn", "vocab", "moe_experts", "moe_topk")


@dataclass(frozen=True, kw_only=True, slots=True)
class UserRun:
    """One measured run: the row in the published schema, and the optional `chip` and `config`."""

    row: PublishedRow
    chip: str = ""
    config: str = ""
    where: str = ""  # "runs.csv row r7": how messages name the run
    model_config: Any = None  # a ModelConfig known already (the steps `twofold measure` timed)


def _cells(raw: Mapping[str, Any], index: int, source: str) -> dict[str, str]:
    cells = {c: "" if raw.get(c) is None else str(raw.get(c)) for c in (*COLUMNS, "chip", "config")}
    cells["id"] = cells["id"].strip() or f"run{index}"
    cells["task"] = cells["task"].strip() or "train"
    cells["source"] = cells["source"].strip() or source
    cells["notes"] = cells["notes"] or ""
    return cells


def read_runs(path: Path | str) -> tuple[UserRun, ...]:
    """The runs of a CSV or YAML runs file (module docstring), each row parsed as the shipped files
    are; ids unique. Raises InputError naming the file, the row and the field."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError("runs", str(path), f"cannot be read ({exc.strerror})") from None
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml_strict.load(text)
        except yaml.YAMLError as exc:
            raise InputError("runs", str(path), f"is not valid YAML ({exc})") from None
        if isinstance(data, Mapping) and "runs" in data:
            data = data["runs"]
        if not isinstance(data, list) or not all(isinstance(d, Mapping) for d in data):
            raise InputError("runs", str(path), "must be a YAML list of runs (mappings of the CSV columns)")
        raws: list[Mapping[str, Any]] = data
    else:
        raws = list(csv.DictReader(text.splitlines()))
    if not raws:
        raise InputError("runs", str(path), "holds no runs")
    out: list[UserRun] = []
    seen: set[str] = set()
    for i, raw in enumerate(raws, start=1):
        cells = _cells(raw, i, p.name)
        where = f"{p.name} row {cells['id']}"
        if cells["id"] in seen:
            raise InputError(f"{where}.id", cells["id"], "appears more than once")
        seen.add(cells["id"])
        try:
            row = parse_row({c: cells[c] for c in COLUMNS})
        except InputError as exc:
            raise InputError(f"{p.name} row {exc.field}", exc.value, exc.rule) from None
        out.append(UserRun(row=row, chip=cells["chip"].strip(), config=cells["config"].strip(), where=where))
    return tuple(out)


def _hardware_entry(run: UserRun) -> Mapping[str, Any] | None:
    return hardware_entry(run.row)


def _chip(run: UserRun) -> Any:
    from twofold.hardware import catalog

    if run.chip:
        try:
            return catalog.get_chip(run.chip)
        except InputError as exc:
            raise InputError(f"{run.where}.chip", run.chip, exc.rule) from None
    entry = _hardware_entry(run)
    if entry is None or entry.get("chip") is None:
        why = "no `chip` column, and this hardware text names no catalog chip"
        if entry is not None:
            why = f"{entry.get('reason', 'not in the catalog')}; give a `chip` column"
        raise InputError(f"{run.where}.hardware", run.row.hardware, why)
    return catalog.get_chip(str(entry["chip"]))


def _precision(run: UserRun) -> str:
    text = run.row.precision.strip()
    if text.lower() in _PRECISIONS:
        return text.lower()
    mapped = row_precision(run.row)
    if not mapped:
        raise InputError(f"{run.where}.precision", text, f"must be one of {', '.join(_PRECISIONS)}")
    return str(mapped)


def _recompute(run: UserRun) -> str:
    text = run.row.recompute.strip()
    mapped = mapping_data()["recompute"].get(text) or read_recompute(text) or text.lower()
    if mapped not in _RECOMPUTE:
        raise InputError(f"{run.where}.recompute", text, f"must be one of {', '.join(_RECOMPUTE)}")
    return str(mapped)


def _model(run: UserRun) -> Any:
    from twofold.validate.mapping import NotExpressible, model_from_columns
    from twofold.workload.registry import get_model

    if run.model_config is not None:
        return run.model_config
    if run.config:
        if not Path(run.config).expanduser().is_file():
            raise InputError(f"{run.where}.config", run.config, "must be the path of a config.json")
        try:
            return get_model(run.config)
        except InputError as exc:
            raise InputError(f"{run.where}.config", run.config, exc.rule) from None
    try:
        return get_model(run.row.model)
    except InputError:
        pass
    try:
        return model_from_columns(run.row)
    except NotExpressible as exc:
        rule = f"is neither a catalog model nor described by the architecture columns ({exc})"
        raise InputError(f"{run.where}.model", run.row.model, rule + "; or give a `config` column") from None


def _check_layout(run: UserRun) -> None:
    row = run.row
    chips = row.chips
    if chips is None:
        raise InputError(f"{run.where}.chips", None, "is required (the number of chips of the run)")
    model_parallel = (row.tp or 1) * (row.pp or 1) * (row.cp or 1)
    if row.dp is not None and row.dp * model_parallel != chips:
        rule = f"dp*tp*pp*cp = {row.dp * model_parallel} must equal chips = {chips}"
        raise InputError(f"{run.where}.dp", row.dp, rule)
    if row.dp is None and chips % model_parallel:
        raise InputError(f"{run.where}.chips", chips, f"must be a multiple of tp*pp*cp = {model_parallel}")
    dp = row.dp or chips // model_parallel
    if row.global_batch is None or row.seq_len is None:
        field = "global_batch" if row.global_batch is None else "seq_len"
        raise InputError(f"{run.where}.{field}", None, "is required")
    micro = row.micro_batch or 1
    if row.global_batch % (dp * micro):
        rule = f"must be a multiple of dp*micro_batch = {dp * micro}"
        raise InputError(f"{run.where}.global_batch", row.global_batch, rule)


def check_run(run: UserRun) -> None:
    """Refuse one run with the field named (module docstring); returns None when it is usable."""
    row = run.row
    if row.task != "train":
        raise InputError(f"{run.where}.task", row.task, "must be train (calibration fits training steps)")
    for column in (*_POSITIVE_INT, *_ARCH, "params_b"):
        value = getattr(row, column)
        if value is not None and value <= 0:
            raise InputError(f"{run.where}.{column}", value, "must be a positive number")
    rule = UNIT_RULES.get(row.metric)
    if rule is None:
        raise InputError(f"{run.where}.metric", row.metric, f"must be one of {', '.join(UNIT_RULES)}")
    if not re.search(rule[0], row.unit.strip(), re.IGNORECASE):
        raise InputError(f"{run.where}.unit", row.unit, f"does not match metric {row.metric}: {rule[1]}")
    if row.metric == "mfu" and row.value > (1.0 if row.unit.strip() == "fraction" else 100.0):
        raise InputError(f"{run.where}.value", row.value, f"an MFU in {row.unit} cannot exceed the peak")
    _chip(run)
    _precision(run)
    _recompute(run)
    _check_layout(run)
    _model(run)


def check_runs(runs: Sequence[UserRun]) -> None:
    """`check_run` on every run, before any fit: the first bad run raises."""
    if not any(r.row.metric in FITTED_METRICS for r in runs):
        raise InputError(
            "runs",
            len(runs),
            "hold no time or throughput figure to fit (metrics: " + ", ".join(FITTED_METRICS) + ")",
        )
    for run in runs:
        check_run(run)


def _layout(run: UserRun, system: Any) -> Any:
    from twofold.parallel.layout import Layout

    row = run.row
    tp, pp, cp = row.tp or 1, row.pp or 1, row.cp or 1
    dp = row.dp or row.chips // (tp * pp * cp)  # type: ignore[operator]  # checked in check_run
    sharding = row.zero_or_fsdp
    fsdp = bool(re.search(r"fsdp|zero-3|hsdp|hybrid", sharding, re.IGNORECASE))
    stage = re.search(r"ZeRO-([0-2])\b", sharding, re.IGNORECASE)
    zero = 3 if fsdp else int(stage.group(1)) if stage else 1
    shard = None
    if zero == 3 and re.search(r"hsdp|hybrid", sharding, re.IGNORECASE) and system.levels:
        domain = system.levels[0].domain_chips or 0
        if domain and domain % (tp * cp) == 0 and dp % (domain // (tp * cp)) == 0:
            shard = domain // (tp * cp) if domain // (tp * cp) < dp else None
    return Layout(
        dp=dp,
        tp=tp,
        pp=pp,
        vp=row.vp or 1,
        cp=cp,
        ep=row.ep or 1,
        zero=zero,
        micro_batch=row.micro_batch or 1,
        recompute=_recompute(run),  # type: ignore[arg-type]
        sequence_parallel=tp > 1,
        shard=shard,
    )


def run_case(run: UserRun, stack: str = "auto") -> Case:
    """The `Case` of a checked run (`check_run`), predicted with `stack`."""
    from twofold.cost.calibration import shipped_calibration
    from twofold.hardware import catalog
    from twofold.parallel.layout import TrainingWorkload
    from twofold.validate.mapping import hardware_family, row_network  # validate's network rule

    chip = _chip(run)
    entry = None if run.chip else _hardware_entry(run)
    system = catalog.system_for(chip, entry.get("system") if entry else None)
    caveats: list[str] = []
    system = row_network(run.row, system, caveats)  # "400 Gbps inter-node" in the notes
    family = shipped_calibration().family(chip.id) or hardware_family(run.row)
    row = run.row
    assert row.global_batch is not None and row.seq_len is not None  # check_run requires both
    workload = TrainingWorkload(global_batch=row.global_batch, seq_len=row.seq_len, precision=_precision(run))
    return Case(
        row=row,
        kind="train",
        family=family,
        chip=chip,
        system=system,
        model=_model(run),
        layout=_layout(run, system),
        workload=workload,
        stack=stack,
        caveats=tuple(caveats),
    )


def _device_chip(device: str) -> Any:
    """The catalog chip of a device name ("NVIDIA A100-SXM4-80GB" -> a100): the whole name as an id
    or alias, its `mapping.yaml` hardware entry, else the first word with a digit that is an alias."""
    from twofold.hardware import catalog

    entry = mapping_data()["hardware"].get(device) or {}
    words = [w for w in re.split(r"[\s_/-]+", device) if any(c.isdigit() for c in w)]
    for name in (device, entry.get("chip"), *words):
        if name:
            try:
                return catalog.get_chip(str(name))
            except InputError:
                continue
    return None


def runs_from_history(db_path: Path | str | None = None) -> tuple[tuple[UserRun, ...], tuple[str, ...]]:
    """The timed training steps of `twofold measure` runs (`measure.db`) as runs, and what they
    lack: (runs whose device maps to a catalog chip, notes on every step that could not be used)."""
    from twofold.measure.db import default_db_path, list_runs, run_measurements
    from twofold.measure.kernels import step_models

    path = Path(db_path) if db_path is not None else default_db_path()
    runs: list[UserRun] = []
    notes: list[str] = []
    for record in list_runs(path):
        steps = [m for m in run_measurements(path, record.id) if m.name.startswith("train_step:")]
        if not steps:
            continue
        chip = _device_chip(record.device)
        if chip is None:
            notes.append(
                f"run {record.id}: device {record.device!r} is not a catalog chip; its {len(steps)} "
                "timed steps cannot be calibrated against (a `twofold measure` profile already "
                "describes that machine: use --chip local)"
            )
            continue
        models = step_models()
        for k, m in enumerate(steps):
            arch = m.params.get("model") or {}
            model = models.get(str(arch.get("name")))
            if model is None:
                notes.append(
                    f"run {record.id}: step model {arch.get('name')!r} is not one `twofold measure` times now"
                )
                continue
            cells = {
                "id": f"{record.id}-{k}",
                "source": f"twofold measure {record.id}",
                "task": "train",
                "model": str(arch.get("name", "measured model")),
                "layers": arch.get("num_layers"),
                "hidden": arch.get("hidden_size"),
                "heads": arch.get("num_attention_heads"),
                "kv_heads": arch.get("num_kv_heads"),
                "ffn": arch.get("intermediate_size"),
                "vocab": arch.get("vocab_size"),
                "seq_len": m.params.get("seq_len"),
                "micro_batch": m.params.get("micro_batch"),
                "global_batch": m.params.get("micro_batch"),
                "chips": 1,
                "hardware": record.device,
                "precision": str(m.params.get("dtype", "fp32")),
                "metric": "step_time_s",
                "value": m.value,
                "unit": "s",
            }
            full = _cells(cells, k, "history")
            row = parse_row({c: full[c] for c in COLUMNS})
            runs.append(UserRun(row=row, chip=chip.id, where=f"history {row.id}", model_config=model))
    if runs:
        notes.append(
            "history steps are single-device fp32 steps of small models: they identify the per-op "
            "overhead and memory-bound factors, not communication or 16-bit GEMM efficiency"
        )
    return tuple(runs), tuple(notes)
