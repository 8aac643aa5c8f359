"""The recording `TorchDispatchMode` behind `from_torch` (`frontends.torch_import`): every ATen
kernel a module runs, forward and backward, becomes twofold operators (GEMMs, convolutions and
attention with their shapes; everything else a memory-bound op), priced in bytes at the traced
tensors' widths, and is kept with the buffers it read and wrote for `workload.fusion`.

torch is imported inside the functions only.
"""

from __future__ import annotations

import functools
import math
import re
import weakref
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from twofold.frontends.aten_kernels import (
    ATTENTION,
    ATTENTION_BACKWARD,
    CONV,
    DTYPE_NAMES,
    EMBEDDING,
    FREE,
    GEMM,
    LOSS,
    MEMORY,
    NORM,
    SOFTMAX,
)
from twofold.workload.fusion import TensorRef, TracedOp
from twofold.workload.imported import attention_op, conv_op, gemm_op, memory_op
from twofold.workload.ops import Op, OpKind, Phase
from twofold.workload.precision import bytes_per_element

__all__ = ["recorder_type"]


@functools.cache
def recorder_type() -> type:
    """The recording `TorchDispatchMode` (defined on first use: torch is imported lazily)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class Recorder(TorchDispatchMode):
        def __init__(self, *, precision: str | None, base_dtype: Any) -> None:
            super().__init__()
            self.precision = precision
            self.base_dtype = base_dtype
            self.phase: Phase = "forward"
            self.tracker: Any = None
            self.ops: list[Op] = []
            self.unsupported: Counter[str] = Counter()
            self.first_dtype: str | None = None
            # For `workload.fusion`: every op with the buffers it read and wrote, in order.
            self.traced: list[TracedOp] = []
            self._buffers: dict[int, tuple[int, Any]] = {}
            self._next_buffer = 0
            # The current run of forward ops under disabled grad mode: where it starts in `traced`,
            # and weak references to what it produced (`_close_run`).
            self._run_start: int | None = None
            self._run_refs: list[Any] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001,ANN204
            kwargs = kwargs or {}
            packet = str(func.overloadpacket)
            known = _classify(func, packet) is not None
            if not known and not func.is_view and packet not in FREE:
                # As FlopCounterMode does: an op without its own rule may decompose into ops with one.
                decomposed = func.decompose(*args, **kwargs)
                if decomposed is not NotImplemented:
                    return decomposed
            out = func(*args, **kwargs)
            self._follow_runs(out)
            if func.is_view or packet in FREE:
                return out
            # An `out=` argument is written, not read (`exp(x, out=y)`): it counts as an output.
            outs = {a.name for a in func._schema.arguments if getattr(a, "is_out", False)}
            read_kwargs = {k: v for k, v in kwargs.items() if k not in outs}
            inputs = [t for t in tree_leaves((args, read_kwargs)) if isinstance(t, torch.Tensor)]
            outputs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
            if not outputs and not known:
                self.unsupported[packet] += 1
                return out
            new = self._ops(func, packet, args, kwargs, inputs, outputs, out)
            self.ops.extend(new)
            refs_in, refs_out = self._refs(inputs), self._refs(outputs)
            fusible = self.phase == "forward" or not _in_custom_function_backward()
            self.traced.extend(
                TracedOp(op=op, inputs=refs_in, outputs=refs_out, fusible=fusible) for op in new
            )
            return out

        def _follow_runs(self, out: Any) -> None:
            """Find the forward ops of custom `torch.autograd.Function`s (kept out of fusion:
            `workload.fusion`). A Function's forward runs with grad mode disabled inside a forward
            that has it enabled; once grad mode is back, a tensor the run produced has a custom
            Function's node as its `grad_fn` if and only if the run was (or ended in) one."""
            if self.phase != "forward":
                return
            if torch.is_grad_enabled():
                self.close_run()
                return
            if self._run_start is None:
                self._run_start = len(self.traced)
            self._run_refs.extend(weakref.ref(t) for t in tree_leaves(out) if isinstance(t, torch.Tensor))

        def close_run(self) -> None:
            start, refs = self._run_start, self._run_refs
            self._run_start, self._run_refs = None, []
            if start is None:
                return
            if any(_is_custom_function(getattr(ref(), "grad_fn", None)) for ref in refs):
                self.traced[start:] = [replace(t, fusible=False) for t in self.traced[start:]]

        def _refs(self, tensors: Sequence[torch.Tensor]) -> tuple[TensorRef, ...]:
            """Each tensor's buffer (storage, identified while it lives: a weak reference tells a
            freed storage from a new one at the same address) and view."""
            from torch.multiprocessing.reductions import StorageWeakRef

            refs = []
            for t in tensors:
                try:
                    storage = t.untyped_storage()
                except (RuntimeError, NotImplementedError):  # sparse or opaque tensors: no dataflow
                    refs.append(
                        TensorRef(buffer=object(), view=None, nbytes=self._bytes([t]), buffer_nbytes=0.0)
                    )
                    continue
                key = storage._cdata
                known = self._buffers.get(key)
                if known is None or known[1].expired():
                    self._next_buffer += 1
                    known = (self._next_buffer, StorageWeakRef(storage))
                    self._buffers[key] = known
                nbytes = self._bytes([t])
                size = storage.nbytes() / max(t.element_size(), 1) * self._width(t)
                view = (t.storage_offset(), tuple(t.shape), tuple(t.stride()))
                refs.append(
                    TensorRef(buffer=known[0], view=view, nbytes=nbytes, buffer_nbytes=max(size, nbytes))
                )
            return tuple(refs)

        def _bytes(self, tensors: Sequence[torch.Tensor]) -> float:
            total = 0.0
            for t in tensors:
                if t.layout != torch.strided:
                    elements = t.numel()
                else:  # a broadcast (stride 0) dimension is read once, not once per index
                    elements = math.prod(s for s, st in zip(t.shape, t.stride(), strict=True) if st != 0)
                    elements = 0 if t.numel() == 0 else elements
                total += elements * self._width(t)
            return total

        def _width(self, t: torch.Tensor) -> float:
            """Bytes per element: `precision`'s width for the module's own floating dtype, else
            the tensor's (an fp32 upcast in a bf16 model, integer indices)."""
            if self.precision is not None and t.is_floating_point() and t.dtype == self.base_dtype:
                return bytes_per_element(self.precision)
            return float(t.element_size())

        def _dtype(self, tensors: Sequence[torch.Tensor]) -> str:
            """The priced dtype of a memory-bound op: that of its first floating-point tensor."""
            floating = [t for t in tensors if t.is_floating_point()]
            if self.precision is not None and (not floating or floating[0].dtype == self.base_dtype):
                return self.precision
            return _dtype_name(floating or tensors)

        def _name(self, packet: str) -> str:
            short = packet.removeprefix("aten.")
            if self.phase == "backward":  # ModuleTracker's module during backward is not reliable
                return short
            parents = getattr(self.tracker, "parents", None) or ()
            paths = [p.split(".", 1)[1] for p in parents if "." in p]
            if not paths:
                return short
            deepest = max(paths, key=lambda p: (p.count("."), p))
            return f"{re.sub(r'(?<![^.])[0-9]+(?![^.])', '*', deepest)}.{short}"

        def _ops(self, func, packet, args, kwargs, inputs, outputs, out) -> list[Op]:  # noqa: ANN001
            dtype = self.precision or _dtype_name(inputs or outputs)  # compute precision
            if self.first_dtype is None and (inputs or outputs):
                self.first_dtype = _dtype_name(inputs or outputs)
            name, phase = self._name(packet), self.phase
            read, written = self._bytes(inputs), self._bytes(outputs)
            kind = _classify(func, packet)
            if kind == "gemm":
                a, b = (args[1], args[2]) if packet in ("aten.addmm", "aten.baddbmm") else (args[0], args[1])
                batch = int(a.shape[0]) if a.ndim == 3 else 1
                m, k, n = int(a.shape[-2]), int(a.shape[-1]), int(b.shape[-1])
                op = gemm_op(
                    name,
                    phase=phase,
                    m=m,
                    n=n,
                    k=k,
                    batch=batch,
                    dtype=dtype,
                    bytes_read=read,
                    bytes_written=written,
                )
                return [op]
            if kind == "conv":
                return _conv_ops(name, phase, func, args, kwargs, out, dtype, self._bytes)
            if kind == "attention":
                bound = _bind(func, args, kwargs)
                q, k, v = bound["query"], bound["key"], bound["value"]
                backward = packet in ATTENTION_BACKWARD
                return [
                    attention_op(
                        name,
                        phase="backward" if backward else phase,
                        batch=int(q.shape[0]),
                        heads=int(q.shape[1]),
                        kv_heads=int(k.shape[1]),
                        q_len=int(q.shape[2]),
                        kv_len=int(k.shape[2]),
                        head_dim=int(q.shape[3]),
                        v_head_dim=int(v.shape[3]),
                        causal=bool(bound.get("is_causal", False)),
                        dtype=dtype,
                        bytes_read=read,
                        bytes_written=written,
                    )
                ]
            if packet == "aten.embedding":  # a gather: reads the looked-up rows, not the table
                read = self._bytes(inputs[1:]) + written
            if packet in ("aten.index", "aten.gather") and inputs:  # reads the gathered elements only
                read = self._bytes(inputs[1:]) + written
            if packet in ("aten.index_put_", "aten._index_put_impl_") and len(inputs) > 1:
                # An in-place scatter writes (and, accumulating, reads) the updated elements only.
                values = inputs[-1]
                updated = values.numel() * self._width(inputs[0])
                accumulate = bool(_bind(func, args, kwargs).get("accumulate", False))
                read = self._bytes(inputs[1:]) + (updated if accumulate else 0.0)
                written = updated
            if packet in ("aten.nll_loss_forward", "aten.nll_loss2d_forward"):
                target = inputs[1]
                read = self._bytes(inputs[1:2]) + target.numel() * self._bytes(inputs[:1]) / max(
                    inputs[0].numel(), 1
                )
            if kind is None:
                self.unsupported[packet] += 1
                kind = "elementwise"
            return [
                memory_op(
                    name,
                    kind=kind,
                    phase=phase,
                    elements=max(t.numel() for t in outputs) if outputs else 0,
                    dtype=self._dtype(inputs or outputs) if inputs or outputs else dtype,
                    bytes_read=read,
                    bytes_written=written,
                )
            ]

    return Recorder


