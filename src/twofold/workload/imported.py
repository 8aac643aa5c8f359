"""Models imported from PyTorch modules or ONNX files, as operator lists (`ImportedModel`).

The frontends (`twofold.frontends.torch_import`, `twofold.frontends.onnx_import`) read a model and
build its `Op`s with the constructors here, so that both follow one FLOP and byte convention:

- FLOPs are what PyTorch's `torch.utils.flop_counter.FlopCounterMode` counts for the same
  operator (`mm_flop`, `bmm_flop`, `conv_flop_count`, `sdpa_flop_count`,
  `sdpa_backward_flop_count` in torch/utils/flop_counter.py): a multiply-add is 2 FLOPs; bias
  adds, norms, activations, softmax, reductions and copies count 0. Those are memory-bound, and
  the cost model prices them from their bytes alone.
- Bytes are the operator's input tensors read once plus its output tensors written once: tensors
  in the model's own floating dtype at the requested precision's width, others (an fp32 upcast in
  a bf16 model, integer indices) at their own (`frontends.torch_import.from_torch`). Views and
  broadcasts count their distinct elements only; gathers and in-place scatters the elements they
  touch. Left out: caches and fusion across operators (an
  eager trace prices every kernel it sees, which is an upper bound for a compiled model).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from twofold.errors import InputError
from twofold.workload.ops import Op, OpKind, Phase
from twofold.workload.precision import bytes_per_element
from twofold.workload.protocol import DATA_PARALLEL_AXES

__all__ = [
    "ImportedModel",
    "attention_op",
    "conv_as_gemm",
    "conv_op",
    "derived_backward",
    "gemm_op",
    "memory_op",
    "merge_ops",
]

BackwardSource = Literal["traced", "derived", "none"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ImportedModel:
    """A model read from PyTorch or ONNX: its operators for one batch, parameters, and what is unknown.

    `ops` is the forward pass of `batch` samples (`seq_len` tokens each for token models, else
    None); `backward_ops` the backward pass, `traced` (recorded while PyTorch ran it: exact) or
    `derived` from the forward (`derived_backward`: exact for GEMMs and convolutions, nominal for
    the rest). `unsupported` maps each operator the importer did not recognise to how many times it
    ran: each is priced as a zero-FLOP memory operator over its input and output tensors, an
    explicit approximation that `to_dict()` and `twofold inspect` report.

    As a `workload.protocol.TrainingModel` it takes data-parallel axes only (dp, ZeRO 0-3, hybrid
    sharding), at the micro-batch and sequence length it was imported with; `fuse` says whether the
    estimator prices the fused operators when there are some (`eager()`: the traced ones).
    """

    name: str
    source: str  # "torch:<module class>" or the ONNX file path
    ops: tuple[Op, ...]
    backward_ops: tuple[Op, ...] = ()
    backward: BackwardSource = "none"
    param_count: int
    trainable_param_count: int
    unsupported: Mapping[str, int] = field(default_factory=dict)
    batch: int
    seq_len: int | None = None
    precision: str = "bf16"
    # The same passes after `workload.fusion` (what a fusing compiler runs); None: not available.
    fused_ops: tuple[Op, ...] | None = None
    fused_backward_ops: tuple[Op, ...] | None = None
    fuse: bool = True

    @property
    def parallel_axes(self) -> frozenset[str]:
        return DATA_PARALLEL_AXES

    @property
    def num_layers(self) -> int:
        """Repeated blocks, one FSDP unit each (PyTorch's `transformer_auto_wrap_policy` wraps each
        layer): the largest repeat count of a forward GEMM or convolution (a traced stack of L
        layers merges each layer op into one with count L); 1 for a model without repeats."""
        return max((op.count for op in self.ops if op.kind in ("gemm", "conv")), default=1)

    @property
    def fixed_micro_batch(self) -> int:
        return self.batch

    @property
    def fixed_seq_len(self) -> int | None:
        return self.seq_len

    @property
    def counts_tokens(self) -> bool:
        return self.seq_len is not None

    @property
    def fused(self) -> bool:
        """Whether the estimator prices fused operators (asked for and available)."""
        return self.fuse and self.fused_ops is not None

    def eager(self) -> ImportedModel:
        """The same model priced from its traced (eager, unfused) operators."""
        return replace(self, fuse=False)

    def step_ops(self, *, fused: bool | None = None) -> tuple[tuple[Op, ...], tuple[Op, ...]]:
        """(forward, backward) operators the estimator prices: fused when `fused` (default: the
        model's `fuse`) and available."""
        if (self.fuse if fused is None else fused) and self.fused_ops is not None:
            return self.fused_ops, self.fused_backward_ops or ()
        return self.ops, self.backward_ops

    @property
    def model_flops(self) -> float:
        """Model FLOPs of one micro-batch's forward: GEMMs, convolutions and attention (its causal
        part), PaLM's convention (Chowdhery et al. 2022, appendix B); a training step is 3x."""
        total = 0.0
        for op in self.ops:
            if op.kind in ("gemm", "conv", "attention"):
                useful = op.useful_flops if op.useful_flops is not None else op.flops
                total += useful * op.count
        return total

    @property
    def activation_bytes(self) -> float:
        """Bytes one micro-batch's priced forward writes: an upper bound on what autograd or a
        compiler saves for the backward."""
        return float(sum(op.bytes_written * op.count for op in self.step_ops()[0]))

    def forward_ops(self) -> tuple[Op, ...]:
        """Forward operators of one batch (inference or the first half of a training step)."""
        return self.ops

    def training_ops(self) -> tuple[Op, ...]:
        """Forward then backward operators of one training micro-batch (no optimizer)."""
        if self.backward == "none":
            raise InputError("model", self.name, "has no backward pass (no trainable parameters)")
        return (*self.ops, *self.backward_ops)

    @property
    def forward_flops(self) -> float:
        return sum(op.total_flops for op in self.ops)

    @property
    def backward_flops(self) -> float:
        return sum(op.total_flops for op in self.backward_ops)

    def to_dict(self) -> dict[str, Any]:
        def kinds(ops: Iterable[Op]) -> dict[str, dict[str, float]]:
            out: dict[str, dict[str, float]] = {}
            for op in ops:
                row = out.setdefault(op.kind, {"ops": 0, "flops": 0.0, "bytes": 0.0})
                row["ops"] += op.count
                row["flops"] += op.total_flops
                row["bytes"] += op.total_bytes
            return dict(sorted(out.items()))

        return {
            "name": self.name,
            "source": self.source,
            "precision": self.precision,
            "batch": self.batch,
            "seq_len": self.seq_len,
            "param_count": self.param_count,
            "trainable_param_count": self.trainable_param_count,
            "forward_flops": self.forward_flops,
            "backward_flops": self.backward_flops,
            "backward": self.backward,
            "forward_by_kind": kinds(self.ops),
            "backward_by_kind": kinds(self.backward_ops),
            "unsupported": dict(sorted(self.unsupported.items())),
            "ops": [_op_dict(op) for op in (*self.ops, *self.backward_ops)],
        }


def _op_dict(op: Op) -> dict[str, Any]:
    return {
        "name": op.name,
        "kind": op.kind,
        "phase": op.phase,
        "count": op.count,
        "flops": op.flops,
        "useful_flops": op.useful_flops,
        "bytes_read": op.bytes_read,
        "bytes_written": op.bytes_written,
        "dims": dict(op.dims),
        "dtype": op.dtype,
        "causal": op.causal,
    }


def gemm_op(
    name: str,
    *,
    phase: Phase,
    m: int,
    n: int,
    k: int,
    batch: int = 1,
    dtype: str,
    bytes_read: float,
    bytes_written: float,
) -> Op:
    """`[batch x] (m x k) @ (k x n)`: `2*batch*m*n*k` FLOPs (FlopCounterMode `mm_flop`/`bmm_flop`;
    the bias of `addmm`/`baddbmm` is not counted)."""
    dims = {"m": m, "n": n, "k": k} | ({"batch": batch} if batch > 1 else {})
    return Op(
        name=name,
        kind="gemm",
        phase=phase,
        flops=2.0 * batch * m * n * k,
        bytes_read=bytes_read,
        bytes_written=bytes_written,
        dims=dims,
        dtype=dtype,
    )


def conv_op(
    name: str,
    *,
    phase: Phase,
    role: int,
    batch: int,
    in_channels: int,
    out_channels: int,
    out_spatial: tuple[int, ...],
    kernel: tuple[int, ...],
    groups: int,
    dtype: str,
    bytes_read: float,
    bytes_written: float,
) -> Op:
    """One convolution pass, described by the geometry of its forward convolution.

    `role` 0 is the forward `Y = conv(X, W)`, 1 the input gradient `dX` (a transposed convolution;
    a user's `ConvTranspose` is recorded as role 1 of the convolution it transposes), 2 the weight
    gradient `dW`. `out_spatial` are the positions of the forward output (`out_h, out_w`; 1-D
    convolutions have `out_h = 1`, 3-D ones fold depth into `out_h`), likewise `kernel`.

    FLOPs (FlopCounterMode `conv_flop_count`, torch/utils/flop_counter.py): every output position
    of every image takes a dot product of length `in_channels/groups * prod(kernel)` per output
    channel, so roles 0 and 1 cost `2 * batch * prod(out) * out_channels * in_channels/groups *
    prod(kernel)`. For role 2 FlopCounterMode multiplies the full `in_channels` by `out_channels`,
    `groups` times the work a grouped kernel does; `flops` keeps its count so totals match it, and
    `useful_flops` holds the work actually done. Padding, stride and dilation change only the
    output size, which is read from the traced tensors; the bias add is not counted.
    """
    out_h = math.prod(out_spatial[:-1]) if len(out_spatial) > 1 else 1
    out_w = out_spatial[-1] if out_spatial else 1
    k_h = math.prod(kernel[:-1]) if len(kernel) > 1 else 1
    k_w = kernel[-1] if kernel else 1
    work = 2.0 * batch * out_h * out_w * out_channels * (in_channels // groups) * k_h * k_w
    grouped_wgrad = role == 2 and groups > 1
    return Op(
        name=name,
        kind="conv",
        phase=phase,
        flops=work * groups if grouped_wgrad else work,
        useful_flops=work if grouped_wgrad else None,
        bytes_read=bytes_read,
        bytes_written=bytes_written,
        dims={
            "batch": batch,
            "in_channels": in_channels,
            "out_channels": out_channels,
            "out_h": out_h,
            "out_w": out_w,
            "kernel_h": k_h,
            "kernel_w": k_w,
            "groups": groups,
            "role": role,
        },
        dtype=dtype,
    )


def conv_as_gemm(op: Op) -> dict[str, int]:
    """The implicit GEMM a convolution runs as: `groups` independent `(m x k) @ (k x n)` products.

    Implicit GEMM (Chetlur et al. 2014, "cuDNN: Efficient Primitives for Deep Learning", arXiv
    1410.0759, section 3; NVIDIA CUTLASS docs, "Implicit GEMM Convolution"), with
    `P = batch*out_h*out_w` output positions, `Ci = in_channels/groups`, `Co = out_channels/groups`,
    `R = kernel_h*kernel_w`:
    forward `m = P, n = Co, k = Ci*R`; input gradient `m = P, n = Ci*R, k = Co` (then col2im);
    weight gradient `m = Co, n = Ci*R, k = P`. `2*groups*m*n*k` is the op's real work. Systolic
    arrays (Trainium TensorE, TPU MXU) run the same mapping with `k` on the contracting dimension.
    Depthwise convolutions (`groups == in_channels`, so `Ci = 1`) give `k = R` (9 for 3x3) or
    `n = 1`: far below any tile or array size, they are memory-bound and should be priced from
    their bytes. Left out: the im2col/col2im traffic of explicit lowering and Winograd/FFT kernels.
    """
    if op.kind != "conv":
        raise InputError("op", op.name, f"is a {op.kind}, not a conv")
    d = op.dims
    groups = d["groups"]
    positions = d["batch"] * d["out_h"] * d["out_w"]
    c_in, c_out = d["in_channels"] // groups, d["out_channels"] // groups
    window = c_in * d["kernel_h"] * d["kernel_w"]
    role = d.get("role", 0)
    if role == 1:
        return {"m": positions, "n": window, "k": c_out, "groups": groups}
    if role == 2:
        return {"m": c_out, "n": window, "k": positions, "groups": groups}
    return {"m": positions, "n": c_out, "k": window, "groups": groups}


def attention_flops(
    *, batch: int, heads: int, q_len: int, kv_len: int, head_dim: int, v_head_dim: int, backward: bool
) -> float:
    """FlopCounterMode's `sdpa_flop_count` (forward: `QK^T` and `PV`, `2*b*h*q*kv*(d + d_v)`) and
    `sdpa_backward_flop_count` (FlashAttention-2 backward, Dao 2023, arXiv 2307.08691, algorithm 2:
    recompute `QK^T`, then `dP`, `dV`, `dQ`, `dK`: `2*b*h*q*kv*(3*d + 2*d_v)`); the full score
    matrix even under a causal mask (`useful_flops` has the visible part)."""
    per_pair = 3 * head_dim + 2 * v_head_dim if backward else head_dim + v_head_dim
    return 2.0 * batch * heads * q_len * kv_len * per_pair


def attention_op(
    name: str,
    *,
    phase: Phase,
    batch: int,
    heads: int,
    kv_heads: int,
    q_len: int,
    kv_len: int,
    head_dim: int,
    v_head_dim: int,
    causal: bool,
    dtype: str,
    bytes_read: float,
    bytes_written: float,
) -> Op:
    """Fused scaled-dot-product attention (`attention_flops`). Causal: query `i` of `q_len` at the
    end of `kv_len` keys sees `kv_len - q_len + i + 1` of them (`workload.layers.visible_pairs`)."""
    from twofold.workload.layers import visible_pairs

    flops = attention_flops(
        batch=batch,
        heads=heads,
        q_len=q_len,
        kv_len=kv_len,
        head_dim=head_dim,
        v_head_dim=v_head_dim,
        backward=phase == "backward",
    )
    useful = None
    if causal:
        useful = flops * visible_pairs(q_len, kv_len, causal=True, window=None) / (q_len * kv_len)
    return Op(
        name=name,
        kind="attention",
        phase=phase,
        flops=flops,
        useful_flops=useful,
        bytes_read=bytes_read,
        bytes_written=bytes_written,
        dims={
            "batch": batch,
            "heads": heads,
            "kv_heads": kv_heads,
            "q_len": q_len,
            "kv_len": kv_len,
            "head_dim": head_dim,
            "v_head_dim": v_head_dim,
        },
        dtype=dtype,
        causal=causal,
    )


def memory_op(
    name: str,
    *,
    kind: OpKind,
    phase: Phase,
    elements: int,
    dtype: str,
    bytes_read: float,
    bytes_written: float,
) -> Op:
    """A memory-bound operator (norm, elementwise, reduction, softmax, embedding, loss): 0 FLOPs, as
    FlopCounterMode counts it; `elements` is the size of its largest output."""
    return Op(
        name=name,
        kind=kind,
        phase=phase,
        flops=0.0,
        bytes_read=bytes_read,
        bytes_written=bytes_written,
        dims={"elements": elements},
        dtype=dtype,
    )


def derived_backward(op: Op, *, input_grad: bool, weight_grad: bool) -> list[Op]:
    """The backward ops of one forward op when no backward was traced (ONNX files).

    `input_grad`: the op's first (activation) operand needs a gradient (it depends on a trainable
    parameter); `weight_grad`: its second operand does (a trainable weight, or an activation in
    `Q @ K^T`). GEMM `Y = A B`: `dA = dY B^T` (m x n x k -> dims m, k, n) and `dB = A^T dY`
    (k, n, m), each the forward's FLOPs, as FlopCounterMode counts the two `mm`s autograd runs.
    Convolution: role 1 (input gradient) and role 2 (weight gradient) of the same geometry
    (`conv_op`, as FlopCounterMode's `conv_backward_flop`). Attention: `attention_flops` backward.
    Memory-bound ops: read the saved input and the output gradient, write the input gradient
    (0 FLOPs). Left out: gradients of integer and shape tensors, which need none.
    """
    elt = bytes_per_element(op.dtype)
    if op.kind == "gemm":
        d = op.dims
        m, n, k, b = d["m"], d["n"], d["k"], d.get("batch", 1)
        out: list[Op] = []
        if input_grad:
            out.append(
                gemm_op(
                    f"{op.name}.dgrad",
                    phase="backward",
                    m=m,
                    n=k,
                    k=n,
                    batch=b,
                    dtype=op.dtype,
                    bytes_read=b * (m * n + n * k) * elt,
                    bytes_written=b * m * k * elt,
                )
            )
        if weight_grad:
            out.append(
                gemm_op(
                    f"{op.name}.wgrad",
                    phase="backward",
                    m=k,
                    n=n,
                    k=m,
                    batch=b,
                    dtype=op.dtype,
                    bytes_read=b * (m * k + m * n) * elt,
                    bytes_written=b * k * n * elt,
                )
            )
        return [replace(o, count=op.count) for o in out]
    if op.kind == "conv":
        d = op.dims
        out = []
        for role, wanted, suffix in ((1, input_grad, "dgrad"), (2, weight_grad, "wgrad")):
            if wanted:
                out.append(
                    conv_op(
                        f"{op.name}.{suffix}",
                        phase="backward",
                        role=role if d["role"] == 0 else (0 if role == 1 else 2),
                        batch=d["batch"],
                        in_channels=d["in_channels"],
                        out_channels=d["out_channels"],
                        out_spatial=(d["out_h"], d["out_w"]),
                        kernel=(d["kernel_h"], d["kernel_w"]),
                        groups=d["groups"],
                        dtype=op.dtype,
                        bytes_read=op.bytes_read + op.bytes_written,
                        bytes_written=op.bytes_read,
                    )
                )
        return [replace(o, count=op.count) for o in out]
    if op.kind == "attention":
        d = op.dims
        back = attention_op(
            f"{op.name}.grad",
            phase="backward",
            batch=d["batch"],
            heads=d["heads"],
            kv_heads=d["kv_heads"],
            q_len=d["q_len"],
            kv_len=d["kv_len"],
            head_dim=d["head_dim"],
            v_head_dim=d["v_head_dim"],
            causal=op.causal,
            dtype=op.dtype,
            bytes_read=op.bytes_read + 2 * op.bytes_written,
            bytes_written=op.bytes_read,
        )
        return [replace(back, count=op.count)]
    if not (input_grad or weight_grad):
        return []
    return [
        replace(
            op,
            name=f"{op.name}.grad",
            phase="backward",
            bytes_read=op.bytes_read + op.bytes_written,
            bytes_written=op.bytes_read,
        )
    ]


def merge_ops(ops: Iterable[Op]) -> tuple[Op, ...]:
    """Identical operators (same name, shape, cost) merged into one with their `count` summed, in
    order of first appearance: a traced 32-layer model becomes one op per layer op, not 32."""
    merged: dict[tuple[Any, ...], Op] = {}
    for op in ops:
        key = (
            op.name,
            op.kind,
            op.phase,
            tuple(sorted(op.dims.items())),
            op.flops,
            op.useful_flops,
            op.bytes_read,
            op.bytes_written,
            op.dtype,
            op.causal,
        )
        seen = merged.get(key)
        merged[key] = op if seen is None else replace(seen, count=seen.count + op.count)
    return tuple(merged.values())
