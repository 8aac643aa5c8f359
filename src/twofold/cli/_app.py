"""The typer application and the rendering helpers every verb shares."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import typer

__all__ = [
    "BASE_PRECISION_OPTION",
    "DEFAULT_GLOBAL_BATCH",
    "DEFAULT_SEQ_LEN",
    "FINETUNE_HELP",
    "FINETUNE_OPTION",
    "GLOBAL_BATCH_HELP",
    "LORA_RANK_OPTION",
    "LORA_TARGETS_OPTION",
    "SERVING_DEFAULTS",
    "STACK_HELP",
    "app",
    "check_stack",
    "console",
    "emit_json",
    "finetune_label",
    "finetune_of",
    "refuse_serving_flags",
]

# One default training workload for every verb (estimate, plan, compare, report): 1024 sequences
# of 4096 tokens, 4M tokens per step, Llama 2's pretraining batch (Touvron et al. 2023, "Llama 2",
# section 2.2: "global batch-size of 4M tokens"). `compare.DEFAULT_WORKLOAD` and the sweep spec's
# default `global_batches` are the same figures.
DEFAULT_GLOBAL_BATCH = 1024
DEFAULT_SEQ_LEN = 4096
GLOBAL_BATCH_HELP = (
    f"Sequences per step (default {DEFAULT_GLOBAL_BATCH}, the same in estimate, plan and compare: "
    f"4M tokens at --seq-len {DEFAULT_SEQ_LEN}, whatever --micro-batch is)."
)

# --finetune and its companions (`workload.finetune`), the same on estimate, plan and sweep specs.
FINETUNE_HELP = {
    "finetune": "full (every weight trained), lora or qlora (frozen base, low-rank adapters).",
    "lora_rank": "--finetune lora/qlora: adapter rank r.",
    "lora_targets": "--finetune lora/qlora: attention, attention-mlp or all (+ LM head).",
    "base_precision": "--finetune lora/qlora: base weights bf16, fp8, nf4 or int8 (qlora default nf4).",
}

# The same four options on every verb that takes them (estimate, plan, compare, claim): one
# definition, so a default or a help text cannot drift between verbs; `finetune_of` validates them.
FINETUNE_OPTION = typer.Option("full", "--finetune", help=FINETUNE_HELP["finetune"])
LORA_RANK_OPTION = typer.Option(16, "--lora-rank", help=FINETUNE_HELP["lora_rank"])
LORA_TARGETS_OPTION = typer.Option("attention-mlp", "--lora-targets", help=FINETUNE_HELP["lora_targets"])
BASE_PRECISION_OPTION = typer.Option(None, "--base-precision", help=FINETUNE_HELP["base_precision"])


def finetune_of(finetune: str, lora_rank: int, lora_targets: str, base_precision: str | None) -> Any:
    """The `Finetune` of the flags (None for full training); bad values exit 2 naming the flag."""
    from twofold.workload.finetune import finetune_from_flags

    return finetune_from_flags(finetune, rank=lora_rank, targets=lora_targets, base_precision=base_precision)


def finetune_label(workload: dict[str, Any]) -> str:
    """`, lora r=16 attention-mlp, base nf4` for a fine-tuning run's workload; empty for full training."""
    ft = workload.get("finetune")
    if not ft:
        return ""
    return f", {ft['method']} r={ft['rank']} {ft['targets']}, base {ft['base_precision']}"


# The serving flags' defaults, applied only with --infer (None marks "not given" without it).
SERVING_DEFAULTS = {"batch": 1, "input_tokens": 1024, "output_tokens": 256}


def refuse_serving_flags(**flags: object) -> None:
    """A serving flag given without --infer (any value but None) is a mistake, not ignored: the
    training estimate would run and silently drop it (the mirror of `refuse_training_flags`)."""
    from twofold.errors import InputError

    for name, value in flags.items():
        if value is not None:
            raise InputError(
                name, value, "is a serving flag: add --infer (without it, twofold prices a training step)"
            )


STACK_HELP = (
    "Software stack: megatron, torchtitan, fsdp, fsdp-compile, deepspeed, maxtext, neuronx, nanotron, "
    "a YAML file, or auto (each chip vendor's reference stack). `twofold stacks` lists them."
)


def check_stack(stack: str) -> str | None:
    """Validate a --stack value early (exit 2 on an unknown id or a bad file); None for `auto`."""
    if stack == "auto":
        return None
    from twofold.cost.stack import get_stack

    get_stack(stack)
    return stack


app = typer.Typer(
    name="twofold",
    help="Predict, measure and compare deep-learning training and inference across AI accelerators.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _clean(obj: Any) -> Any:
    """JSON-safe copy: tuples to lists, non-finite floats to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and callable(obj.item):  # NumPy scalars
        return _clean(obj.item())
    return obj


def emit_json(data: Any) -> None:
    """Print one JSON document to stdout, nothing else."""
    sys.stdout.write(json.dumps(_clean(data), indent=2) + "\n")


def console():  # noqa: ANN201 - rich is imported lazily
    from rich.console import Console

    return Console()