def _is_custom_function(node: Any) -> bool:
    """Whether an autograd node is the backward of a user's or a framework's custom
    `torch.autograd.Function` (not one of PyTorch's own, such as reentrant checkpointing, which
    wraps ordinary layers)."""
    import torch

    if not isinstance(node, torch.autograd.function.BackwardCFunction):
        return False
    forward_cls = getattr(node, "_forward_cls", None)
    module = getattr(forward_cls, "__module__", "") or ""
    return not (module == "torch" or module.startswith("torch."))


def _in_custom_function_backward() -> bool:
    """Whether the autograd engine is running a custom Function's backward (its ops and the
    engine's cast of its result back to the input's dtype)."""
    import torch

    current = getattr(torch._C, "_current_autograd_node", None)
    return current is not None and _is_custom_function(current())


def _classify(func: Any, packet: str) -> OpKind | None:
    import torch

    if packet in GEMM:
        return "gemm"
    if packet in CONV or packet == "aten.convolution_backward":
        return "conv"
    if packet in ATTENTION or packet in ATTENTION_BACKWARD:
        return "attention"
    if packet in NORM:
        return "norm"
    if packet in SOFTMAX:
        return "softmax"
    if packet in EMBEDDING:
        return "embedding"
    if packet in LOSS:
        return "loss"
    if packet in MEMORY or torch.Tag.pointwise in func.tags:
        return "elementwise"
    return None


