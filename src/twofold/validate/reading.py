"""Reading a published row that the curated mapping has never seen.

`validate/data/mapping.yaml` maps the exact spellings of the shipped results files (hardware text,
precision, recompute mode, model name, source) onto twofold's objects, each with its reason. A row
from anywhere else (a team's own held-out rows given to `twofold validate --data`, a new results
file) spells the same facts differently: "NVIDIA H100 80GB HBM3", "bf16 mixed precision",
"activation checkpointing", "stack=torchtitan (FSDP2, torch.compile)". Refusing such a row would
make every held-out check measure the spelling, not the model. The readers here interpret the text
by rules a reader can check, and every interpretation becomes a caveat on the row:

- hardware: a chip named in the text by a catalog id or alias ("H100", "MI300X", "Trillium",
  "trn2") or by a product phrase ("Gaudi 2", "RTX 4090", "A100 PCIe", "GH200", "H100 PCIe", "H100
  NVL", "H800"); a form factor counts only written next to the H100 ("H100 PCIe", "H100-PCIE-80GB",
  "H100 94GB NVL"), and a text naming an H100 and PCIe/NVL apart ("H100 SXM5 (PCIe Gen5 host)") is
  refused rather than guessed; variants the catalog does not hold (H800 PCIe, other GeForce/RTX
  cards) are refused by name rather than read as their SXM sibling;
- precision: the number format named in the text (NVFP4/FP4, MXFP8, FP8, BF16, FP16, FP32);
- recompute: none / selective / full from the usual words ("activation checkpointing",
  "gradient checkpointing", "remat", "selective");
- software stack: the framework named in the notes or source (torchtitan, Megatron/NeMo, DeepSpeed,
  MaxText/JAX, nanotron, Neuron, PyTorch FSDP with or without torch.compile);
- model: a catalog id matched after dropping case and punctuation ("Llama-3.1-8B" -> llama3.1-8b).

Each reader returns None when the text does not decide; the caller then keeps refusing the row,
with the reason. The shipped rows are the test: on every shipped spelling that the curated mapping
decides, the reader must agree with it (tests/validate/test_validate_reading.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from twofold.cost.stack import get_stack

__all__ = [
    "HardwareReading",
    "read_hardware",
    "read_metric",
    "read_model_id",
    "read_precision",
    "read_recompute",
    "read_flop_convention",
    "read_stack",
    "read_stated_mechanisms",
    "read_stated_peak_memory_gib",
    "stated_runtime",
]


@dataclass(frozen=True, slots=True)
class HardwareReading:
    """What a hardware text names: a catalog chip (and family label), or why it cannot be one."""

    chip: str | None
    family: str
    reason: str | None = None
    cores_per_chip: int = 1


# An H100 form factor written next to the chip ("H100 PCIe", "H100-PCIE-80GB", "H100 94GB NVL"); a
# digit right after NVL is a rack ("NVL72"), not the card.
_H100_FORM = r"[\s-]*(?:\d+\s*gb[\s-]*)?(pcie|nvl)\b"


def _hopper_parts(low: str) -> set[str]:
    """The H100/H800 parts a lower-case text names: each "h100" read with the form factor written
    next to it (h100-pcie, h100-nvl, else h100), and h800."""
    parts = set()
    for match in re.finditer(r"\bh100\b", low):
        form = re.match(_H100_FORM, low[match.end() :])
        parts.add(f"h100-{form.group(1)}" if form else "h100")
    if re.search(r"\bh800\b", low):
        parts.add("h800")
    return parts


# Parts the catalog does not hold, refused by name: (pattern, family label, reason). Checked before
# the catalog aliases so that an H100 named apart from "PCIe" is never read as the SXM part.
_REFUSED: tuple[tuple[str, str, str], ...] = (
    (
        r"\bh800\b.*\bpcie\b|\bpcie\b.*\bh800\b",
        "NVIDIA Hopper",
        "H800 PCIe (the China-market H100 PCIe) is not in the catalog",
    ),
    (
        r"\bh200[\s-]*(?:\d+\s*gb[\s-]*)?nvl\b",
        "NVIDIA Hopper",
        "H200 NVL (a 600 W PCIe card, not the H200 SXM) is not in the catalog",
    ),
    (
        r"\ba800\b.*\bpcie\b|\bpcie\b.*\ba800\b",
        "NVIDIA Ampere",
        "A800 PCIe (the China-market A100 PCIe) is not in the catalog",
    ),
    # "H100" and "PCIe"/"NVL" named apart (the H100 PCIe/NVL card, or an SXM part's PCIe host link);
    # a text naming two H100 parts was refused before (`_hopper_parts`).
    (
        rf"\bh100\b(?!{_H100_FORM}).*\b(pcie|nvl)\b(?!\s*\d)"
        rf"|\b(pcie|nvl)\b(?!\s*\d).*\bh100\b(?!{_H100_FORM})",
        "NVIDIA Hopper",
        "the text names an H100 and PCIe/NVL apart: the H100 PCIe or NVL card, or an SXM part's host link",
    ),
    (r"\bmi250\b(?!x)", "AMD Instinct", "MI250 (not MI250X: fewer CUs, lower clocks) is not in the catalog"),
    (
        r"\bgaudi\b(?!\s*-?[23]\b)|\bgaudi\s*-?1\b",
        "Intel Gaudi",
        "the text does not name a Gaudi generation the catalog holds (Gaudi 2 or Gaudi 3)",
    ),
    (
        r"\b(?:rtx|geforce)\b(?!.*\b(?:4090|a6000)\b)",
        "NVIDIA (workstation)",
        "workstation and consumer GPUs other than the RTX 4090 and RTX A6000 are not in the catalog",
    ),
    (r"variant not stated", "unknown", "the text does not say which variant of the chip"),
)

# Words that name a chip but are not catalog aliases on their own.
_PHRASES: tuple[tuple[str, str], ...] = (
    (r"\bgh200\b|\bgrace\s*hopper\b", "gh200"),
    (r"\ba100\b.*\bpcie\b|\bpcie\b.*\ba100\b", "a100-pcie"),
    (r"\ba800\b", "a800"),
    (r"\bh800\b", "h800"),
    (r"\bh100[\s-]*(?:\d+\s*gb[\s-]*)?pcie\b", "h100-pcie"),
    (r"\bh100[\s-]*(?:\d+\s*gb[\s-]*)?nvl\b", "h100-nvl"),
    (r"\brtx\s*4090\b", "rtx-4090"),
    (r"\brtx\s*a6000\b", "rtx-a6000"),
    (r"\bmi250x\b", "mi250x"),
    (r"\bgaudi\s*-?3\b", "gaudi3"),
    (r"\bgaudi\s*-?2\b", "gaudi2"),
    (r"\btpu\s*v?7x?\b|\bironwood\b", "tpu-v7"),
    (r"\btpu\s*v?6e?\b|\btrillium\b", "tpu-v6e"),
    (r"\btpu\s*v?5p\b", "tpu-v5p"),
    (r"\btpu\s*v?5\s*(e|lite)\b|\bv5litepod\b", "tpu-v5e"),
    (r"\btpu\s*v?4\b", "tpu-v4"),
    (r"\btrainium\s*3\b|\btrn3\b", "trn3"),
    (r"\btrainium\s*2\b|\btrn2\b", "trn2"),
    (r"\btrainium\s*1?\b|\btrn1n?\b", "trn1"),
    (r"\binferentia\s*2\b|\binf2\b", "inf2"),
)

# NeuronCores per chip as AWS counts them in layouts: Trainium1 and Inferentia2 have 2; Trainium2
# runs 4 logical cores under LNC=2 (the default: AWS Neuron docs, "Logical NeuronCore configuration").
_NEURON_CORES = {"trn1": 2, "inf2": 2, "trn2": 4}


def _family_label(chip_id: str) -> str:
    from twofold.cost.calibration import shipped_calibration

    return shipped_calibration().family(chip_id) or "unknown"


@cache
def _alias_index() -> Mapping[str, str]:
    """Catalog ids and aliases (lower case) -> chip id."""
    from twofold.hardware.catalog import list_chips

    out: dict[str, str] = {}
    for chip in list_chips():
        for name in (chip.id, *chip.aliases):
            out[name.lower()] = chip.id
    return out


def read_hardware(text: str) -> HardwareReading | None:
    """The catalog chip a hardware text names, a refusal naming the part, or None (rules above)."""
    low = re.sub(r"\((?:r|tm)\)|[\u00ae\u2122]", "", text.lower())  # "Intel(R) Gaudi(R) 2" -> "intel gaudi 2"
    hopper = _hopper_parts(low)
    if len(hopper) > 1:  # "H100 SXM vs H100 PCIe", "H100 and H800"
        return HardwareReading(
            chip=None,
            family="NVIDIA Hopper",
            reason=f"the text names more than one chip ({', '.join(sorted(hopper))})",
        )
    for pattern, family, reason in _REFUSED:
        if re.search(pattern, low):
            return HardwareReading(chip=None, family=family, reason=reason)
    named = [chip_id for pattern, chip_id in _PHRASES if re.search(pattern, low)]
    if named:
        first = named[0]
        return HardwareReading(
            chip=first, family=_family_label(first), cores_per_chip=_NEURON_CORES.get(first, 1)
        )
    index = _alias_index()
    found: list[str] = []
    for word in re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", low):
        chip_id = index.get(word)
        if chip_id is None and "-" in word:  # "h100-sxm5-80gb": the first part
            chip_id = index.get(word.split("-")[0])
        if chip_id is None or chip_id.startswith("tpu-") and "tpu" not in low:
            continue
        if chip_id == "a100" and re.search(r"\b40\s*gb\b|-40gb\b", low) and "assum" not in low:
            chip_id = "a100-40gb"
        if chip_id not in found:
            found.append(chip_id)
    if len(found) > 1:
        return HardwareReading(
            chip=None,
            family=_family_label(found[0]),
            reason=f"the text names more than one chip ({', '.join(found)})",
        )
    if found:
        return HardwareReading(chip=found[0], family=_family_label(found[0]))
    return None


_PRECISIONS: tuple[tuple[str, str], ...] = (
    (r"nvfp4|mxfp4|\bfp4\b", "fp4"),
    (r"mxfp8|fp8[-_ ]?mx", "mxfp8"),
    (r"\bfp8|float8|e4m3", "fp8"),
    (r"\bint8\b", "int8"),
    (r"\bbf16|bfloat16", "bf16"),
    (r"\bfp16\b|float16|\bhalf\b", "fp16"),
    (r"\bfp32\b|float32|\btf32\b", "fp32"),
)


def read_precision(text: str) -> str | None:
    """The training number format a precision text names. The format the matmuls run in decides
    ("FP16 model, BF16 matmul" is BF16; "int8 (AQT) matmuls, BF16" is int8); a format the weights
    were converted from does not ("BF16 (dequantized from MXFP4)" is BF16); parenthesised remarks
    count only when the text outside them names nothing; "not stated" is no answer."""
    low = text.lower()
    if re.search(r"not stated|not published|not named|unknown", low):
        return None
    low = re.sub(r"(de)?quanti[sz]ed from \S+", " ", low)
    matmul = re.search(r"([a-z0-9]+)(?:\s*\([^)]*\))?\s+matmuls?\b", low)
    outside = re.sub(r"\([^)]*\)", " ", low)
    for candidate in ((matmul.group(1),) if matmul else ()) + (outside, low):
        for pattern, value in _PRECISIONS:
            if re.search(pattern, candidate):
                return value
    return None


def read_recompute(text: str) -> str | None:
    """none / selective / full from a recompute text, or None (host offload: not modelled)."""
    low = text.strip().lower()
    if not low or re.match(r"(none|no|off|false|disabled)\b", low):
        return "none"
    if "offload" in low:
        return None
    if re.search(r"selective|minimal|save_dot|partial", low):
        return "selective"
    if re.search(r"\bfull\b|checkpoint|remat|recompute|\bon\b|\byes\b|\btrue\b", low):
        return "full"
    return None


# (pattern, stack, why): the first that matches decides. Specific frameworks come before the
# generic "FSDP" and "PyTorch" words that their descriptions also contain.
_STACK_WORDS: tuple[tuple[str, str, str], ...] = (
    (r"torchtitan|olmo-core", "torchtitan", "names torchtitan (FSDP2 + torch.compile)"),
    (r"nanotron|picotron", "nanotron", "names nanotron"),
    (r"neuron|\bnxd\b", "neuronx", "names AWS Neuron"),
    (r"deepspeed|colossal", "deepspeed", "names DeepSpeed (ZeRO)"),
    (r"maxtext|\bjax\b|\bxla\b|\bpax\b|easylm|maxdiffusion", "maxtext", "names a JAX/XLA stack"),
    (r"megatron|\bnemo\b|primus", "megatron", "names Megatron-LM / NeMo"),
    (
        r"fsdp|pytorch|torchtune|accelerate|lightning|litgpt|hugging\s*face|\bddp\b",
        "fsdp",
        "names PyTorch (FSDP/DDP)",
    ),
)
_COMPILED = r"torch\.?compile\s*[=:]?\s*(yes|on|true)\b|torch\.compile\b(?!\s*[=:]?\s*(no|off|false|not)\b)"
# What the notes state about torch.compile in a PyTorch stack whose runtime is a switch: stated off
# (torchtitan without `--compile`: `<id>-eager`) or on (a Megatron or nanotron run with it: `<id>-compile`;
# `cost.stack.RUNTIME_SUFFIXES`). "not stated" says nothing.
_COMPILE_OFF = (
    r"torch\.?compile\s*[=:]?\s*(no|off|false|not used|disabled)\b|without torch\.?compile|\beager mode\b"
)
_COMPILE_ON = r"torch\.?compile\s*[=:]?\s*(yes|on|true|enabled)\b|compile_model\s*=\s*true"
_SWITCHABLE = ("torchtitan", "megatron", "nanotron", "deepspeed")


def read_stack(notes: str, source: str) -> tuple[str, str] | None:
    """(stack id, why) for the framework a row's notes or source name, or None. A `stack=...` (or
    `framework: ...`) entry in the notes is read first, on its own, then the source, then the rest
    of the notes; a PyTorch stack is `fsdp-compile` when the notes say torch.compile is on."""
    stated = re.search(r"(?:stack|framework)\s*[=:]\s*([^;]*)", notes, re.IGNORECASE)
    # "arch: maxtext src/.../llama3-8b.yml" cites where an architecture was read, not what ran.
    own_notes = re.sub(r"arch(itecture)?\s*:[^;]*", " ", notes, flags=re.IGNORECASE)
    for text in ((stated.group(1),) if stated else ()) + (source, own_notes):
        low = text.lower()
        for pattern, stack, why in _STACK_WORDS:
            if re.search(pattern, low):
                return _runtime_stated(stack, why, notes.lower())
    return None


def _runtime_stated(stack: str, why: str, notes: str) -> tuple[str, str]:
    """`stack` as the (lower-case) notes state its torch.compile: `fsdp` with it on is the
    `fsdp-compile` file; a switchable PyTorch stack takes its runtime variant when the notes state
    the other runtime than its own (`cost.stack.RUNTIME_SUFFIXES`); other stacks are as read."""
    if stack == "fsdp" and re.search(_COMPILED, notes):
        return "fsdp-compile", "names PyTorch with torch.compile on"
    if stack not in _SWITCHABLE:
        return stack, why
    compiled = not get_stack(stack).eager(None)
    if compiled and re.search(_COMPILE_OFF, notes):
        return f"{stack}-eager", f"{why}, with torch.compile off"
    if not compiled and re.search(_COMPILE_ON, notes) and not re.search(_COMPILE_OFF, notes):
        return f"{stack}-compile", f"{why}, with torch.compile on"
    return stack, why


# What a row's notes state about its attention kernel (`cost.attention.ATTENTION_KERNELS` ids),
# most specific first: the stated kernel replaces the stack's own (`read_stated_mechanisms`).
# "flash attention" without a version, and PyTorch SDPA (whose backend depends on the GPU and
# version), say nothing.
_KERNEL_WORDS: tuple[tuple[str, str], ...] = (
    (
        r"attn_impl\s*[=:]\s*triton|triton flash[- ]?attention|flash[- ]?attention[- ]?\(?triton",
        "flash-triton",
    ),
    (r"xformers", "xformers"),
    (r"flash[- _]?(attn|attention)[- _]?v?3\b|\bfa3\b", "flash3"),
    (r"flash[- _]?(attn|attention)[- _]?v?2\b|flash_attention_2|\bfa2\b", "flash2"),
    (r"flash[- _]?(attn|attention)[- _]?v?1\b|\bfa1\b", "flash1"),
    (r"cudnn (fused )?attention|cudnn sdpa", "cudnn"),
    (r"attn_impl\s*[=:]\s*torch\b|standard attention|eager attention|sdpa math|math (sdpa )?backend", "math"),
)


def read_stated_mechanisms(notes: str) -> dict[str, tuple[str, str]]:
    """{mechanism: (value, why)} for the stack mechanisms a row's notes state (the attention kernel
    for now), which replace the stack's own where they differ (`validate.predict.case_stack`)."""
    low = notes.lower()
    for pattern, kernel in _KERNEL_WORDS:
        found = re.search(pattern, low)
        if found:
            return {"attention_kernel": (kernel, f"the notes say {found.group(0)!r}")}
    return {}


