"""A Llama-style decoder in PyTorch, built from the `ModelConfig` the estimator reads.

The module mirrors what `workload.graph.training_ops` prices, so that a measured step and a
predicted step describe the same computation: token embedding; per layer a pre-norm attention block
(Q/K/V projections with GQA, rotary position embedding, causal `scaled_dot_product_attention`,
output projection, residual add) and a pre-norm MLP block (gated SwiGLU/GeGLU or plain, residual
add); a final norm, the LM head (tied to the embedding if the config says so) and cross-entropy.

Not built: mixture-of-experts, multi-head latent attention, sliding windows, ALiBi and encoders; a
config that needs them is rejected. Dropout is absent (Llama trains without it).

torch is imported inside functions: importing `twofold.measure` never loads it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twofold.errors import InputError
from twofold.workload.model import ModelConfig

__all__ = ["StepTiming", "build_model", "check_supported", "time_training_step"]

_ACTIVATIONS = ("silu", "gelu", "gelu_new", "gelu_pytorch_tanh", "relu")


@dataclass(frozen=True, kw_only=True, slots=True)
class StepTiming:
    """Median wall time of full training steps (forward, backward, AdamW), with how it was taken."""

    step_time_s: float
    samples_s: tuple[float, ...]
    num_params: int
    loss: float


def check_supported(model: ModelConfig) -> None:
    """Raise `InputError` if the PyTorch builder cannot express `model` faithfully."""
    if model.is_moe:
        raise InputError("model", model.name, "mixture-of-experts models are not built for measurement")
    if model.is_mla:
        raise InputError("model", model.name, "multi-head latent attention is not built for measurement")
    if model.position_embedding not in ("rope", "none") or not model.causal:
        raise InputError("model", model.name, "only causal decoders with rope (or no) positions are built")
    if model.activation not in _ACTIVATIONS:
        raise InputError("model.activation", model.activation, f"must be one of {', '.join(_ACTIVATIONS)}")
    if model.num_attention_heads % model.num_kv_heads:
        raise InputError("model.num_kv_heads", model.num_kv_heads, "must divide num_attention_heads")


def build_model(model: ModelConfig, *, device: str = "cpu", dtype: Any = None) -> Any:
    """An `nn.Module` mapping token ids (batch, seq) to logits (batch, seq, vocab)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    check_supported(model)
    dtype = dtype or torch.float32

    def tanh_gelu(x: Any) -> Any:  # the tanh-approximated GELU variants
        return F.gelu(x, approximate="tanh")

    activations: dict[str, Callable[[Any], Any]] = {"silu": F.silu, "relu": F.relu, "gelu": F.gelu}
    act = activations.get(model.activation, tanh_gelu)

    def norm() -> nn.Module:
        if model.norm == "rmsnorm":
            return nn.RMSNorm(model.hidden_size, eps=1e-5)
        return nn.LayerNorm(model.hidden_size, eps=1e-5)

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            h, hd = model.hidden_size, model.head_dim
            self.q = nn.Linear(h, model.num_attention_heads * hd, bias=model.qkv_bias)
            self.k = nn.Linear(h, model.num_kv_heads * hd, bias=model.qkv_bias)
            self.v = nn.Linear(h, model.num_kv_heads * hd, bias=model.qkv_bias)
            self.o = nn.Linear(model.num_attention_heads * hd, h, bias=model.attn_out_bias)

        def forward(self, x: Any, cos: Any, sin: Any) -> Any:
            b, s, _ = x.shape
            hd = model.head_dim
            q = self.q(x).view(b, s, model.num_attention_heads, hd).transpose(1, 2)
            k = self.k(x).view(b, s, model.num_kv_heads, hd).transpose(1, 2)
            v = self.v(x).view(b, s, model.num_kv_heads, hd).transpose(1, 2)
            if cos is not None:
                q, k = _rope(q, cos, sin), _rope(k, cos, sin)
            gqa = model.num_kv_heads != model.num_attention_heads
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
            return self.o(out.transpose(1, 2).reshape(b, s, -1))

    class Mlp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            h, i = model.hidden_size, model.intermediate_size
            self.up = nn.Linear(h, i, bias=model.mlp_bias)
            self.gate = nn.Linear(h, i, bias=model.mlp_bias) if model.mlp_gated else None
            self.down = nn.Linear(i, h, bias=model.mlp_bias)

        def forward(self, x: Any) -> Any:
            up = self.up(x)
            return self.down(act(self.gate(x)) * up if self.gate is not None else act(up))

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn_norm, self.attn = norm(), Attention()
            self.mlp_norm, self.mlp = norm(), Mlp()

        def forward(self, x: Any, cos: Any, sin: Any) -> Any:
            x = x + self.attn(self.attn_norm(x), cos, sin)
            return x + self.mlp(self.mlp_norm(x))

    class Decoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(model.vocab_size, model.hidden_size)
            self.layers = nn.ModuleList(Block() for _ in range(model.num_layers))
            self.norm = norm()
            self.lm_head = nn.Linear(model.hidden_size, model.vocab_size, bias=model.lm_head_bias)
            if model.tie_word_embeddings:
                self.lm_head.weight = self.embed.weight

        def forward(self, ids: Any) -> Any:
            x = self.embed(ids)
            cos = sin = None
            if model.position_embedding == "rope":
                cos, sin = _rope_tables(ids.shape[1], model.head_dim, x.device, x.dtype)
            for layer in self.layers:
                x = layer(x, cos, sin)
            return self.lm_head(self.norm(x))

    def _rope_tables(seq: int, dim: int, dev: Any, dt: Any) -> tuple[Any, Any]:
        inv = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, device=dev, dtype=torch.float32) / dim))
        ang = torch.outer(torch.arange(seq, device=dev, dtype=torch.float32), inv)
        ang = torch.cat((ang, ang), dim=-1)
        return ang.cos().to(dt), ang.sin().to(dt)

    def _rope(x: Any, cos: Any, sin: Any) -> Any:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin

    return Decoder().to(device=device, dtype=dtype)


def time_training_step(
    model: ModelConfig,
    *,
    micro_batch: int,
    seq_len: int,
    device: str = "cpu",
    warmup: int = 1,
    repeats: int = 3,
    sync: Callable[[], None] | None = None,
    seed: int = 0,
) -> StepTiming:
    """Median wall time of `repeats` fp32 training steps after `warmup` untimed ones.

    A step is forward, cross-entropy loss, backward, `AdamW.step()` and `zero_grad`, exactly what a
    training loop runs per micro-batch without accumulation. The fused AdamW kernel is used where
    PyTorch has one (CPU and CUDA): it is what a tuned loop would run.
    """
    import torch
    from torch.nn import functional as F

    if micro_batch < 1 or seq_len < 2:
        raise InputError("micro_batch/seq_len", (micro_batch, seq_len), "must be >= 1 and >= 2")
    torch.manual_seed(seed)
    net = build_model(model, device=device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=True)
    ids = torch.randint(0, model.vocab_size, (micro_batch, seq_len + 1), device=device)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    sync = sync or (lambda: None)

    def step() -> float:
        logits = net(inputs)
        loss = F.cross_entropy(logits.reshape(-1, model.vocab_size), targets.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    for _ in range(warmup):
        step()
    sync()
    samples, loss = [], 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        loss = step()  # float() waits for the device, so the step is complete when timed
        sync()
        samples.append(time.perf_counter() - start)
    num_params = sum(p.numel() for p in net.parameters())
    return StepTiming(
        step_time_s=sorted(samples)[len(samples) // 2],
        samples_s=tuple(samples),
        num_params=num_params,
        loss=loss,
    )
