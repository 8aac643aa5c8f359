"""The shipped published results: one frozen `PublishedRow` per measured figure.

Five CSVs in `validate/data/`, each a verbatim copy of the file of the same name in `shared/data/`
and described in the `.md` beside it (`DATA_FILES`, in this order):
- `published_results.csv` (320 rows): Megatron-Bridge/NeMo/Megatron-LM, Narayanan and Korthikanti
  tables, MaxText, MLPerf Training v4.0, AWS Neuron trn1/inf2, microbenchmark tables;
- `published_results_2.csv` (47): Trainium2 serving (NxD Inference, vllm-neuron) and TPU v6e MaxText
  training recipes;
- `published_results_3.csv` (155): non-Megatron stacks (fms-fsdp, torchtune, nanotron, OLMo-core,
  LitGPT LoRA/QLoRA, flash-attn training scripts, Colossal-AI, picotron, EasyLM, PyTorch/XLA, Gaudi);
- `published_results_4.csv` (59): LLM serving on NVIDIA, AMD and TPU (MLPerf Inference,
  TensorRT-LLM, vLLM);
- `published_results_5.csv` (59): AMD Instinct training (Primus, JAX Primus-Turbo, Frontier).
Every figure keeps its `source_ref`. Ids are unique across the files. This module only types the
columns and splits the `notes` cell; deciding whether a row can be predicted (hardware, architecture,
layout, software stack) is `validate.mapping`'s job.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from twofold.checks import one_of
from twofold.errors import InputError

__all__ = [
    "COLUMNS",
    "THROUGHPUT_METRICS",
    "TRAINING_METRICS",
    "DATA_FILE",
    "DATA_FILES",
    "PublishedRow",
    "load_rows",
    "parse_notes",
    "parse_row",
    "read_csv",
    "row_file",
]

# The shipped files, in the order `load_rows` reads them.
# Metric names of the rows: those that are a throughput measurement of the training step (the
# accuracy target's rows), and the training metrics `validate.metrics` predicts.
THROUGHPUT_METRICS = (
    "tokens_per_s_per_chip", "tokens_per_s", "sequences_per_s", "step_time_s", "tflops_per_chip", "mfu",
)
TRAINING_METRICS = (*THROUGHPUT_METRICS, "time_to_train_min")

DATA_FILES: tuple[str, ...] = (
    "published_results.csv",
    "published_results_2.csv",
    "published_results_3.csv",
    "published_results_4.csv",
    "published_results_5.csv",
)
DATA_FILE = DATA_FILES[0]  # the original file (kept for callers that name it)

COLUMNS: list[str] = (
    "id,source,source_ref,year,task,model,params_b,layers,hidden,heads,kv_heads,ffn,vocab,seq_len,"
    "moe_experts,moe_topk,hardware,chips,dp,tp,pp,vp,cp,ep,zero_or_fsdp,micro_batch,global_batch,"
    "recompute,precision,metric,value,unit,notes"
).split(",")
_INT_COLUMNS = (
    "year layers hidden heads kv_heads ffn vocab seq_len moe_experts moe_topk chips dp tp pp vp cp ep "
    "micro_batch global_batch"
).split()
# finetune-lora / finetune-qlora: LoRA and QLoRA fine-tuning rows (frozen base weights), loaded and
# reported but not predicted (validate.mapping says why).
_TASKS = ("train", "infer", "micro", "finetune-lora", "finetune-qlora")
# `key=value` inside a notes segment; keys are short identifiers, possibly with spaces ("trained tokens").
_NOTE_KV = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_ ]{0,40}?)\s*=\s*(.+?)\s*$")


@dataclass(frozen=True, kw_only=True, slots=True)
class PublishedRow:
    """One published figure with the run that produced it. Empty cells are None (not published)."""

    id: str
    source: str
    source_ref: str
    year: int | None
    task: str  # "train" | "infer" | "micro" | "finetune-lora" | "finetune-qlora"
    model: str
    params_b: float | None
    layers: int | None
    hidden: int | None
    heads: int | None
    kv_heads: int | None
    ffn: int | None
    vocab: int | None
    seq_len: int | None
    moe_experts: int | None
    moe_topk: int | None
    hardware: str
    chips: int | None
    dp: int | None
    tp: int | None
    pp: int | None
    vp: int | None
    cp: int | None
    ep: int | None
    zero_or_fsdp: str
    micro_batch: int | None
    global_batch: int | None
    recompute: str
    precision: str
    metric: str
    value: float
    unit: str
    notes: str
    # `key=value` pairs from `notes` (keys lower-case, spaces as "_"), and the free-text remainder.
    note_values: Mapping[str, str] = field(default_factory=dict)
    remarks: tuple[str, ...] = ()

    def note_number(self, key: str) -> float | None:
        """A numeric note (`mfu=41%` -> 41.0, `GA=32` -> 32.0); None when absent or not numeric."""
        raw = self.note_values.get(key)
        if raw is None:
            return None
        match = re.match(r"^\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)", raw)
        return float(match.group(1)) if match else None


def parse_notes(notes: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """Split a notes cell on ';' (outside parentheses) into `key=value` pairs and free-text remarks.

    A segment whose text before the first '=' is a short identifier (`GA=32`, `trained tokens=...`)
    is a pair; anything else (`arch: maxtext ...`, `44% of 312 TF peak`) is a remark. Later pairs
    with the same key keep the first value (sources put the primary figure first).
    """
    values: dict[str, str] = {}
    remarks: list[str] = []
    for segment in _split_outside_parentheses(notes):
        segment = segment.strip()
        if not segment:
            continue
        match = _NOTE_KV.match(segment)
        if match and "(" not in match.group(1):
            key = match.group(1).strip().lower().replace(" ", "_")
            values.setdefault(key, match.group(2))
        else:
            remarks.append(segment)
    return values, tuple(remarks)


def _split_outside_parentheses(text: str) -> list[str]:
    """Split on ';' except inside parentheses (`arch: ... (MLA; 3 dense layers)` stays whole)."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == ";" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _int(row_id: str, column: str, raw: str) -> int | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"{row_id}.{column}", raw, "must be an integer or empty") from None
    if value != int(value):
        raise InputError(f"{row_id}.{column}", raw, "must be a whole number")
    return int(value)