# "peak memory per GPU 41.76GB" (nanotron's benchmark cells), "peak memory 30.5 GiB per GPU".
_PEAK_MEMORY = re.compile(
    r"peak memory(?: per (?:gpu|chip|device))?\s*(?:of\s*)?([0-9]+(?:\.[0-9]+)?)\s*(gib|gb)\b", re.IGNORECASE
)


def read_stated_peak_memory_gib(notes: str) -> float | None:
    """The peak memory per chip a training row's notes state, in GiB (GB read as 10^9 bytes, GiB
    as 2^30), or None. Publishers rarely say which counter they read (PyTorch's allocated or
    reserved peak, or the device's); `validate` compares it with the memory model as a check, never
    fits on it."""
    found = _PEAK_MEMORY.search(notes)
    if found is None:
        return None
    value = float(found.group(1))
    return value if found.group(2).lower() == "gib" else value * 1e9 / 2**30


# What a row's notes state about the FLOP count behind its TFLOP/s or MFU (`validate.flops`).
_SIX_N = r"\b6\s*[*x×]?\s*n(d)?\b|excluding attention|without attention flops|no attention flops"
_CAUSAL_FLOPS = r"causal[- ]attention[^;]{0,30}flop|flop[^;]{0,30}causal[- ]attention|causal[- ]flops?\b"


