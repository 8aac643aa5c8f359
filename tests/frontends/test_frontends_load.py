"""`frontends.load_model`: one loader for every verb's `--model`. References: the loaders it stands
for, run directly (`workload.get_model`, `frontends.from_onnx`, `frontends.from_torch`), and the
spec spellings of `workload.registry.model_spec_kind`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from twofold.errors import InputError
from twofold.frontends import load_model
from twofold.workload import get_model
from twofold.workload.model import ModelConfig
from twofold.workload.registry import model_spec_kind


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("llama3.1-8b", "catalog"),
        ("configs/config.json", "catalog"),
        ("resnet.onnx", "onnx"),
        ("RESNET.ONNX", "onnx"),
        ("torch:pkg.mod:factory", "torch"),
    ],
)
def test_a_spec_is_read_by_its_spelling(spec: str, kind: str) -> None:
    assert model_spec_kind(spec) == kind


def test_a_catalog_model_and_a_model_object() -> None:
    model = load_model("llama3.1-8b")
    assert isinstance(model, ModelConfig) and model == get_model("llama3.1-8b")
    assert load_model(model) is model


def test_input_shapes_belong_to_onnx_models_only() -> None:
    with pytest.raises(InputError, match="^input_shape='pixels=1x3x8x8': applies to an ONNX model"):
        load_model("llama3.1-8b", input_shapes={"pixels": (1, 3, 8, 8)})


@pytest.mark.parametrize("spec", ["torch:nomodule", "torch:no_such_module_xyz:factory", "torch:json:nothing"])
def test_a_bad_torch_spec_names_the_model(spec: str) -> None:
    with pytest.raises(InputError, match="^model=.*must be torch:package.module:factory"):
        load_model(spec)


def test_a_torch_spec_traces_what_the_factory_builds() -> None:
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from frontends_models import example

    from twofold.frontends import from_torch

    got = load_model("torch:frontends_models:tiny_llama_factory")
    module, inputs = example("llama")
    want = from_torch(module, inputs, name="tiny_llama_factory")
    assert got.forward_flops == want.forward_flops and got.backward_flops == want.backward_flops
    assert (got.batch, got.seq_len, got.param_count) == (want.batch, want.seq_len, want.param_count)
    assert torch is not None
