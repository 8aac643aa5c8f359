"""Static shapes for every tensor of an ONNX graph whose inputs have static shapes.

`onnx.shape_inference` alone stops at the shape arithmetic exporters emit for dynamic axes
(`Shape -> Gather -> Mul -> Concat -> Reshape`): its data propagation covers a few operators only.
`infer_static_shapes` alternates shape inference with folding that arithmetic: a node whose
inputs are all known small constants (initializers, `Constant`s, `Shape`s of inferred tensors) is
evaluated with the ONNX reference implementation (`onnx.reference`), and its outputs become
initializers, until nothing more folds. Only tensors up to `FOLD_ELEMENTS` elements are folded,
so no weight is ever computed on; folded nodes are shape bookkeeping that runtimes also fold.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FOLD_ELEMENTS", "infer_static_shapes"]

FOLD_ELEMENTS = 4096
_NEVER_FOLD = {
    "If",
    "Loop",
    "Scan",
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Bernoulli",
    "Multinomial",
}


def infer_static_shapes(model: Any, *, rounds: int = 16) -> Any:
    """`model` with shape inference run and constant shape arithmetic folded (a new ModelProto)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    for _ in range(rounds):
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
        graph = model.graph
        shapes = _static_shapes(graph)
        values: dict[str, Any] = {
            t.name: numpy_helper.to_array(t)
            for t in graph.initializer
            if _small(t.dims) and t.data_location != onnx.TensorProto.EXTERNAL
        }
        kept, folded = [], {}
        for node in graph.node:
            outputs = _fold(node, values, shapes, np)
            if outputs is None:
                kept.append(node)
                continue
            values.update(outputs)
            folded.update(outputs)
        if not folded:
            return model
        del graph.node[:]
        graph.node.extend(kept)
        graph.initializer.extend(numpy_helper.from_array(np.asarray(v), name=k) for k, v in folded.items())
        folded_names = set(folded)
        kept_info = [v for v in graph.value_info if v.name not in folded_names]
        del graph.value_info[:]
        graph.value_info.extend(kept_info)
    return onnx.shape_inference.infer_shapes(model, data_prop=True)


def _small(dims: Any) -> bool:
    size = 1
    for d in dims:
        size *= int(d)
    return size <= FOLD_ELEMENTS


def _static_shapes(graph: Any) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for value in (*graph.input, *graph.value_info, *graph.output):
        tensor = value.type.tensor_type
        if tensor.HasField("shape"):
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
            if all(d >= 0 for d in dims):
                out[value.name] = dims
    return out


def _fold(
    node: Any, values: dict[str, Any], shapes: dict[str, tuple[int, ...]], np: Any
) -> dict[str, Any] | None:
    """The node's outputs as constants, or None when they are not (small) constants."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    if node.domain not in ("", "ai.onnx") or node.op_type in _NEVER_FOLD:
        return None
    if node.op_type in ("Shape", "Size"):
        shape = shapes.get(node.input[0])
        if shape is None:
            return None
        if node.op_type == "Size":
            return {node.output[0]: np.array(int(np.prod(shape)), dtype=np.int64)}
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        start, end = attrs.get("start", 0), attrs.get("end", len(shape))
        return {node.output[0]: np.array(shape[start:end], dtype=np.int64)}
    inputs = [i for i in node.input if i]
    if not all(i in values for i in inputs):
        return None
    try:
        results = ReferenceEvaluator(node).run(None, {i: values[i] for i in inputs})
    except (ValueError, TypeError, RuntimeError, NotImplementedError, KeyError, IndexError):
        return None  # an operator the reference cannot evaluate here stays in the graph
    outputs = {name: np.asarray(r) for name, r in zip(node.output, results, strict=False) if name}
    if any(v.size > FOLD_ELEMENTS for v in outputs.values()):
        return None
    return outputs
