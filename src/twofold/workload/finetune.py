"""Parameter-efficient fine-tuning: LoRA and QLoRA on a frozen base model.

LoRA (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", arXiv 2106.09685, section
4.1) freezes every weight of the base model and adds to a targeted projection `W (k x n)` a
trainable low-rank update: `y = x W + (x A) B` with `A (k x r)` and `B (r x n)`. The PEFT
(`peft.tuners.lora.layer.Linear`) and torchtune (`torchtune.modules.peft.LoRALinear`)
implementations run exactly those two extra GEMMs next to the frozen one, forward and backward.
QLoRA (Dettmers et al., "QLoRA: Efficient Finetuning of Quantized LLMs", arXiv 2305.14314,
section 3) stores the frozen linear weights of the transformer layers in 4-bit NormalFloat (NF4)
with one scale per 64-element block, the scales themselves quantized to 8 bits in blocks of 256
(double quantization): 4 + 8/64 + 32/(64*256) = 4.127 bits per parameter (their section 3,
"Double Quantization"). Each GEMM dequantizes its weight to bf16 first (bitsandbytes
`dequantize_4bit`, torchtune `FrozenNF4Linear` via torchao `NF4Tensor`), in the forward pass and
again for the input gradient in the backward pass.

What is frozen and what trains (PEFT `get_peft_model`, torchtune `set_trainable_params`): only the
adapters. Embedding, norms, LM head and the base projections are frozen: they carry no gradient
and no optimizer state, the backward computes their input gradients only (no weight gradient),
and the embedding has no backward at all. Targets (torchtune names in brackets):
`attention` q, k, v, o (`lora_attn_modules`); `attention-mlp` also gate, up, down
(`apply_lora_to_mlp`); `all` also the LM head (`apply_lora_to_output`). Quantized base weights
(QLoRA and `base_precision` int8/fp8) are the linear weights inside the transformer layers;
embedding, norms, biases and the LM head stay bf16, as bitsandbytes (`llm_int8_skip_modules`
keeps `lm_head`) and torchtune's QLoRA builders do.

Modelled for dense models with standard (GQA/MQA/MHA) attention; MoE experts and MLA projections
are refused rather than guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from twofold.checks import one_of, positive_int
from twofold.errors import InputError
from twofold.workload.backward import backward_ops
from twofold.workload.model import ModelConfig
from twofold.workload.ops import Op
from twofold.workload.precision import bytes_per_element

__all__ = [
    "BASE_PRECISIONS",
    "FINETUNE_METHODS",
    "LORA_TARGETS",
    "NF4_BITS_PER_PARAM",
    "Finetune",
    "adapter_params",
    "base_bytes_per_param",
    "check_finetune_model",
    "finetune_from_flags",
    "finetune_training_ops",
    "layer_linear_weights",
    "target_gemms",
]

FINETUNE_METHODS = ("full", "lora", "qlora")
LORA_TARGETS = ("attention", "attention-mlp", "all")
BASE_PRECISIONS = ("bf16", "fp8", "nf4", "int8")
# QLoRA section 3: 4-bit NF4 + an 8-bit scale per 64 weights + an fp32 scale per 256 such scales.
NF4_BITS_PER_PARAM = 4.0 + 8.0 / 64 + 32.0 / (64 * 256)

# twofold's GEMM names (workload.layers: fused QKV and fused gate+up) per target set, with the number
# of LoRA adapters each fused GEMM carries (q, k, v: 3; gate, up: 2).
_ATTENTION = {"layer.attn.qkv": 3, "layer.attn.out": 1}
_MLP_GATED = {"layer.mlp.up_gate": 2, "layer.mlp.down": 1}
_MLP_PLAIN = {"layer.mlp.up": 1, "layer.mlp.down": 1}


@dataclass(frozen=True, kw_only=True, slots=True)
class Finetune:
    """A LoRA or QLoRA fine-tuning run: adapter rank, targeted projections, base weight format.

    `base_precision` None: bf16 for LoRA, nf4 for QLoRA (QLoRA's definition)."""

    method: Literal["lora", "qlora"]
    rank: int = 16
    targets: str = "attention-mlp"
    base_precision: str | None = None

    def __post_init__(self) -> None:
        if self.method not in ("lora", "qlora"):
            raise InputError("finetune", self.method, "must be one of full, lora, qlora")
        positive_int("lora_rank", self.rank)
        one_of("lora_targets", self.targets, LORA_TARGETS)
        base = self.base_precision or ("nf4" if self.method == "qlora" else "bf16")
        one_of("base_precision", base, BASE_PRECISIONS)
        if self.method == "qlora" and base == "bf16":
            raise InputError("base_precision", base, "QLoRA quantizes the base: use nf4, int8 or fp8")
        object.__setattr__(self, "base_precision", base)

    @property
    def base(self) -> str:
        return self.base_precision or "bf16"

    @property
    def quantized(self) -> bool:
        """Base linear weights stored in another format than the bf16 the GEMMs run in."""
        return self.base != "bf16"

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "rank": self.rank,
            "targets": self.targets,
            "base_precision": self.base,
        }


