"""What `compare` is asked: its modes and defaults (chip count, workload), the unit an imported
model is counted in, the reference chip, the deadline, and each target's budget in the `same-cost`
and `same-power` modes (chip counts that budget buys). Orchestration is `compare.compare`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from twofold.compare.plans import Target
from twofold.errors import InputError
from twofold.parallel.layout import TrainingWorkload
from twofold.workload.imported import ImportedModel
from twofold.workload.model import ModelConfig

MODES: tuple[str, ...] = ("chips", "same-cost", "same-power")
DEFAULT_CHIPS = 64
# 4M tokens per step: Llama 2's pretraining batch (Touvron et al. 2023, "Llama 2", section 2.2).
DEFAULT_WORKLOAD = TrainingWorkload(global_batch=1024, seq_len=4096, precision="bf16")


def throughput_unit(model: ModelConfig | ImportedModel) -> str:
    """ "samples" for an imported model without a token input, else "tokens"."""
    return "tokens" if model.counts_tokens else "samples"


def _candidate_counts(tgt: Target, budget_chips: float) -> list[int]:
    """Chip counts to try for a budget worth `budget_chips` chips: whole nodes first, then
    node_chips * 2^k (counts with odd factors often admit no layout), never above max_chips."""
    n_max = math.floor(budget_chips + 1e-9)
    if tgt.system.max_chips is not None:
        n_max = min(n_max, tgt.system.max_chips)
    node = max(tgt.system.node_chips, 1)
    if n_max < 1:
        return []
    if n_max < node:
        return [1 << (n_max.bit_length() - 1)]
    power = node
    while power * 2 <= n_max:
        power *= 2
    return list(dict.fromkeys([n_max // node * node, power]))


def _check_deadline(model: ModelConfig | ImportedModel, deadline_s: float, tokens: float | None) -> float:
    """A deadline needs a token budget given (not the 20 x params default) and a catalog model."""
    from twofold.search.deadline import parse_deadline

    seconds = parse_deadline(deadline_s)
    if isinstance(model, ImportedModel):
        raise InputError("deadline", deadline_s, "applies to catalog models and config.json files")
    if tokens is None:
        raise InputError("tokens", None, "a deadline needs a token budget: --tokens N")
    return seconds


def _price_kind(targets: Sequence[Target]) -> str:
    """The price kind of the comparison; targets built with different kinds list them all."""
    return ",".join(dict.fromkeys(t.price.kind for t in targets))


def _resolve_reference(reference: str, targets: Sequence[Target]) -> str:
    labels = [t.label for t in targets]
    if reference in labels:
        return reference
    from twofold.hardware.catalog import get_chip

    chip_id = get_chip(reference).id
    if chip_id not in labels:
        raise InputError("reference", reference, f"must be one of the compared chips: {', '.join(labels)}")
    return chip_id


def _budget_name(mode: str) -> str:
    return "price" if mode == "same-cost" else "TDP"


def _budget_of(mode: str, ref: Target) -> str | None:
    if mode == "chips":
        return None
    value = ref.price.usd_per_chip_hour if mode == "same-cost" else ref.power.tdp_w
    if value is None:
        flag = "--price" if mode == "same-cost" else "--power"
        name = f"{ref.price.kind} price" if mode == "same-cost" else _budget_name(mode)
        raise InputError(
            "reference",
            ref.label,
            f"{name} unknown, so {mode} has no budget; pass {flag} {ref.label}=...",
        )
    return mode


def _budget_ratio(mode: str | None, ref: Target, tgt: Target) -> float | None:
    """Budget units of the reference per chip of `tgt`: price_ref/price_X or TDP_ref/TDP_X."""
    if mode == "same-cost":
        a, b = tgt.price.usd_per_chip_hour, ref.price.usd_per_chip_hour
    else:
        a, b = tgt.power.tdp_w, ref.power.tdp_w
    return None if a is None or b is None else b / a
