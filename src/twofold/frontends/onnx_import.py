"""`from_onnx`: an ONNX graph (from PyTorch, TensorFlow/Keras via tf2onnx, JAX via jax2onnx) as
twofold operators, with the FLOP convention of the PyTorch path (`workload.imported`).

Shapes come from ONNX shape inference (`onnx.shape_inference.infer_shapes` with data
propagation) after the graph inputs are pinned to static shapes (the file's, or `input_shapes`).
An ONNX file holds no backward pass: `backward_ops` are derived from the forward
(`workload.imported.derived_backward`), with autograd's rule for which tensors need a gradient:
those computed from a floating-point initializer (a trainable weight). Left out: subgraphs of
control-flow nodes (If, Loop, Scan: listed as unsupported), and fusion of the MatMul-Softmax-MatMul
pattern exporters emit for attention (priced as two batched GEMMs and a softmax, the FLOPs of
fused attention but the memory traffic of the unfused score matrix).

onnx is imported inside the functions only.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from twofold.errors import InputError, near_matches
from twofold.frontends.onnx_shapes import infer_static_shapes
from twofold.workload.fusion import TensorRef, TracedOp, fuse_trace
from twofold.workload.imported import (
    ImportedModel,
    attention_op,
    conv_op,
    derived_backward,
    gemm_op,
    memory_op,
    merge_ops,
)
from twofold.workload.ops import Op, OpKind
from twofold.workload.precision import bytes_per_element

__all__ = ["from_onnx"]

_NORM = {
    "LayerNormalization",
    "BatchNormalization",
    "InstanceNormalization",
    "GroupNormalization",
    "RMSNormalization",
    "SimplifiedLayerNormalization",
    "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization",
    "LpNormalization",
}
_COMPUTE = {"MatMul", "Gemm", "FusedMatMul", "Conv", "ConvTranspose", "Attention"}
_SOFTMAX = {"Softmax", "LogSoftmax"}
_LOSS = {"SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss"}
_ELEMENTWISE = set(
    "Abs Acos Acosh Add And Asin Asinh Atan Atanh BitShift BitwiseAnd BitwiseNot BitwiseOr "
    "BitwiseXor Cast CastLike Ceil Celu Clip Cos Cosh Div Dropout Elu Equal Erf Exp Floor Gelu "
    "Greater GreaterOrEqual HardSigmoid HardSwish Hardmax IsInf IsNaN LeakyRelu Less LessOrEqual "
    "Log Max Mean Min Mish Mod Mul Neg Not Or PRelu Pow Reciprocal Relu Round Selu Sigmoid Sign Sin "
    "Sinh Softplus Softsign Sqrt Sub Sum Tan Tanh ThresholdedRelu Where Xor Swish FastGelu BiasGelu "
    "QuickGelu BiasAdd "
    # reductions, copies, indexing, pooling, resizing: memory-bound
    "ArgMax ArgMin ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin "
    "ReduceProd ReduceSum ReduceSumSquare CumSum TopK Concat Split Slice Pad Tile Expand Transpose "
    "Gather GatherElements GatherND ScatterElements ScatterND Trilu Resize Upsample DepthToSpace "
    "SpaceToDepth MaxPool AveragePool GlobalAveragePool GlobalMaxPool LpPool ConstantOfShape "
    "OneHot NonZero Compress ReverseSequence Range RandomNormal RandomNormalLike RandomUniform "
    "RandomUniformLike Bernoulli EyeLike".split()
)
# No data movement worth pricing: metadata, reshapes of contiguous data, constants.
_FREE = set(
    "Shape Size Constant Identity Reshape Flatten Squeeze Unsqueeze Optional OptionalGetElement "
    "OptionalHasElement".split()
)
# Outputs of these never carry a gradient (comparisons, indices, shapes).
_NON_DIFFERENTIABLE = set(
    "Shape Size Equal Greater GreaterOrEqual Less LessOrEqual Not And Or Xor IsInf IsNaN ArgMax ArgMin "
    "NonZero Range OneHot ConstantOfShape Constant RandomNormal RandomUniform RandomNormalLike "
    "RandomUniformLike Bernoulli EyeLike Sign Round Floor Ceil".split()
)
_FLOAT_TYPES = {1: "fp32", 10: "fp16", 11: "fp64", 16: "bf16", 17: "fp8", 18: "fp8", 19: "fp8", 20: "fp8"}


def from_onnx(
    path: str | Path,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    name: str | None = None,
    precision: str = "bf16",
) -> ImportedModel:
    """Read the ONNX file at `path` into operators for the batch its inputs describe.

    `input_shapes` fixes the shape of named graph inputs (required for every dynamic dimension,
    e.g. `{"input_ids": (8, 512)}`); a given shape must agree with the file's static dimensions.
    `precision`: the number format floating-point tensors are priced in. Malformed files, unknown
    input names and missing dimensions are `InputError`s.
    """
    import onnx
    from google.protobuf.message import DecodeError

    bytes_per_element(precision)
    file = Path(path)
    if not file.is_file():
        raise InputError("model", str(path), "no such file")
    try:
        model = onnx.load(str(file), load_external_data=False)
        onnx.checker.check_model(model)
    except (DecodeError, onnx.checker.ValidationError, ValueError, RuntimeError) as exc:
        raise InputError("model", str(path), f"not a valid ONNX file: {exc}") from None
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    _pin_input_shapes(inputs, dict(input_shapes or {}))
    # Shapes the exporter recorded with symbolic dimensions would shadow the inferred ones.
    del graph.value_info[:]
    for value in graph.output:
        value.type.tensor_type.ClearField("shape")
    try:
        model = infer_static_shapes(model)
    except (onnx.shape_inference.InferenceError, RuntimeError) as exc:
        raise InputError("model", str(path), f"shape inference failed: {exc}") from None
    graph = model.graph
    shapes, types = _value_shapes(graph)
    for init in graph.initializer:
        shapes[init.name] = tuple(int(d) for d in init.dims)
        types[init.name] = init.data_type
    trainable = {n for n, t in initializers.items() if t.data_type in _FLOAT_TYPES and len(t.dims) > 0}
    needs_grad = set(trainable)
    forward: list[Op] = []
    backward: list[Op] = []
    traced: list[TracedOp] = []  # for workload.fusion: each op with the tensors it reads/writes
    grad_flags: dict[str, tuple[bool, bool]] = {}
    unsupported: Counter[str] = Counter()
    for node in graph.node:
        reader = _NodeReader(node, shapes, types, precision)
        ops = _node_ops(node, reader, initializers, unsupported)
        grads = [i in needs_grad for i in node.input if i]
        if node.op_type not in _NON_DIFFERENTIABLE and any(grads):
            needs_grad.update(o for o in node.output if o and types.get(o) in _FLOAT_TYPES)
        first, second = (grads + [False, False])[:2]
        forward.extend(ops)
        refs_in = tuple(_ref(reader, n) for n in node.input if n)
        refs_out = tuple(_ref(reader, n) for n in node.output if n)
        traced.extend(TracedOp(op=op, inputs=refs_in, outputs=refs_out) for op in ops)
        if any(grads):  # for GEMMs and convolutions: which operands need a gradient
            for op in ops:
                other = second if op.kind in ("gemm", "conv") else True
                grad_flags[op.name] = (first, other)
                backward.extend(derived_backward(op, input_grad=first, weight_grad=other))
    fused_forward = fuse_trace(traced)
    fused_backward = [b for op in fused_forward for b in _fused_backward(op, grad_flags)]
    first_input = shapes.get(inputs[0].name, ()) if inputs else ()
    tokens = next(
        (
            shapes[i.name]
            for i in inputs
            if len(shapes.get(i.name) or ()) == 2 and types.get(i.name) in (6, 7)
        ),
        None,
    )
    params = sum(math.prod(initializers[n].dims) for n in trainable)
    return ImportedModel(
        name=name or file.stem,
        source=str(path),
        ops=merge_ops(forward),
        backward_ops=merge_ops(reversed(backward)),
        backward="derived" if trainable else "none",
        param_count=params,
        trainable_param_count=params,
        unsupported=dict(unsupported),
        batch=int(first_input[0]) if first_input else 1,
        seq_len=None if tokens is None else int(tokens[1]),
        precision=precision,
        fused_ops=merge_ops(fused_forward),
        fused_backward_ops=merge_ops(reversed(fused_backward)),
    )


def _ref(reader: _NodeReader, name: str) -> TensorRef:
    nbytes = reader.nbytes([name])
    return TensorRef(buffer=name, view=name, nbytes=nbytes, buffer_nbytes=nbytes)


def _fused_backward(op: Op, grad_flags: Mapping[str, tuple[bool, bool]]) -> list[Op]:
    """Derived backward of a fused op: a sibling GEMM group as its first member, a fused
    memory-bound group as one memory op over the group's inputs and output gradients (when any
    member needs a gradient)."""
    if "(" in op.name and op.name.endswith(" fused)"):
        members = op.name.rsplit("(", 1)[0].split("..")
        if not any(m in grad_flags for m in members):
            return []
        return derived_backward(op, input_grad=True, weight_grad=True)
    flags = grad_flags.get(op.name.split("(+", 1)[0])
    if flags is None:
        return []
    return derived_backward(op, input_grad=flags[0], weight_grad=flags[1])


def _pin_input_shapes(inputs: Sequence[Any], given: dict[str, Sequence[int]]) -> None:
    """Write static shapes into the graph inputs (in place); every dimension must end up known."""
    names = [i.name for i in inputs]
    for key in given:
        if key not in names:
            hint = near_matches(key, names) or names
            raise InputError("input_shape", key, f"no such model input; inputs: {', '.join(hint)}")
    for value in inputs:
        dims = value.type.tensor_type.shape.dim
        shape = given.get(value.name)
        if shape is not None:
            if len(shape) != len(dims):
                raise InputError(
                    "input_shape", value.name, f"has rank {len(dims)} in the model, {len(shape)} given"
                )
            for i, (dim, size) in enumerate(zip(dims, shape, strict=True)):
                if dim.HasField("dim_value") and dim.dim_value > 0 and dim.dim_value != size:
                    raise InputError(
                        "input_shape",
                        value.name,
                        f"dimension {i} is {dim.dim_value} in the model, {size} given",
                    )
                dim.dim_value = int(size)
            continue
        for i, dim in enumerate(dims):
            if not (dim.HasField("dim_value") and dim.dim_value > 0):
                label = f" ({dim.dim_param!r})" if dim.dim_param else ""
                raise InputError(
                    "input_shape",
                    value.name,
                    f"dimension {i}{label} is dynamic; give it, e.g. --input-shape {value.name}=1x...",
                )


def _value_shapes(graph: Any) -> tuple[dict[str, tuple[int, ...] | None], dict[str, int]]:
    shapes: dict[str, tuple[int, ...] | None] = {}
    types: dict[str, int] = {}
    for value in (*graph.input, *graph.value_info, *graph.output):
        tensor = value.type.tensor_type
        types[value.name] = tensor.elem_type
        if not tensor.HasField("shape"):
            shapes[value.name] = None
            continue
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        shapes[value.name] = None if any(d < 0 for d in dims) else tuple(dims)
    return shapes, types


class _NodeReader:
    """Shapes and bytes of one node's tensors."""

    def __init__(
        self, node: Any, shapes: Mapping[str, Any], types: Mapping[str, int], precision: str
    ) -> None:
        self.node, self.shapes, self.types, self.precision = node, shapes, types, precision

    def shape(self, name: str) -> tuple[int, ...] | None:
        return self.shapes.get(name)

    def dims(self, name: str) -> tuple[int, ...]:
        """The shape of a tensor of a node whose shapes are `known()`."""
        shape = self.shapes.get(name)
        assert shape is not None, f"{name}: dims() called before known()"
        return shape

    def known(self) -> bool:
        return all(self.shape(n) is not None for n in (*self.node.input, *self.node.output) if n)

    def nbytes(self, names: Sequence[str]) -> float:
        total = 0.0
        for n in names:
            shape = self.shape(n) if n else None
            if shape is None:
                continue
            elem = self.types.get(n, 1)
            width = bytes_per_element(self.precision) if elem in _FLOAT_TYPES else _INT_WIDTH.get(elem, 4)
            total += math.prod(shape) * width
        return total