def finetune_from_flags(
    method: str | None, *, rank: int = 16, targets: str = "attention-mlp", base_precision: str | None = None
) -> Finetune | None:
    """The `--finetune/--lora-rank/--lora-targets/--base-precision` flags: None for full training."""
    if method is None or method == "full":
        if base_precision not in (None, "bf16"):
            raise InputError("base_precision", base_precision, "applies to --finetune lora or qlora only")
        return None
    one_of("finetune", method, FINETUNE_METHODS)
    return Finetune(method=method, rank=rank, targets=targets, base_precision=base_precision)  # type: ignore[arg-type]


def base_bytes_per_param(base_precision: str) -> float:
    """Stored bytes per frozen linear weight: NF4 with double quantization 4.127/8 (QLoRA sec. 3)."""
    if base_precision == "nf4":
        return NF4_BITS_PER_PARAM / 8.0
    return bytes_per_element(base_precision, "base_precision")


def check_finetune_model(model: ModelConfig) -> None:
    if model.is_moe or model.is_mla:
        raise InputError(
            "finetune", model.name, "LoRA/QLoRA is modelled for dense models with standard attention only"
        )


def target_gemms(model: ModelConfig, targets: str) -> dict[str, int]:
    """{GEMM name: adapters on it} for a target set (module docstring); `lm_head` for `all`."""
    out = dict(_ATTENTION)
    if targets in ("attention-mlp", "all"):
        out |= _MLP_GATED if model.mlp_gated else _MLP_PLAIN
    if targets == "all":
        out["lm_head"] = 1
    return out


def _projections(model: ModelConfig) -> dict[str, tuple[int, int, bool]]:
    """{projection: (in, out, column_parallel)} of one layer's linears, and the LM head."""
    h, d, a, kv, f = (
        model.hidden_size,
        model.head_dim,
        model.num_attention_heads,
        model.num_kv_heads,
        model.intermediate_size,
    )
    out = {"q": (h, a * d, True), "k": (h, kv * d, True), "v": (h, kv * d, True), "o": (a * d, h, False)}
    if model.mlp_gated:
        out |= {"gate": (h, f, True), "up": (h, f, True)}
    else:
        out["up"] = (h, f, True)
    out["down"] = (f, h, False)
    out["lm_head"] = (h, model.vocab_size, True)
    return out


def _targeted(model: ModelConfig, targets: str) -> tuple[list[str], list[str]]:
    """(per-layer projections, model-level projections) that carry an adapter."""
    layer = ["q", "k", "v", "o"]
    if targets in ("attention-mlp", "all"):
        layer += ["gate", "up", "down"] if model.mlp_gated else ["up", "down"]
    return layer, (["lm_head"] if targets == "all" else [])


def adapter_params(model: ModelConfig, ft: Finetune, *, tp: Any = 1) -> tuple[Any, Any]:
    """(per layer, model level) adapter parameters held by one of `tp` tensor-parallel ranks.

    One adapter on `W (k x n)` has `r*(k + n)` parameters (Hu et al. section 4.1; PEFT
    `lora_A` and `lora_B` `nn.Linear`s without bias). Under tensor parallelism the adapter follows its
    base linear: a column-parallel W (q, k, v, gate, up, LM head) keeps A whole and splits B's n,
    a row-parallel W (o, down) splits A's k and keeps B whole (`k*r + r*n/tp` resp. `k*r/tp + r*n`).
    With tp = 1 this is exactly PEFT's trainable parameter count. `tp` may be an
    array (one entry per layout; the result is then arrays)."""
    proj = _projections(model)
    layer, outer = _targeted(model, ft.targets)

    def one(name: str) -> Any:
        k, n, column = proj[name]
        return ft.rank * (k + n / tp) if column else ft.rank * (k / tp + n)

    return sum((one(p) for p in layer), 0.0), sum((one(p) for p in outer), 0.0)