def _float(row_id: str, column: str, raw: str) -> float | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise InputError(f"{row_id}.{column}", raw, "must be a number or empty") from None


def parse_row(cells: Mapping[str, str]) -> PublishedRow:
    row_id = cells["id"].strip()
    one_of(f"{row_id}.task", cells["task"], _TASKS)
    value = _float(row_id, "value", cells["value"])
    if value is None or value <= 0:
        raise InputError(f"{row_id}.value", cells["value"], "must be a positive number")
    kw: dict[str, object] = {c: cells[c].strip() for c in COLUMNS}
    for column in _INT_COLUMNS:
        kw[column] = _int(row_id, column, cells[column])
    kw["params_b"] = _float(row_id, "params_b", cells["params_b"])
    kw["value"] = value
    note_values, remarks = parse_notes(cells["notes"])
    return PublishedRow(**kw, note_values=note_values, remarks=remarks)  # type: ignore[arg-type]


def read_csv(path: Path | str) -> tuple[PublishedRow, ...]:
    """Rows of a published-results CSV with the documented columns (validated, ids unique)."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError("columns", ",".join(missing), f"missing from {path}")
        rows = tuple(parse_row(cells) for cells in reader)
    seen: set[str] = set()
    for row in rows:
        if row.id in seen:
            raise InputError("id", row.id, f"appears more than once in {path}")
        seen.add(row.id)
    return rows


@lru_cache(maxsize=1)
def _files() -> tuple[tuple[str, tuple[PublishedRow, ...]], ...]:
    out = []
    seen: dict[str, str] = {}
    for name in DATA_FILES:
        path = resources.files("twofold.validate") / "data" / name
        with resources.as_file(path) as real_path:
            rows = read_csv(real_path)
        for row in rows:
            if row.id in seen:
                raise InputError("id", row.id, f"appears in both {seen[row.id]} and {name}")
            seen[row.id] = name
        out.append((name, rows))
    return tuple(out)


@lru_cache(maxsize=1)
def load_rows() -> tuple[PublishedRow, ...]:
    """The shipped dataset: the rows of every file of `DATA_FILES`, in file order (ids unique)."""
    return tuple(row for _, rows in _files() for row in rows)


def row_file(row_id: str) -> str:
    """The shipped file (a name of `DATA_FILES`) that row `row_id` comes from."""
    for name, rows in _files():
        if any(row.id == row_id for row in rows):
            return name
    raise InputError("id", row_id, "is not a row of the shipped files")