def read_flop_convention(notes: str) -> tuple[str, str] | None:
    """(formula of `validate.flops.SOURCE_FORMULAS`, why) for the FLOP count a row's notes state, or
    None when they state none: "6ND" / "excluding attention" is the 6N rule; attention FLOPs
    "causal" halve Megatron's (MaxText's where the notes name MaxText)."""
    low = notes.lower()
    if re.search(_SIX_N, low):
        return "6n", "the notes count 6 FLOPs per parameter per token, no attention"
    if re.search(_CAUSAL_FLOPS, low):
        formula = "maxtext_causal" if "maxtext" in low else "megatron_causal"
        return formula, "the notes count causal attention FLOPs"
    return None


def stated_runtime(stack: str, notes: str) -> str:
    """`stack` (a stack id named with `validate --stack`) as a row's notes state torch.compile: its
    runtime variant where the notes say the other runtime than the stack's own (switchable PyTorch
    stacks only; `fsdp` with compile on is the `fsdp-compile` file)."""
    return _runtime_stated(stack, "", notes.lower())[0]


# Other spellings of the training metrics `validate.metrics` predicts (same quantity, same unit).
_METRIC_ALIASES = {
    "tokens_per_s_per_gpu": "tokens_per_s_per_chip",
    "tokens_per_s_per_device": "tokens_per_s_per_chip",
    "tokens_per_sec_per_gpu": "tokens_per_s_per_chip",
    "tgs": "tokens_per_s_per_chip",
    "tokens_per_sec": "tokens_per_s",
    "tflops_per_gpu": "tflops_per_chip",
    "tflops_per_device": "tflops_per_chip",
    "model_tflops_per_gpu": "tflops_per_chip",
    "samples_per_s": "sequences_per_s",
    "sequences_per_sec": "sequences_per_s",
    "step_time": "step_time_s",
    "iteration_time_s": "step_time_s",
}