_INT_WIDTH = {2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 12: 4, 13: 8}


def _attr(node: Any, key: str, default: Any) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == key:
            return onnx.helper.get_attribute_value(a)
    return default


def _node_ops(
    node: Any, r: _NodeReader, initializers: Mapping[str, Any], unsupported: Counter[str]
) -> list[Op]:
    op_type = node.op_type
    name = node.name or op_type
    if op_type in _FREE:
        return []
    if not r.known():
        if op_type in _COMPUTE:  # losing a GEMM's FLOPs silently would be a wrong answer
            missing = [n for n in (*node.input, *node.output) if n and r.shape(n) is None]
            raise InputError(
                "model",
                name,
                f"shape inference could not find the shape of {', '.join(missing)} ({op_type}); "
                "give every input's shape (--input-shape)",
            )
        unsupported[f"{op_type} (shape unknown)"] += 1
        return []
    ins = [i for i in node.input if i]
    outs = [o for o in node.output if o]
    read, written = r.nbytes(ins), r.nbytes(outs)
    common: dict[str, Any] = {
        "phase": "forward",
        "dtype": r.precision,
        "bytes_read": read,
        "bytes_written": written,
    }
    if op_type in ("MatMul", "Gemm", "FusedMatMul"):
        a, b = r.dims(ins[0]), r.dims(ins[1])
        if op_type == "Gemm":
            m, k = (a[1], a[0]) if _attr(node, "transA", 0) else a
            n = b[0] if _attr(node, "transB", 0) else b[1]
            return [gemm_op(name, m=m, n=n, k=k, **common)]
        return [_matmul(name, a, b, common)]
    if op_type in ("Conv", "ConvTranspose"):
        x, w, y = r.dims(ins[0]), r.dims(ins[1]), r.dims(outs[0])
        groups = int(_attr(node, "group", 1))
        if op_type == "Conv":
            geometry: dict[str, Any] = {"in_channels": x[1], "out_channels": w[0], "out_spatial": y[2:]}
        else:  # the input gradient of the convolution it transposes (see conv_op)
            geometry = {"in_channels": y[1], "out_channels": x[1], "out_spatial": x[2:]}
        role = 0 if op_type == "Conv" else 1
        return [conv_op(name, role=role, batch=x[0], kernel=w[2:], groups=groups, **geometry, **common)]
    if op_type == "Attention" and len(r.dims(ins[0])) == 4:  # ai.onnx opset 23: (b, heads, seq, d)
        q, key, v = (r.dims(i) for i in ins[:3])
        return [
            attention_op(
                name,
                batch=q[0],
                heads=q[1],
                kv_heads=key[1],
                q_len=q[2],
                kv_len=key[2],
                head_dim=q[3],
                v_head_dim=v[3],
                causal=bool(_attr(node, "is_causal", 0)),
                **common,
            )
        ]
    elements = max((math.prod(r.dims(o)) for o in outs), default=0)
    kind: OpKind
    if op_type in _NORM:
        kind = "norm"
    elif op_type in _SOFTMAX:
        kind = "softmax"
    elif op_type in _LOSS:
        kind = "loss"
    elif op_type == "Gather" and ins[0] in initializers:  # an embedding lookup reads its rows only
        kind, common["bytes_read"] = "embedding", r.nbytes(ins[1:]) + written
    elif op_type in _ELEMENTWISE:
        kind = "elementwise"
    else:
        unsupported[op_type] += 1
        kind = "elementwise"
    return [memory_op(name, kind=kind, elements=elements, **common)]


def _matmul(name: str, a: tuple[int, ...], b: tuple[int, ...], common: dict[str, Any]) -> Op:
    """numpy.matmul semantics. A 2-D right operand (a weight) folds the left operand's leading
    dimensions into `m`, as PyTorch's `matmul` does before calling `mm`; otherwise the broadcast
    leading dimensions are the batch of a `bmm`."""
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    k, n = a2[-1], b2[-1]
    if len(b2) == 2:
        return gemm_op(name, m=math.prod(a2[:-1]), n=n, k=k, **common)
    lead_a, lead_b = a2[:-2], b2[:-2]
    width = max(len(lead_a), len(lead_b))
    lead_a = (1,) * (width - len(lead_a)) + lead_a
    lead_b = (1,) * (width - len(lead_b)) + lead_b
    batch = math.prod(max(x, y) for x, y in zip(lead_a, lead_b, strict=True))
    return gemm_op(name, m=a2[-2], n=n, k=k, batch=batch, **common)
