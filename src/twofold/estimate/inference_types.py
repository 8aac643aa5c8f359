"""Value objects of a serving estimate: the layout, the workload, and their validation at the boundary."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from twofold.checks import positive_int
from twofold.errors import InputError
from twofold.hardware.types import System
from twofold.workload.model import ModelConfig
from twofold.workload.precision import bytes_per_element

__all__ = ["InferenceLayout", "InferenceWorkload", "check_inference", "micro_batches", "serving_model"]


@dataclass(frozen=True, kw_only=True, slots=True)
class InferenceLayout:
    """How one model is served.

    A replica spans `tp * pp * ep` chips: `pp` pipeline stages of `ep` expert-parallel groups of
    `tp` tensor-parallel chips (ranks placed tp innermost, then ep, then pp, then dp). Inside a
    replica the `ep` groups run attention data-parallel, each on `batch / ep` of the sequences,
    and exchange tokens for the MoE layers (DeepSeek-V3's serving layout, arXiv 2412.19437
    section 3.4); `ep` must be 1 for dense models. `dp` independent replicas each serve their own
    `batch`. `pad_heads`: pad attention heads, key/value heads and FFN widths up to what `tp`
    divides (zero weights that are stored and multiplied), as AWS Neuron's transformers-neuronx
    does for tensor-parallel degrees that do not divide the heads; off by default, so that such
    a `tp` is an error.
    """

    tp: int = 1
    pp: int = 1
    ep: int = 1
    dp: int = 1
    pad_heads: bool = False

    @property
    def replica_chips(self) -> int:
        return self.tp * self.pp * self.ep

    @property
    def chips(self) -> int:
        return self.replica_chips * self.dp


@dataclass(frozen=True, kw_only=True, slots=True)
class InferenceWorkload:
    """`batch` sequences per replica served together: a prompt of `input_tokens`, then
    `output_tokens` generated one by one. `precision` is the compute and activation format;
    weights and the KV cache default to it."""

    batch: int
    input_tokens: int
    output_tokens: int
    precision: str = "bf16"
    weight_precision: str | None = None
    kv_precision: str | None = None

    @property
    def weights(self) -> str:
        return self.weight_precision or self.precision

    @property
    def kv(self) -> str:
        return self.kv_precision or self.precision

    @property
    def max_context_len(self) -> int:
        """Tokens a sequence holds once generated: prompt plus output."""
        return self.input_tokens + self.output_tokens

    @property
    def decode_context_len(self) -> int:
        """Keys a decode step attends to, averaged over the output: N + M/2 rounded up.

        Decode step j (j = 1 .. M-1) feeds generated token j and attends to N + j keys; the mean
        is N + M/2. The first output token comes from the prefill. With M = 1 there is no decode
        step, and the figure is the step that would follow (N + 1).
        """
        return self.input_tokens + max(1, math.ceil(self.output_tokens / 2))


def micro_batches(batch: np.ndarray, layout: InferenceLayout) -> tuple[np.ndarray, np.ndarray]:
    """(m micro-batches, b sequences per micro-batch on one chip) for each batch: the `batch/ep`
    sequences of a chip are split into m = min(pp, batch/ep) micro-batches of b = ceil(batch/ep/m)
    (see `estimate.inference`)."""
    per_chip = np.asarray(batch, dtype=float) / layout.ep
    m = np.maximum(np.minimum(float(layout.pp), per_chip), 1.0)
    return m, np.ceil(per_chip / m)


def check_inference(
    model: ModelConfig, system: System, layout: InferenceLayout, workload: InferenceWorkload
) -> None:
    """Boundary checks that the operator graph does not make itself (it checks tp/ep divisibility)."""
    for name in ("tp", "pp", "ep", "dp"):
        positive_int(name, getattr(layout, name))
    for name in ("batch", "input_tokens", "output_tokens"):
        positive_int(name, getattr(workload, name))
    bytes_per_element(workload.precision, "precision")
    bytes_per_element(workload.weights, "weight_precision")
    bytes_per_element(workload.kv, "kv_precision")
    if not model.causal:
        raise InputError("model", model.name, "is an encoder (not causal): it does not generate tokens")
    if layout.pp > model.num_layers:
        raise InputError("pp", layout.pp, f"exceeds num_layers={model.num_layers}")
    if workload.batch % layout.ep:
        raise InputError(
            "batch",
            workload.batch,
            f"is not a multiple of ep={layout.ep} (attention is data-parallel over ep)",
        )
    if model.position_embedding == "learned" and workload.max_context_len > model.max_position_embeddings:
        raise InputError(
            "output_tokens",
            workload.output_tokens,
            f"input + output = {workload.max_context_len} exceeds the {model.max_position_embeddings} "
            f"learned positions of {model.name}",
        )
    if layout.replica_chips > 1 and not system.levels:
        raise InputError(
            "system", system.id, f"has no interconnect for tp*pp*ep={layout.replica_chips} chips"
        )
    for lv in system.levels:
        if not lv.bandwidth_gb_s_per_chip or lv.bandwidth_gb_s_per_chip <= 0 or lv.latency_us < 0:
            raise InputError(
                "system", system.id, f"level {lv.name} needs positive bandwidth and latency >= 0"
            )


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def serving_model(model: ModelConfig, layout: InferenceLayout) -> ModelConfig:
    """The model as the layout stores it: with `pad_heads`, heads, key/value heads and FFN widths
    padded to what `tp` divides (else `model` itself).

    Heads round up to a multiple of tp; key/value heads to the smallest count >= the original that
    tp divides or that divides tp and that divides the padded heads (GQA groups stay whole); FFN,
    expert and shared-expert widths to a multiple of tp.
    """
    tp = layout.tp
    if not layout.pad_heads or tp == 1:
        return model
    heads = _round_up(model.num_attention_heads, tp)
    kv = model.num_kv_heads
    if not model.is_mla and kv % tp and tp % kv:
        kv = next(k for k in range(kv, heads + 1) if (k % tp == 0 or tp % k == 0) and heads % k == 0)
    return replace(
        model,
        num_attention_heads=heads,
        num_kv_heads=kv if not model.is_mla else heads,
        intermediate_size=_round_up(model.intermediate_size, tp),
        moe_intermediate_size=_round_up(model.moe_intermediate_size, tp),
        shared_expert_intermediate_size=_round_up(model.shared_expert_intermediate_size, tp),
    )