def read_metric(name: str) -> str:
    """The metric name `validate.metrics` uses for another spelling of it (unchanged if unknown)."""
    key = name.strip().lower()
    return _METRIC_ALIASES.get(key, key)


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9.]", "", name.lower())


@cache
def _model_index() -> Mapping[str, str]:
    from twofold.workload.registry import catalog_names

    return {_squash(name): model_id for name, model_id in catalog_names().items()}


def read_model_id(name: str) -> str | None:
    """The catalog id a model name spells, ignoring case, spaces, dashes and underscores
    ("Llama-3.1-8B" and "LLAMA3.1_8B" -> llama3.1-8b), or None."""
    squashed = _squash(name)
    index = _model_index()
    if squashed in index:
        return index[squashed]
    base = re.sub(r"\(.*?\)|\[.*?\]", "", name)  # "Llama 3.1 8B (pre-training)" -> "Llama 3.1 8B"
    if _squash(base) in index:
        return index[_squash(base)]
    # A Hub repository name: "meta-llama/Meta-Llama-3-70B-Instruct" -> "Llama-3-70B". The
    # organisation, the "Meta-" prefix and the suffixes of a checkpoint of the same architecture
    # (-hf, -base, -instruct, -chat, -it) do not change the model.
    bare = re.sub(r"^.*/", "", base.strip())
    bare = re.sub(r"^meta[-_ ]", "", bare, flags=re.IGNORECASE)
    bare = re.sub(r"([-_ ](hf|base|instruct|chat|it))+$", "", bare, flags=re.IGNORECASE)
    return index.get(_squash(bare))
