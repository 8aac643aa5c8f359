"""Tiny PyTorch models for the import tests (written here, nothing downloaded), and the reference
counter: PyTorch's own `FlopCounterMode`."""

from __future__ import annotations

import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

aten = torch.ops.aten

# FlopCounterMode registers the CUDA attention kernels but not the fused CPU one PyTorch runs here;
# map the CPU kernel to PyTorch's own sdpa formulas (torch/utils/flop_counter.py) so the reference
# counts attention as it would on a GPU.
CPU_ATTENTION = {
    aten._scaled_dot_product_flash_attention_for_cpu: lambda q, k, v, *a, **kw: sdpa_flop_count(q, k, v),
    aten._scaled_dot_product_flash_attention_for_cpu_backward: lambda g, q, k, v, *a, **kw: (
        sdpa_backward_flop_count(g, q, k, v)
    ),
}
GEMM_KERNELS = {"aten.mm", "aten.addmm", "aten.bmm", "aten.baddbmm"}
CONV_KERNELS = {"aten.convolution", "aten.convolution_backward"}
ATTENTION_KERNELS = {str(k) for k in CPU_ATTENTION}


def reference_flops(module: nn.Module, inputs: tuple[Any, ...]) -> dict[str, dict[str, float]]:
    """FlopCounterMode's FLOPs per ATen kernel, forward and backward (`.backward()` on the sum of
    the floating outputs), run on a copy-free call of the module."""
    out: dict[str, dict[str, float]] = {}
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION) as counter:
        y = module(*inputs)
    out["forward"] = {str(k): float(v) for k, v in counter.get_flop_counts()["Global"].items()}
    loss = y.sum()
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION) as counter:
        loss.backward()
    out["backward"] = {str(k): float(v) for k, v in counter.get_flop_counts()["Global"].items()}
    module.zero_grad(set_to_none=True)
    return out


def by_group(flops: dict[str, float]) -> dict[str, float]:
    groups: dict[str, float] = defaultdict(float)
    for kernel, value in flops.items():
        if kernel in GEMM_KERNELS:
            groups["gemm"] += value
        elif kernel in CONV_KERNELS:
            groups["conv"] += value
        elif kernel in ATTENTION_KERNELS:
            groups["attention"] += value
        else:
            groups[kernel] += value
    return {k: v for k, v in groups.items() if v}


class Bottleneck(nn.Module):
    """ResNet-50 style bottleneck (He et al. 2015, arXiv 1512.03385): 1x1, 3x3 (strided), 1x1, projection."""

    def __init__(self, c_in: int, width: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c_in, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
        self.proj = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        return F.relu(self.bn3(self.conv3(y)) + self.proj(x))


class TinyResNet(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(8), nn.ReLU()
        )
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.blocks = nn.Sequential(Bottleneck(8, 4, 16, 1), Bottleneck(16, 8, 32, 2))
        self.dw = nn.Conv2d(32, 32, 3, padding=1, groups=32)  # depthwise, MobileNet style
        self.fc = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(self.blocks(self.pool(self.stem(x))))
        return self.fc(y.mean(dim=(2, 3)))


class EncoderLayer(nn.Module):
    """Pre-norm (ViT) or post-norm (BERT) transformer encoder layer with SDPA."""

    def __init__(self, hidden: int, heads: int, ffn: int, *, pre_norm: bool) -> None:
        super().__init__()
        self.heads, self.pre_norm = heads, pre_norm
        self.qkv, self.out = nn.Linear(hidden, 3 * hidden), nn.Linear(hidden, hidden)
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.fc1, self.fc2 = nn.Linear(hidden, ffn), nn.Linear(ffn, hidden)

    def attention(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, t, h = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, t, h))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.pre_norm:
            x = x + self.attention(self.norm1(x), mask)
            return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))
        x = self.norm1(x + self.attention(x, mask))
        return self.norm2(x + self.fc2(F.gelu(self.fc1(x))))


