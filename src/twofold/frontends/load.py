"""`load_model`: one loader for every verb's `--model`, catalog or imported.

A spec is read by its spelling (`workload.registry.model_spec_kind`): a catalog id, alias or
config.json path gives a `ModelConfig` (`workload.registry.get_model`); `MODEL.onnx` an
`ImportedModel` of the ONNX graph at `input_shapes` (`frontends.from_onnx`); `torch:package.
module:factory` the `ImportedModel` of the PyTorch module that `factory()` returns with its example
inputs, as `(module, example_inputs)` (`frontends.from_torch`). A model object is returned as it
is. Both kinds are `workload.protocol.TrainingModel`s: the estimator and the search take either.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from twofold.errors import InputError
from twofold.workload.model import ModelConfig
from twofold.workload.protocol import TrainingModel
from twofold.workload.registry import TORCH_SPEC_PREFIX, get_model, model_spec_kind

if TYPE_CHECKING:  # loaded only with an imported model (start-up time)
    from twofold.workload.imported import ImportedModel

__all__ = ["load_model"]


def load_model(
    spec: str | ModelConfig | ImportedModel,
    *,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    precision: str = "bf16",
) -> ModelConfig | ImportedModel:
    """The model `spec` names (module docstring). `input_shapes` (an ONNX graph's dynamic inputs)
    and `precision` (the number format an imported model's tensors are priced in) apply to
    imported models only; `input_shapes` with a catalog model is an InputError."""
    if not isinstance(spec, str):
        if isinstance(spec, TrainingModel):  # a model object: ModelConfig or ImportedModel
            return spec
        raise InputError(
            "model", spec, "must be a catalog id, a config.json, MODEL.onnx or torch:module:factory"
        )
    kind = model_spec_kind(spec)
    if kind != "onnx" and input_shapes:
        shapes = ",".join(f"{k}={'x'.join(map(str, v))}" for k, v in input_shapes.items())
        raise InputError("input_shape", shapes, "applies to an ONNX model (MODEL.onnx) only")
    if kind == "onnx":
        from twofold.frontends.onnx_import import (
            from_onnx,
        )  # lazy: start-up time (a catalog model needs none)

        return from_onnx(spec, input_shapes=dict(input_shapes or {}), precision=precision)
    if kind == "torch":
        return _from_torch_spec(spec, precision)
    return get_model(spec)


def _from_torch_spec(spec: str, precision: str) -> ImportedModel:
    """`torch:package.module:factory`: import the module, call `factory()`, trace what it returns."""
    target = spec.removeprefix(TORCH_SPEC_PREFIX)
    module_name, sep, attr = target.partition(":")
    rule = "must be torch:package.module:factory, factory() returning (torch module, example inputs)"
    if not sep or not module_name or not attr:
        raise InputError("model", spec, rule)
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InputError("model", spec, f"{rule} ({exc})") from exc
    built = factory()
    if not isinstance(built, tuple) or len(built) != 2:
        raise InputError("model", spec, rule)
    module, example_inputs = built
    from twofold.frontends.torch_import import from_torch  # lazy: start-up time (a catalog model needs none)

    return from_torch(module, example_inputs, name=attr, precision=precision)
