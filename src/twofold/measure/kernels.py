"""What `twofold measure` times: kernel specifications, the sweep plans, and their operator view.

A `Kernel` is a device-independent description of one thing to time (a GEMM shape and dtype, a
streaming copy of N elements, an attention call, a full training step of a model). The same
description is turned into twofold `Op`s by `kernel_ops`, so that the cost model prices exactly
what the device ran; fitting then compares the two. The plans are small on purpose: `--quick`
keeps a 2-core CPU run near a minute, the full plan near five.

FLOP and byte conventions follow `workload.ops`: a multiply-add is 2 FLOPs; attention FLOPs are
what PyTorch's FlopCounterMode counts (the full score matrix; forward 4*b*h*sq*skv*d, backward
twice that) with `useful_flops` half of it when causal; bytes are the tensors a kernel must read
and write once (no re-reads from cache misses).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from twofold.workload.model import ModelConfig
from twofold.workload.ops import Op

__all__ = [
    "Kernel",
    "KernelKind",
    "Role",
    "kernel_ops",
    "plan_kernels",
    "step_models",
]

KernelKind = Literal["gemm", "copy", "add", "mul", "silu", "rmsnorm", "layernorm", "sdpa", "train_step"]
Role = Literal["fit", "heldout"]

_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass(frozen=True, kw_only=True, slots=True)
class Kernel:
    """One thing to time. `dims` by kind:

    gemm: m, n, k (an (m x k) @ (k x n) product); copy/add/mul/silu: numel; rmsnorm/layernorm:
    rows, hidden; sdpa: batch, heads, kv_heads, seq, head_dim, backward (0 = forward only,
    1 = forward + backward); train_step: micro_batch, seq_len with `model` set.
    """

    kind: KernelKind
    dtype: str = "fp32"
    dims: Mapping[str, int] = field(default_factory=dict)
    model: ModelConfig | None = None
    role: Role = "fit"

    @property
    def name(self) -> str:
        shape = "x".join(f"{k}{v}" for k, v in self.dims.items())
        model = f"{self.model.name}:" if self.model is not None else ""
        return f"{self.kind}:{model}{self.dtype}:{shape}"

    @property
    def params(self) -> dict[str, object]:
        """JSON-able description (what the results database stores)."""
        out: dict[str, object] = {"kind": self.kind, "dtype": self.dtype, "role": self.role, **self.dims}
        if self.model is not None:
            out["model"] = _model_dict(self.model)
        return out


def _model_dict(model: ModelConfig) -> dict[str, object]:
    keys: tuple[str, ...] = (
        "name",
        "num_layers",
        "hidden_size",
        "num_attention_heads",
        "num_kv_heads",
        "head_dim",
    )
    keys += ("intermediate_size", "vocab_size", "tie_word_embeddings")
    return {k: getattr(model, k) for k in keys}


def _llama(name: str, layers: int, hidden: int, heads: int, kv_heads: int, vocab: int) -> ModelConfig:
    """A small Llama-shaped config: head_dim 64, SwiGLU width ~8/3 hidden rounded to 64, RMSNorm."""
    return ModelConfig(
        name=name,
        family="llama",
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=hidden // heads,
        intermediate_size=(hidden * 8 // 3 + 63) // 64 * 64,
        vocab_size=vocab,
        source="twofold measure: synthetic Llama-style size for timing",
    )


def step_models() -> dict[str, ModelConfig]:
    """The small Llama-style models whose steps are timed (a `{name: config}` dict)."""
    return {
        "tiny-l2-h256": _llama("tiny-l2-h256", 2, 256, 4, 2, 4096),
        "tiny-l4-h384": _llama("tiny-l4-h384", 4, 384, 6, 2, 8192),
        "tiny-l3-h512": _llama("tiny-l3-h512", 3, 512, 8, 4, 8192),
        "tiny-l6-h320": _llama("tiny-l6-h320", 6, 320, 5, 5, 6144),
        "tiny-l2-h640": _llama("tiny-l2-h640", 2, 640, 10, 2, 8192),
        "tiny-l8-h256": _llama("tiny-l8-h256", 8, 256, 4, 4, 8192),
    }


def _steps(quick: bool) -> list[Kernel]:
    """Training steps: a fit set and a held-out set of other sizes, batches and sequence lengths."""
    m = step_models()
    fit = [("tiny-l2-h256", 4, 128), ("tiny-l4-h384", 2, 256), ("tiny-l8-h256", 8, 64)]
    heldout = [("tiny-l3-h512", 2, 128), ("tiny-l6-h320", 1, 512)]
    if not quick:
        heldout += [("tiny-l2-h640", 4, 192), ("tiny-l4-h384", 6, 96)]
    out = [Kernel(kind="train_step", dims={"micro_batch": b, "seq_len": s}, model=m[n]) for n, b, s in fit]
    out += [
        Kernel(kind="train_step", dims={"micro_batch": b, "seq_len": s}, model=m[n], role="heldout")
        for n, b, s in heldout
    ]
    return out


def plan_kernels(*, quick: bool, bf16: bool) -> tuple[Kernel, ...]:
    """The sweep: GEMMs (fp32, and bf16 if the device has it), streaming, norms, attention, steps.

    GEMM shapes cover square sizes (the peak) and the token x hidden shapes of the timed models'
    forward and backward products, from 64 to 2048 per side; element counts cover activations of
    the timed models (64 Ki to 4 Mi elements) and one large stream for the bandwidth figure.
    """
    squares = (128, 512, 1024) if quick else (64, 128, 256, 512, 1024, 1536, 2048)
    skinny = (
        ((512, 384, 384), (512, 1024, 384), (384, 384, 512), (1024, 8192, 256))
        if quick
        else (
            (256, 256, 256),
            (512, 384, 384),
            (512, 1024, 384),
            (1024, 384, 1024),
            (384, 384, 512),
            (384, 1024, 512),
            (512, 512, 2048),
            (1024, 8192, 256),
            (2048, 4096, 512),
            (256, 64, 2048),
        )
    )
    kernels: list[Kernel] = []
    dtypes = ("fp32", "bf16") if bf16 else ("fp32",)
    for dtype in dtypes:
        shapes = [(s, s, s) for s in squares] + list(skinny)
        if dtype == "bf16" and quick:
            shapes = shapes[::2]
        kernels += [Kernel(kind="gemm", dtype=dtype, dims={"m": m, "n": n, "k": k}) for m, n, k in shapes]
    sizes = (2**16, 2**20, 2**22) if quick else (2**16, 2**18, 2**20, 2**21, 2**22)
    stream = 2**25 if quick else 2**26  # 128 / 256 MiB of fp32: past any cache of the timed models
    kernels += [Kernel(kind="copy", dims={"numel": n}) for n in (*sizes, stream)]
    kernels += [Kernel(kind=k, dims={"numel": n}) for k in ("add", "mul", "silu") for n in sizes]
    norm_shapes = ((512, 256), (1024, 512), (4096, 512)) if quick else ((512, 256), (1024, 512), (2048, 640))
    kernels += [Kernel(kind="rmsnorm", dims={"rows": r, "hidden": h}) for r, h in norm_shapes]
    if not quick:
        kernels += [Kernel(kind="layernorm", dims={"rows": r, "hidden": h}) for r, h in norm_shapes]
    attn: tuple[tuple[int, int, int, int, int], ...] = (
        ((2, 4, 2, 256, 64), (1, 8, 4, 512, 64)) if quick else ((4, 4, 2, 128, 64), (2, 6, 2, 256, 64))
    )
    if not quick:
        attn += ((1, 8, 8, 512, 64), (2, 10, 2, 384, 64))
    for b, h, kv, s, d in attn:
        for backward in (0, 1):
            dims = {"batch": b, "heads": h, "kv_heads": kv, "seq": s, "head_dim": d, "backward": backward}
            kernels.append(Kernel(kind="sdpa", dims=dims))
    return tuple(kernels + _steps(quick))


def _elementwise_op(kernel: Kernel) -> Op:
    n, es = kernel.dims["numel"], _BYTES[kernel.dtype]
    # (inputs read, FLOPs per element): copy reads 1; add/mul read 2; silu x*sigmoid(x) ~ 4 FLOPs.
    reads, flops = {"copy": (1, 0), "add": (2, 1), "mul": (2, 1), "silu": (1, 4)}[kernel.kind]
    return Op(
        name=f"measure.{kernel.kind}",
        kind="elementwise",
        phase="forward",
        flops=float(flops * n),
        bytes_read=float(reads * n * es),
        bytes_written=float(n * es),
        dims={"numel": n},
        dtype=kernel.dtype,
    )


def _attention_ops(kernel: Kernel) -> tuple[Op, ...]:
    """Causal self-attention as `workload.layers.attention_core` and `workload.backward` price it.

    Forward FLOPs: FlopCounterMode's sdpa count, 2*b*h*s*s*(d_qk + d_v); useful FLOPs: the
    s*(s+1)/2 (query, key) pairs the causal mask keeps. Backward (FlashAttention-2, recomputing
    the scores): (3*d_qk + 2*d_v) / (d_qk + d_v) = 2.5 times the forward, reading Q, K, V, O, dO
    and writing dQ, dK, dV.
    """
    d = kernel.dims
    b, h, kv, s, hd = d["batch"], d["heads"], d["kv_heads"], d["seq"], d["head_dim"]
    es = _BYTES[kernel.dtype]
    q_bytes, kv_bytes = b * h * s * hd * es, b * kv * s * 2 * hd * es
    per_pair = 2.0 * b * h * (hd + hd)
    fwd = Op(
        name="measure.sdpa",
        kind="attention",
        phase="forward",
        flops=per_pair * s * s,
        useful_flops=per_pair * s * (s + 1) / 2,
        bytes_read=float(q_bytes + kv_bytes),
        bytes_written=float(q_bytes),
        dims={
            "batch": b,
            "heads": h,
            "kv_heads": kv,
            "q_len": s,
            "kv_len": s,
            "head_dim": hd,
            "v_head_dim": hd,
        },
        dtype=kernel.dtype,
        causal=True,
    )
    if not d.get("backward"):
        return (fwd,)
    bwd = replace(
        fwd,
        phase="backward",
        flops=fwd.flops * 2.5,
        useful_flops=(fwd.useful_flops or 0.0) * 2.5,
        bytes_read=float(3 * q_bytes + kv_bytes),
        bytes_written=float(q_bytes + kv_bytes),
    )
    return (fwd, bwd)


def kernel_ops(kernel: Kernel) -> tuple[Op, ...]:
    """The operators the cost model prices for one run of `kernel`."""
    d, es = kernel.dims, _BYTES.get(kernel.dtype, 4)
    if kernel.kind == "gemm":
        m, n, k = d["m"], d["n"], d["k"]
        return (
            Op(
                name="measure.gemm",
                kind="gemm",
                phase="forward",
                flops=2.0 * m * n * k,
                bytes_read=float((m * k + k * n) * es),
                bytes_written=float(m * n * es),
                dims={"m": m, "n": n, "k": k},
                dtype=kernel.dtype,
            ),
        )
    if kernel.kind in ("copy", "add", "mul", "silu"):
        return (_elementwise_op(kernel),)
    if kernel.kind in ("rmsnorm", "layernorm"):
        rows, hidden = d["rows"], d["hidden"]
        return (
            Op(
                name=f"measure.{kernel.kind}",
                kind="norm",
                phase="forward",
                flops=float((4 if kernel.kind == "rmsnorm" else 7) * rows * hidden),
                bytes_read=float((rows + (1 if kernel.kind == "rmsnorm" else 2)) * hidden * es),
                bytes_written=float(rows * hidden * es),
                dims={"rows": rows, "hidden": hidden},
                dtype=kernel.dtype,
            ),
        )
    if kernel.kind == "sdpa":
        return _attention_ops(kernel)
    if kernel.kind == "train_step":
        return _step_ops(kernel)
    raise ValueError(f"unknown kernel kind {kernel.kind!r}")  # programmer error: Kernel.kind is a Literal


def _step_ops(kernel: Kernel) -> tuple[Op, ...]:
    from twofold.workload.graph import optimizer_ops, training_ops
    from twofold.workload.params import param_counts

    assert kernel.model is not None
    model = kernel.model
    ops = training_ops(
        model, micro_batch=kernel.dims["micro_batch"], seq_len=kernel.dims["seq_len"], precision="fp32"
    )
    return (*ops, *optimizer_ops(_total_params(param_counts(model)), "fp32"))


def _total_params(counts: object) -> int:
    """The total from `param_counts` (an int, a mapping with "total", or an object with `.total`)."""
    if isinstance(counts, int):
        return counts
    if isinstance(counts, Mapping):
        return int(counts["total"])
    return int(counts.total)  # type: ignore[attr-defined]