class TinyViT(nn.Module):
    """ViT (Dosovitskiy et al. 2020, arXiv 2010.11929): patch conv, class token, encoder, head."""

    def __init__(self, hidden: int = 32, patch: int = 4, image: int = 16, layers: int = 2) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, hidden, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, hidden))
        self.pos = nn.Parameter(torch.zeros(1, (image // patch) ** 2 + 1, hidden))
        self.layers = nn.ModuleList(EncoderLayer(hidden, 4, 4 * hidden, pre_norm=True) for _ in range(layers))
        self.norm, self.head = nn.LayerNorm(hidden), nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.patch(x).flatten(2).transpose(1, 2)
        y = torch.cat([self.cls.expand(y.shape[0], -1, -1), y], dim=1) + self.pos
        for layer in self.layers:
            y = layer(y)
        return self.head(self.norm(y[:, 0]))


class TinyBert(nn.Module):
    """BERT (Devlin et al. 2018, arXiv 1810.04805): token + position embeddings, post-norm encoder
    with a padding mask, MLM head."""

    def __init__(self, vocab: int = 64, hidden: int = 32, layers: int = 2, max_len: int = 16) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, hidden), nn.Embedding(max_len, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.layers = nn.ModuleList(
            EncoderLayer(hidden, 4, 4 * hidden, pre_norm=False) for _ in range(layers)
        )
        self.mlm = nn.Linear(hidden, vocab)

    def forward(self, ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.norm(self.tok(ids) + self.pos(positions))
        mask = keep[:, None, None, :]
        for layer in self.layers:
            x = layer(x, mask)
        return self.mlm(x)


class LlamaBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, kv_heads: int, ffn: int) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.d = heads, kv_heads, hidden // heads
        self.attn_norm, self.mlp_norm = nn.RMSNorm(hidden), nn.RMSNorm(hidden)
        self.q = nn.Linear(hidden, heads * self.d, bias=False)
        self.k = nn.Linear(hidden, kv_heads * self.d, bias=False)
        self.v = nn.Linear(hidden, kv_heads * self.d, bias=False)
        self.o = nn.Linear(heads * self.d, hidden, bias=False)
        self.gate = nn.Linear(hidden, ffn, bias=False)
        self.up = nn.Linear(hidden, ffn, bias=False)
        self.down = nn.Linear(ffn, hidden, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        h = self.attn_norm(x)
        q = rope(self.q(h).view(b, t, self.heads, self.d).transpose(1, 2), cos, sin)
        k = rope(self.k(h).view(b, t, self.kv_heads, self.d).transpose(1, 2), cos, sin)
        v = self.v(h).view(b, t, self.kv_heads, self.d).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        x = x + self.o(y.transpose(1, 2).reshape(b, t, -1))
        h = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class TinyLlama(nn.Module):
    """Llama (Touvron et al. 2023, arXiv 2302.13971) with GQA: RMSNorm, RoPE, SwiGLU, untied head."""

    def __init__(
        self,
        vocab: int = 128,
        hidden: int = 64,
        layers: int = 2,
        heads: int = 4,
        kv_heads: int = 2,
        ffn: int = 96,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(LlamaBlock(hidden, heads, kv_heads, ffn) for _ in range(layers))
        self.norm, self.head = nn.RMSNorm(hidden), nn.Linear(hidden, vocab, bias=False)
        self.d = hidden // heads

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        inv = 1.0 / (10000 ** (torch.arange(0, self.d, 2, device=ids.device).float() / self.d))
        angles = torch.outer(torch.arange(t, device=ids.device).float(), inv)
        cos, sin = torch.cat([angles.cos()] * 2, dim=-1), torch.cat([angles.sin()] * 2, dim=-1)
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.head(self.norm(x))


class HFRMSNorm(nn.Module):
    """RMSNorm as Hugging Face's modeling_llama writes it (`LlamaRMSNorm`): in fp32, then scaled."""

    def __init__(self, hidden: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(hidden)), eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x.float() * torch.rsqrt(variance + self.eps)).to(x.dtype)


class HFLlamaBlock(LlamaBlock):
    """The Llama block as Hugging Face writes it: `LlamaRMSNorm`, and K/V heads repeated to the
    query heads (`repeat_kv`) before SDPA instead of `enable_gqa`, which is what lets the
    TorchScript ONNX exporter export it."""

    def __init__(self, hidden: int, heads: int, kv_heads: int, ffn: int) -> None:
        super().__init__(hidden, heads, kv_heads, ffn)
        self.attn_norm, self.mlp_norm = HFRMSNorm(hidden), HFRMSNorm(hidden)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        h = self.attn_norm(x)
        q = rope(self.q(h).view(b, t, self.heads, self.d).transpose(1, 2), cos, sin)
        k = rope(self.k(h).view(b, t, self.kv_heads, self.d).transpose(1, 2), cos, sin)
        v = self.v(h).view(b, t, self.kv_heads, self.d).transpose(1, 2)
        repeat = self.heads // self.kv_heads
        k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(y.transpose(1, 2).reshape(b, t, -1))
        h = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def hf_llama() -> TinyLlama:
    """`TinyLlama` with Hugging Face-style blocks and final norm (`HFLlamaBlock`)."""
    model = TinyLlama()
    model.layers = nn.ModuleList(HFLlamaBlock(64, 4, 2, 96) for _ in range(2))
    model.norm = HFRMSNorm(64)
    return model


def example(name: str) -> tuple[nn.Module, tuple[Any, ...]]:
    """A freshly seeded model and its example inputs."""
    torch.manual_seed(0)
    if name == "resnet":
        return TinyResNet(), (torch.randn(2, 3, 32, 32),)
    if name == "vit":
        return TinyViT(), (torch.randn(2, 3, 16, 16),)
    if name == "bert":
        keep = torch.ones(2, 12, dtype=torch.bool)
        keep[1, 9:] = False
        return TinyBert(), (torch.randint(0, 64, (2, 12)), keep)
    if name == "llama":
        return TinyLlama(), (torch.randint(0, 128, (2, 16)),)
    if name == "hf_llama":
        return hf_llama(), (torch.randint(0, 128, (2, 16)),)
    raise KeyError(name)


MODELS = ("resnet", "vit", "bert", "llama")


def export_onnx(module: nn.Module, inputs: tuple[Any, ...], path: Path, **kwargs: Any) -> Path:
    """Export with the TorchScript exporter (`dynamo=False`: the dynamo one needs onnxscript, not
    installed). It warns that it is deprecated and that tracing fixes shapes; silenced here only."""
    module.eval()
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning, UserWarning, torch.jit.TracerWarning):
            warnings.simplefilter("ignore", category=category)
        torch.onnx.export(module, inputs, str(path), dynamo=False, **kwargs)
    return path


def tiny_llama_factory() -> tuple[nn.Module, tuple[Any, ...]]:
    """`torch:frontends_models:tiny_llama_factory`, a model spec `frontends.load_model` reads."""
    return example("llama")
