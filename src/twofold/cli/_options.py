"""The flags the verbs share, defined once, and the parsers of their values.

One definition of each shared option and default (a help text or a default cannot drift between
verbs) and one parser of each kind of value: token and sample budgets, chip lists, CHIP=VALUE
overrides, price kinds and grades, fine-tuning flags, the training workload, ONNX inputs. Bad values
raise `InputError` (exit 2) before any model is loaded or planned. Verb modules import this module
and `cli._render`, never each other. No rendering here.
"""

from __future__ import annotations

import math
from typing import Any

import typer

from twofold.checks import one_of, positive_ints
from twofold.errors import InputError
from twofold.outputs import check_output_path

__all__ = [
    "BASE_PRECISION_OPTION",
    "DEFAULT_GLOBAL_BATCH",
    "DEFAULT_SEQ_LEN",
    "FINETUNE_HELP",
    "FINETUNE_OPTION",
    "GLOBAL_BATCH_HELP",
    "HEADROOM_HELP",
    "IDLE_HELP",
    "LORA_RANK_OPTION",
    "LORA_TARGETS_OPTION",
    "MIN_QUALITY_OPTION",
    "POWER_OPTION",
    "PRICE_KIND_OPTION",
    "PRICE_OPTION",
    "SERVING_DEFAULTS",
    "SHAPE_OPTION",
    "STACK_HELP",
    "check_min_quality",
    "check_out",
    "check_price_kind",
    "check_stack",
    "chip_list",
    "chip_overrides",
    "finetune_of",
    "headroom",
    "load_cli_model",
    "parse_budget",
    "parse_tokens",
    "refuse_serving_flags",
    "resolve_dp",
    "resolve_model",
    "search_bounds",
    "training_workload",
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

# The serving flags' defaults, applied only with --infer (None marks "not given" without it).
SERVING_DEFAULTS = {"batch": 1, "input_tokens": 1024, "output_tokens": 256}

STACK_HELP = (
    "Software stack: megatron, torchtitan, fsdp, fsdp-compile, deepspeed, maxtext, neuronx, nanotron, "
    "a YAML file, or auto (each chip vendor's reference stack); ID-eager / ID-compile switch "
    "torch.compile, ID@YEAR is the stack as it ran that year (megatron@2021: no FlashAttention), "
    "ID+MECHANISM=VALUE sets a mechanism (fsdp+attention_kernel=flash-triton). "
    "`twofold stacks` lists them."
)
HEADROOM_HELP = "Fraction of the chip's memory kept free: fit within capacity x (1 - this); default 0.05."

# The economics flags of compare, claim and report. List options as module-level singletons (a call
# in an argument default is flagged by B008).
_PRICE_HELP = "USD per chip-hour for a chip, CHIP=USD (repeat or comma-separate); overrides the catalog."
_POWER_HELP = "Maximum (TDP) power of a chip in watts, CHIP=W (repeat or comma-separate)."
IDLE_HELP = "Idle power as a fraction of TDP for every chip (default: catalog idle, else 0.2, an assumption)."
PRICE_OPTION = typer.Option(None, "--price", help=_PRICE_HELP)
_PRICE_KIND_HELP = (
    "Which published price: on-demand, capacity-block (AWS EC2 Capacity Blocks), spot, committed-1y "
    "or committed-3y; a chip "
    "without one is unknown (never priced at another kind). --price wins."
)
PRICE_KIND_OPTION = typer.Option("on-demand", "--price-kind", help=_PRICE_KIND_HELP)
_MIN_QUALITY_HELP = (
    "Use only catalog prices of this grade or better (A vendor-derived, B reputable secondary, C single "
    "third-party value); a weaker price is unknown, never replaced by another."
)
MIN_QUALITY_OPTION = typer.Option(None, "--min-quality", help=_MIN_QUALITY_HELP)
POWER_OPTION = typer.Option(None, "--power", help=_POWER_HELP)
SHAPE_OPTION = typer.Option(
    None, "--input-shape", help="MODEL.onnx: shape of a dynamic input, NAME=8x3x224x224 (repeatable)."
)

_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12, "p": 1e15}


def finetune_of(finetune: str, lora_rank: int, lora_targets: str, base_precision: str | None) -> Any:
    """The `Finetune` of the flags (None for full training); bad values exit 2 naming the flag."""
    from twofold.workload.finetune import finetune_from_flags  # lazy: start-up time

    return finetune_from_flags(finetune, rank=lora_rank, targets=lora_targets, base_precision=base_precision)


def refuse_serving_flags(**flags: object) -> None:
    """A serving flag given without --infer (any value but None) is a mistake, not ignored: the
    training estimate would run and silently drop it (the mirror of `refuse_training_flags`)."""
    for name, value in flags.items():
        if value is not None:
            raise InputError(
                name, value, "is a serving flag: add --infer (without it, twofold prices a training step)"
            )


def check_stack(stack: str) -> str | None:
    """Validate a --stack value early (exit 2 on an unknown id or a bad file); None for `auto`."""
    if stack == "auto":
        return None
    from twofold.cost.stack import get_stack  # lazy: start-up time

    get_stack(stack)
    return stack


def parse_tokens(text: str | None) -> float | None:
    """A token count: a number (2e12) or one with a suffix k, M, B/G, T, P (2T)."""
    return None if text is None else parse_budget(text, "tokens")


def parse_budget(text: str, field: str) -> float:
    """A count of `field` (tokens, samples): a number or one with a suffix k, M, B/G, T, P."""
    raw = text.strip().lower().replace("_", "").replace(",", "")
    scale = _SUFFIX.get(raw[-1:], 1.0) if raw else 1.0
    number = raw[:-1] if raw[-1:] in _SUFFIX else raw
    try:
        value = float(number) * scale
    except ValueError:
        raise InputError(field, text, f"must be a number of {field}, e.g. 2e12 or 2T") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(field, text, f"must be a positive number of {field}")
    return value