def _bind(func: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Argument name -> value (defaults filled) from the op's schema."""
    bound: dict[str, Any] = {}
    positional = list(args)
    for arg in func._schema.arguments:
        if not arg.kwarg_only and positional:
            bound[arg.name] = positional.pop(0)
        elif arg.name in kwargs:
            bound[arg.name] = kwargs[arg.name]
        elif arg.has_default_value():
            bound[arg.name] = arg.default_value
    return bound


def _conv_ops(name, phase, func, args, kwargs, out, dtype, nbytes) -> list[Op]:  # noqa: ANN001
    """Forward convolutions and `convolution_backward` as `conv_op`s (geometry of the forward
    convolution; a transposed convolution is the input gradient of the one it transposes)."""
    bound = _bind(func, args, kwargs)
    transposed = bool(bound.get("transposed", False)) or "transpose" in str(func)
    if str(func.overloadpacket) == "aten.convolution_backward":
        grad_out, x, w = args[0], args[1], args[2]
        grad_in, grad_w, grad_bias = out
        geometry = _conv_geometry(x.shape, w.shape, grad_out.shape, transposed)
        ops = []
        if grad_in is not None:
            role = 0 if transposed else 1
            ops.append(
                conv_op(
                    f"{name}.dgrad",
                    phase="backward",
                    role=role,
                    dtype=dtype,
                    bytes_read=nbytes([grad_out, w]),
                    bytes_written=nbytes([grad_in]),
                    **geometry,
                )
            )
        if grad_w is not None:
            ops.append(
                conv_op(
                    f"{name}.wgrad",
                    phase="backward",
                    role=2,
                    dtype=dtype,
                    bytes_read=nbytes([grad_out, x]),
                    bytes_written=nbytes([t for t in (grad_w, grad_bias) if t is not None]),
                    **geometry,
                )
            )
        return ops
    x, w = args[0], args[1]
    outputs = [out] if not isinstance(out, (tuple, list)) else [t for t in out if t is not None]
    return [
        conv_op(
            name,
            phase=phase,
            role=1 if transposed else 0,
            dtype=dtype,
            bytes_read=nbytes([t for t in (x, w, bound.get("bias")) if t is not None]),
            bytes_written=nbytes(outputs),
            **_conv_geometry(x.shape, w.shape, outputs[0].shape, transposed),
        )
    ]


def _conv_geometry(x: Sequence[int], w: Sequence[int], y: Sequence[int], transposed: bool) -> dict[str, Any]:
    """The forward convolution behind a (transposed) convolution: `x` input, `w` weight, `y` output.

    Regular: `w = (C_out, C_in/groups, *kernel)`. Transposed from `C_in` to `C_out` channels:
    `w = (C_in, C_out/groups, *kernel)`; it is the input gradient of a convolution from `C_out` to
    `C_in` channels whose output positions are `x`'s.
    """
    if transposed:
        return {
            "batch": int(x[0]),
            "in_channels": int(y[1]),
            "out_channels": int(x[1]),
            "out_spatial": tuple(int(s) for s in x[2:]),
            "kernel": tuple(int(s) for s in w[2:]),
            "groups": int(y[1]) // int(w[1]),
        }
    return {
        "batch": int(x[0]),
        "in_channels": int(x[1]),
        "out_channels": int(w[0]),
        "out_spatial": tuple(int(s) for s in y[2:]),
        "kernel": tuple(int(s) for s in w[2:]),
        "groups": int(x[1]) // int(w[1]),
    }


def _dtype_name(tensors: Sequence[Any]) -> str:
    floating = [t for t in tensors if t.is_floating_point()]
    dtype = str((floating or tensors)[0].dtype).removeprefix("torch.")
    return DTYPE_NAMES.get(dtype, dtype)
