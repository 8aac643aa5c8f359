"""The rules of `validate/data/mapping.yaml` and the lookups every step of `validate.mapping` shares:
a row's hardware entry and family, its source's conventions, its software stack and its precision.
A spelling mapping.yaml does not list is read from the text (`validate.reading`). A step that
cannot express a row raises `NotExpressible` with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from twofold import yaml_strict
from twofold.validate.dataset import PublishedRow
from twofold.validate.reading import read_hardware, read_precision, read_stack

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
# Runtime variants a row's notes can select besides (`validate.reading`; `cost.stack.RUNTIME_SUFFIXES`);
# no shipped row runs one.
VARIANT_STACKS = ("torchtitan-eager", "megatron-compile", "nanotron-compile", "deepspeed-compile")


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
    """The software stack the row ran, one of `STACKS` (or `VARIANT_STACKS`): the first mapping.yaml
    rule that matches; else the framework the row's notes or source name
    (`validate.reading.read_stack`); else "other"."""
    return _stack_and_reading(row)[0]


def _stack_and_reading(row: PublishedRow) -> tuple[str, str | None]:
    """(`row_stack`, why the text was read so) - the reason is None when a mapping.yaml rule
    decided or nothing did."""
    rule = stack_rule(row)
    if rule:
        return str(rule["stack"]), None
    read = read_stack(row.notes, row.source)
    return (read[0], read[1]) if read else ("other", None)


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


def _source_caveats(row: PublishedRow) -> list[str]:
    out = []
    for rule in mapping_data().get("caveats", ()):
        if re.search(rule["source"], row.source) and (
            not rule.get("notes") or re.search(rule["notes"], row.notes)
        ):
            out.append(str(rule["text"]))
    return out
