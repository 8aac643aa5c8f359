"""The unfused eager forms of norms, rotary embeddings and gated activations (`workload.layers`,
`UNFUSED_*`), checked against PyTorch itself: the reference Python modules of a Hugging Face-style
Llama are written out below, run under a dispatch mode that records every ATen kernel and the
bytes of the tensors it reads and writes, and the counts are compared with the derivations the
cost model uses. Also: the stacks that run such modules price them, the others do not."""

from __future__ import annotations

import pytest

from twofold.workload.layers import UNFUSED_GATED_ACTIVATION, UNFUSED_RMSNORM, UNFUSED_ROPE

torch = pytest.importorskip("torch")
from torch.utils import _pytree as pytree  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

# ATen ops that only make a view (no kernel, no traffic).
_VIEWS = {
    "view",
    "_unsafe_view",
    "slice",
    "expand",
    "unsqueeze",
    "squeeze",
    "t",
    "transpose",
    "select",
    "alias",
    "detach",
    "_to_copy_view",
}


class _Kernels(TorchDispatchMode):
    """Records (bytes moved, kernels) of every non-view ATen op touching a tensor of at least
    `elements` elements: what reads or writes the activation, not the per-row statistics or the
    per-position tables."""

    def __init__(self, elements: int) -> None:
        super().__init__()
        self.elements = elements
        self.bytes = 0
        self.kernels = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket.__name__ in _VIEWS:
            return out
        tensors = [t for t in pytree.tree_leaves((args, kwargs, out)) if isinstance(t, torch.Tensor)]
        big = [t for t in tensors if t.numel() >= self.elements]
        if big:
            self.kernels += 1
            self.bytes += sum(t.numel() * t.element_size() for t in big)
        return out


def _measure(fn, x, smallest: int | None = None):  # type: ignore[no-untyped-def]
    with _Kernels(x.numel() if smallest is None else smallest) as mode:
        fn(x)
    return mode.bytes / x.numel(), mode.kernels


def test_rmsnorm_as_hugging_face_writes_it_moves_nine_times_the_fused_kernel() -> None:
    weight = torch.ones(256, dtype=torch.bfloat16)

    def rmsnorm(x):  # the reference module's forward: upcast, mean square, scale, downcast
        h = x.to(torch.float32)
        variance = h.pow(2).mean(-1, keepdim=True)
        h = h * torch.rsqrt(variance + 1e-6)
        return weight * h.to(x.dtype)

    x = torch.randn(64, 256, dtype=torch.bfloat16)
    per_element, kernels = _measure(rmsnorm, x)
    fused = 2 * x.element_size()  # read the input once, write the output once
    assert per_element / fused == pytest.approx(UNFUSED_RMSNORM[0], rel=0.02)
    assert kernels == UNFUSED_RMSNORM[1]


def test_rotary_embedding_as_hugging_face_writes_it_moves_five_times_the_fused_kernel() -> None:
    seq, dim = 32, 64
    cos = torch.randn(seq, dim, dtype=torch.bfloat16)
    sin = torch.randn(seq, dim, dtype=torch.bfloat16)

    def rotate_half(x):
        x1, x2 = x[..., : dim // 2], x[..., dim // 2 :]
        return torch.cat((-x2, x1), dim=-1)

    def rope(q):  # q * cos + rotate_half(q) * sin, cos/sin broadcast over batch and heads
        return q * cos + rotate_half(q) * sin

    q = torch.randn(2, 8, seq, dim, dtype=torch.bfloat16)
    per_element, kernels = _measure(rope, q, smallest=q.numel() // 2)  # the halves count
    assert per_element / (2 * q.element_size()) == pytest.approx(UNFUSED_ROPE[0], rel=0.02)
    assert kernels == UNFUSED_ROPE[1]


def test_gated_activation_runs_two_kernels_over_five_passes() -> None:
    up = torch.randn(64, 512, dtype=torch.bfloat16)  # the up projection's output

    def swiglu(gate):  # act(gate) * up, gate and up the outputs of two projections
        return torch.nn.functional.silu(gate) * up

    gate = torch.randn(64, 512, dtype=torch.bfloat16)
    with _Kernels(gate.numel()) as mode:
        swiglu(gate)
    fused = 3 * gate.numel() * gate.element_size()  # read gate and up, write the product
    assert mode.bytes / fused == pytest.approx(UNFUSED_GATED_ACTIVATION[0], rel=0.02)
    assert mode.kernels == UNFUSED_GATED_ACTIVATION[1]
