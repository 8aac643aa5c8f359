"""`from_torch`: a PyTorch module run once under a recording dispatch mode, as twofold operators
(the mode: `frontends.torch_recorder`).

Why a dispatch mode rather than `torch.export` or FX: a `TorchDispatchMode` sees every ATen kernel
the module actually runs, forward and backward (autograd's kernels included), with real shapes,
and it is where `torch.utils.flop_counter.FlopCounterMode` counts, so the FLOPs agree with it op by
op. `torch.export` captures no backward and rejects data-dependent Python; FX symbolic tracing
sees module calls, not kernels. A module built on the meta device (`with torch.device("meta"):`)
with meta inputs is traced without computing or allocating anything, so billion-parameter models
import in seconds; on meta, `scaled_dot_product_attention` is routed to the fused CPU kernel so
that attention stays one fused operator, as on a real device.

torch is imported inside the functions only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from twofold.errors import InputError
from twofold.frontends.torch_recorder import recorder_type
from twofold.workload.fusion import fuse_trace
from twofold.workload.imported import ImportedModel, merge_ops
from twofold.workload.precision import bytes_per_element

__all__ = ["from_torch"]


def from_torch(
    module: Any,
    example_inputs: Any,
    *,
    name: str | None = None,
    precision: str | None = "bf16",
    backward: bool = True,
) -> ImportedModel:
    """Run `module` once on `example_inputs` (forward, then backward when `backward` and any
    parameter is trainable) and return the operators it executed.

    `example_inputs`: a tensor, a tuple of positional arguments, or a dict of keyword arguments.
    `precision`: the number format the model will train or serve in, and the compute precision
    of its GEMMs, convolutions and attention. Bytes follow the traced tensors' dtypes: tensors in
    the module's own floating dtype (that of most of its parameter elements; without parameters,
    of the first floating-point input) are priced at `precision`'s width, so a model built in fp32
    on the meta device is priced as the bf16 model it stands for; tensors in any other dtype at
    their real width, so the fp32 upcast of a bf16 model's loss (`logits.float()`, as Megatron-Core
    and `torch.autocast` do) moves fp32 bytes. None: every tensor as traced. The module's state is
    left as found: gradients are taken with `torch.autograd.grad` (no `.grad` is written), buffers
    (BatchNorm running statistics) are restored and the random number generator is forked.
    The batch size is the leading dimension of the first tensor input; `seq_len` the second
    dimension of the first 2-D integer input (token ids), else None.
    """
    import torch

    if not isinstance(module, torch.nn.Module):
        raise InputError("module", type(module).__name__, "must be a torch.nn.Module")
    if precision is not None:
        bytes_per_element(precision)
    args, kwargs = _split_inputs(example_inputs)
    tensors = [t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)]
    if not tensors:
        raise InputError("example_inputs", type(example_inputs).__name__, "must contain at least one tensor")
    recorder = recorder_type()(precision=precision, base_dtype=_base_dtype(module, tensors))
    params = [p for p in module.parameters() if p.requires_grad]
    saved = {n: b.detach().clone() for n, b in module.named_buffers() if b.device.type != "meta"}
    cuda = sorted({t.device.index or 0 for t in tensors if t.device.type == "cuda"})
    try:
        with torch.random.fork_rng(devices=cuda), _tracker() as tracker:
            recorder.tracker = tracker
            with _meta_attention(), recorder:
                out = module(*args, **kwargs)
            recorder.close_run()
            # Hugging Face ModelOutput is an OrderedDict subclass that pytree may not know.
            leaves = torch.utils._pytree.tree_leaves(dict(out) if isinstance(out, Mapping) else out)
            outputs = [
                t for t in leaves if isinstance(t, torch.Tensor) and t.requires_grad and t.is_floating_point()
            ]
            traced = backward and bool(params) and bool(outputs)
            if traced:
                seeds = [torch.ones_like(t) for t in outputs]  # made outside the trace: not the model's
                recorder.phase = "backward"
                with recorder:
                    torch.autograd.grad(outputs, params, grad_outputs=seeds, allow_unused=True)
    finally:
        with torch.no_grad():
            for key, buf in module.named_buffers():
                if key in saved:
                    buf.copy_(saved[key])
    first = tensors[0]
    tokens = next((t for t in tensors if t.ndim == 2 and not t.is_floating_point()), None)
    count = sum(p.numel() for p in module.parameters())
    fused = fuse_trace(recorder.traced)
    return ImportedModel(
        name=name or type(module).__name__,
        source=f"torch:{type(module).__module__}.{type(module).__qualname__}",
        ops=merge_ops(op for op in recorder.ops if op.phase == "forward"),
        backward_ops=merge_ops(op for op in recorder.ops if op.phase == "backward"),
        backward="traced" if traced else "none",
        param_count=count,
        trainable_param_count=sum(p.numel() for p in params),
        unsupported=dict(recorder.unsupported),
        batch=int(first.shape[0]) if first.ndim else 1,
        seq_len=None if tokens is None else int(tokens.shape[1]),
        precision=precision or recorder.first_dtype or "fp32",
        fused_ops=merge_ops(op for op in fused if op.phase == "forward"),
        fused_backward_ops=merge_ops(op for op in fused if op.phase == "backward"),
    )


def _base_dtype(module: Any, tensors: Sequence[Any]) -> Any:
    """The module's own floating dtype: that of most of its floating parameter elements, else of
    the first floating-point input; None when neither exists."""
    by_dtype: Counter[Any] = Counter()
    for p in module.parameters():
        if p.is_floating_point():
            by_dtype[p.dtype] += p.numel()
    if by_dtype:
        return by_dtype.most_common(1)[0][0]
    return next((t.dtype for t in tensors if t.is_floating_point()), None)


def _split_inputs(example_inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    import torch

    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,), {}
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs), {}
    if isinstance(example_inputs, Mapping):
        return (), dict(example_inputs)
    raise InputError(
        "example_inputs",
        type(example_inputs).__name__,
        "must be a tensor, a tuple of positional arguments or a dict of keyword arguments",
    )


def _tracker() -> Any:
    """`torch.utils.module_tracker.ModuleTracker` (names ops by module), or a stand-in before 2.4."""
    try:
        from torch.utils.module_tracker import ModuleTracker
    except ImportError:  # older torch: ops are named by ATen kernel only
        import contextlib

        return contextlib.nullcontext(None)
    return ModuleTracker()


def _meta_attention() -> Any:
    """On meta tensors PyTorch picks the unfused math path for `scaled_dot_product_attention`
    (two batched GEMMs and a softmax); route it to the fused CPU kernel, which has meta and
    backward kernels, so a meta trace records attention as a real device runs it."""
    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    class MetaAttention(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001,ANN204
            kwargs = kwargs or {}
            if func is F.scaled_dot_product_attention:
                bound = dict(
                    zip(("query", "key", "value", "attn_mask", "dropout_p", "is_causal"), args, strict=False)
                )
                bound |= kwargs
                q = bound["query"]
                if q.device.type == "meta":
                    mask = bound.get("attn_mask")
                    if mask is not None and mask.dtype == torch.bool:
                        mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill(
                            ~mask, float("-inf")
                        )
                    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                        q,
                        bound["key"],
                        bound["value"],
                        bound.get("dropout_p", 0.0),
                        bound.get("is_causal", False),
                        attn_mask=mask,
                        scale=bound.get("scale"),
                    )[0]
            return func(*args, **kwargs)

    return MetaAttention()