def layer_linear_weights(model: ModelConfig) -> int:
    """Weight elements (no biases) of one layer's linears: what a quantized base stores in low bits."""
    return sum(k * n for name, (k, n, _) in _projections(model).items() if name != "lm_head")


def _op(
    name: str,
    kind: str,
    phase: str,
    *,
    flops: float,
    read: float,
    written: float,
    count: int,
    dims: dict[str, int],
) -> Op:
    return Op(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        phase=phase,  # type: ignore[arg-type]
        flops=flops,
        bytes_read=read,
        bytes_written=written,
        count=count,
        dims=dims,
        dtype="bf16",
    )


def _dequant(gemm: Op, ft: Finetune, phase: str) -> Op:
    """Dequantize the GEMM's weight shard to bf16: read it packed, write it bf16 (one pass)."""
    elements = gemm.dims["k"] * gemm.dims["n"]
    return _op(
        f"{gemm.name}.dequant",
        "elementwise",
        phase,
        flops=float(elements),
        read=elements * base_bytes_per_param(ft.base),
        written=elements * 2.0,
        count=gemm.count,
        dims={"elements": elements},
    )


def _adapters(gemm: Op, adapters: int, rank: int, act_bytes: float) -> list[Op]:
    """x A (k -> adapters*r) then (x A) B (r -> n, block-diagonal over a fused GEMM's adapters,
    2*m*r*n FLOPs in all), then the scaled add onto the frozen output (PEFT `result + lora_B(lora_A(
    x)) * scaling`, one elementwise pass)."""
    m, k, n, count = gemm.dims["m"], gemm.dims["k"], gemm.dims["n"], gemm.count
    r = adapters * rank
    a = _op(
        f"{gemm.name}.lora_a",
        "gemm",
        "forward",
        flops=2.0 * m * k * r,
        read=(m * k + k * r) * act_bytes,
        written=m * r * act_bytes,
        count=count,
        dims={"m": m, "k": k, "n": r},
    )
    b = _op(
        f"{gemm.name}.lora_b",
        "gemm",
        "forward",
        flops=2.0 * m * rank * n,
        read=(m * r + rank * n) * act_bytes,
        written=m * n * act_bytes,
        count=count,
        dims={"m": m, "k": rank, "n": n},
    )
    add = _op(
        f"{gemm.name}.lora_add",
        "elementwise",
        "forward",
        flops=2.0 * m * n,
        read=2.0 * m * n * act_bytes,
        written=m * n * act_bytes,
        count=count,
        dims={"elements": m * n},
    )
    return [a, b, add]


def finetune_training_ops(
    fwd: Sequence[Op], model: ModelConfig, ft: Finetune, *, act_bytes: float
) -> tuple[Op, ...]:
    """Forward + backward of one micro-batch with frozen base weights and adapters (no recompute).

    Forward: every frozen layer GEMM is preceded by its weight's dequantization when the base is
    quantized (`_dequant`), and every targeted GEMM is followed by its adapters (`_adapters`).
    Backward, in reverse: a frozen GEMM computes only its input gradient (dgrad, after dequantizing
    its weight again); an adapter GEMM both gradients; the embedding (frozen, and the first op, so
    nothing upstream needs a gradient) has no backward; other ops as in full training
    (`workload.backward.backward_ops`). Every layer is priced as a middle layer: in the first layer
    the QKV GEMM's input needs no gradient either (the embedding is frozen), which PyTorch skips
    and this counts (1/num_layers of the QKV dgrad and of its adapters' A dgrad).
    """
    targets = target_gemms(model, ft.targets)
    out: list[Op] = []
    for op in fwd:
        layer_gemm = op.kind == "gemm" and op.name.startswith("layer.")
        if layer_gemm and ft.quantized:
            out.append(_dequant(op, ft, "forward"))
        out.append(op)
        if op.kind == "gemm" and op.name in targets:
            out.extend(_adapters(op, targets[op.name], ft.rank, act_bytes))
    bwd: list[Op] = []
    for op in reversed(out):
        if op.name.startswith("embedding") or op.name.endswith(".dequant"):
            continue
        grads = backward_ops(op, act_bytes=act_bytes, weight_bytes=2.0)
        if op.kind == "gemm" and ".lora_" not in op.name:
            grads = grads[:1]  # frozen: dgrad only
            if op.name.startswith("layer.") and ft.quantized:
                bwd.append(_dequant(op, ft, "backward"))
        bwd.extend(grads)
    return (*out, *bwd)