def chip_overrides(
    prices: list[str] | None, powers: list[str] | None
) -> tuple[dict[str, float], dict[str, float]]:
    """(USD per chip-hour, TDP watts) by chip of `--price CHIP=USD` and `--power CHIP=W`."""
    from twofold.economics.prices import parse_chip_values  # lazy: start-up time

    return parse_chip_values(prices or [], "price", "USD per chip-hour"), parse_chip_values(
        powers or [], "power", "W"
    )


def check_price_kind(kind: str) -> None:
    """Fail on a bad --price-kind before any model is loaded or planned."""
    from twofold.economics.prices import PRICE_KINDS  # lazy: start-up time

    one_of("price_kind", kind, PRICE_KINDS)


def check_min_quality(value: str | None) -> str | None:
    """Fail on a bad --min-quality before any model is loaded or planned."""
    from twofold.economics.prices import check_min_quality as check  # lazy: start-up time

    return check(value)


def training_workload(global_batch: int, seq_len: int, precision: str, finetune: Any = None) -> Any:
    """The `TrainingWorkload` of --global-batch, --seq-len, --precision (and --finetune), validated."""
    from twofold.hardware.types import PRECISIONS  # lazy: start-up time
    from twofold.parallel.layout import TrainingWorkload  # lazy: start-up time

    positive_ints(global_batch=global_batch, seq_len=seq_len)
    one_of("precision", precision, PRECISIONS)
    return TrainingWorkload(
        global_batch=global_batch, seq_len=seq_len, precision=precision, finetune=finetune
    )


def chip_list(on: str) -> list[str]:
    """The chips of `--on trn2,h100,tpu-v5p` (names as given; the catalog checks them)."""
    names = [n.strip() for n in on.split(",") if n.strip()]
    if not names:
        raise InputError("on", on, "must list chips, e.g. trn2,h100,tpu-v5p")
    return names


def check_out(path: str) -> None:
    """Fail on a bad output path (`twofold.outputs`) before minutes of planning, not after."""
    check_output_path(path)


def search_bounds(**bounds: int | None) -> Any:
    """`EnumerateOptions` with the given bounds (None when none is given), validated."""
    from twofold.search.enumerate import EnumerateOptions  # lazy: start-up time

    positive_ints(**bounds)
    given: dict[str, Any] = {k: v for k, v in bounds.items() if v is not None}
    return EnumerateOptions(**given) if given else None


def resolve_dp(chips: int | None, dp: int | None, tp: int, pp: int, cp: int) -> tuple[int, int | None]:
    """(dp, chips to check against): dp from --chips when not given; both given must agree."""
    positive_ints(chips=chips, dp=dp, tp=tp, pp=pp, cp=cp)
    model_parallel = tp * pp * cp
    if dp is None:
        if chips is None:
            return 1, None
        if chips % model_parallel:
            raise InputError("chips", chips, f"is not divisible by tp*pp*cp={model_parallel}")
        return chips // model_parallel, chips
    return dp, chips


def headroom(mem_headroom: float | None) -> float:
    """--mem-headroom, or the default (`parallel.memory.DEFAULT_MEM_HEADROOM`), validated."""
    from twofold.parallel.memory import DEFAULT_MEM_HEADROOM, usable_memory_bytes  # lazy: start-up time

    value = DEFAULT_MEM_HEADROOM if mem_headroom is None else mem_headroom
    usable_memory_bytes(1.0, value)  # InputError (exit 2) unless 0 <= headroom < 1
    return value


def load_cli_model(name: str, input_shape: list[str] | None, precision: str, seq_len: int) -> tuple[Any, int]:
    """(model, seq_len) of `--model` for every training verb, by `frontends.load_model`: a catalog
    id, a config.json, MODEL.onnx with its `--input-shape NAME=8x3x224x224` flags, or
    torch:module:factory. A model recorded at a sequence length (an imported one) trains at it: a
    different --seq-len is refused, and a model without tokens counts samples at seq_len 1."""
    from twofold.frontends import load_model, parse_input_shapes  # lazy: start-up time

    model = load_model(name, input_shapes=parse_input_shapes(input_shape or []), precision=precision)
    fixed = model.fixed_seq_len
    if model.counts_tokens and fixed is None:
        return model, seq_len
    if seq_len != DEFAULT_SEQ_LEN and seq_len != fixed:
        raise InputError("seq_len", seq_len, f"is fixed by the input shapes ({fixed}) for an imported model")
    return model, fixed or 1


def resolve_model(
    name: str,
    input_shape: list[str] | None,
    samples: str | None,
    tokens: str | None,
    *,
    global_batch: int,
    seq_len: int,
    precision: str,
    finetune: Any = None,
) -> tuple[Any, Any, dict[str, Any]]:
    """(model, workload, budget) of `compare` / `report`: the model of `load_cli_model` at its
    sequence length; `--samples` only for a model without tokens (an ONNX CNN). `finetune`
    (`--finetune`): a LoRA/QLoRA workload, catalog models only (the estimator refuses the others)."""
    budget: dict[str, Any] = {"tokens": parse_tokens(tokens)}
    model, seq = load_cli_model(name, input_shape, precision, seq_len)
    if samples is not None:
        if model.counts_tokens:
            raise InputError(
                "samples", samples, f"applies to an ONNX model without tokens; {name} counts tokens"
            )
        budget["samples"] = parse_budget(samples, "samples")
    return model, training_workload(global_batch, seq, precision, finetune), budget
