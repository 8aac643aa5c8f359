"""`from_onnx` against the PyTorch path and FlopCounterMode, on models exported in the test; input
shapes, malformed files and the `twofold inspect` verb."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from frontends_models import by_group, example, export_onnx, reference_flops  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

from twofold.cli import main  # noqa: E402
from twofold.errors import InputError  # noqa: E402
from twofold.frontends import from_onnx, from_torch, parse_input_shapes  # noqa: E402


def _flops_by_kind(ops: tuple) -> dict[str, float]:
    out: dict[str, float] = {}
    for op in ops:
        if op.flops:
            out[op.kind] = out.get(op.kind, 0.0) + op.total_flops
    return out


# Llama as Hugging Face writes it (fp32 RMSNorm by hand, K/V heads repeated before SDPA); the
# `nn.RMSNorm` / `enable_gqa` variant does not export: the TorchScript exporter has no rms_norm at
# its opset 20 and no SDPA with enable_gqa.
@pytest.mark.parametrize("name", ["resnet", "vit", "bert", "hf_llama"])
def test_onnx_forward_flops_equal_the_torch_path_and_flop_counter_mode(name: str, tmp_path: Path) -> None:
    module, inputs = example(name)
    path = export_onnx(module, inputs, tmp_path / f"{name}.onnx")
    imported = from_onnx(path)
    traced = from_torch(module, inputs)
    assert imported.forward_flops == traced.forward_flops
    assert imported.forward_flops == sum(reference_flops(module, inputs)["forward"].values())
    assert imported.batch == 2
    # The exporter folds eval-mode BatchNorm into the convolutions (and constant position rows):
    # fewer parameters in the file, never more.
    assert 0 < imported.param_count <= traced.param_count
    assert imported.unsupported == {}


def test_derived_cnn_backward_equals_flop_counter_mode(tmp_path: Path) -> None:
    module, inputs = example("resnet")
    imported = from_onnx(export_onnx(module, inputs, tmp_path / "resnet.onnx"))
    module.train()
    reference = reference_flops(module, inputs)["backward"]
    # The first convolution reads the image, which needs no gradient: no input-gradient conv.
    assert imported.backward == "derived"
    assert _flops_by_kind(imported.backward_ops) == by_group(reference)


def test_dynamic_dimensions_need_input_shapes(tmp_path: Path) -> None:
    module, inputs = example("bert")
    path = export_onnx(
        module,
        inputs,
        tmp_path / "bert.onnx",
        input_names=["ids", "keep"],
        dynamic_axes={"ids": {0: "batch"}, "keep": {0: "batch"}},
    )
    with pytest.raises(InputError, match="ids.*dimension 0 .'batch'. is dynamic"):
        from_onnx(path)
    two = from_onnx(path, input_shapes={"ids": (2, 12), "keep": (2, 12)})
    six = from_onnx(path, input_shapes={"ids": (6, 12), "keep": (6, 12)})
    assert two.forward_flops == from_torch(module, inputs).forward_flops
    assert six.forward_flops == pytest.approx(3 * two.forward_flops)  # every GEMM and attention is per token
    assert six.batch == 6 and six.seq_len == 12
    with pytest.raises(InputError, match="no such model input"):
        from_onnx(path, input_shapes={"idz": (2, 12), "keep": (2, 12)})
    with pytest.raises(InputError, match="rank 2"):
        from_onnx(path, input_shapes={"ids": (2, 12, 1), "keep": (2, 12)})
    with pytest.raises(InputError, match="dimension 1 is 12"):
        from_onnx(path, input_shapes={"ids": (2, 13), "keep": (2, 12)})


def _graph_file(path: Path, nodes: list, inputs: list, outputs: list, inits: list | None = None) -> Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits or [])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_hand_built_graph_flops_and_unsupported_ops(tmp_path: Path) -> None:
    # MatMul (4x8)@(8x16): 2*4*16*8 FLOPs; Gemm with transB (4x16)@(16x3)^T... -> 2*4*3*16;
    # Det is not an operator twofold knows: listed once, priced as a zero-FLOP memory op.
    w1 = helper.make_tensor("w1", TensorProto.FLOAT, [8, 16], [0.0] * 128)
    w2 = helper.make_tensor("w2", TensorProto.FLOAT, [3, 16], [0.0] * 48)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Gemm", ["h", "w2"], ["y"], transB=1),
        helper.make_node("Reshape", ["y", "s"], ["sq"]),
        helper.make_node("Det", ["sq"], ["d"]),
    ]
    s = helper.make_tensor("s", TensorProto.INT64, [3], [3, 2, 2])
    path = _graph_file(
        tmp_path / "hand.onnx",
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
        [helper.make_tensor_value_info("d", TensorProto.FLOAT, [3])],
        [w1, w2, s],
    )
    imported = from_onnx(path)
    assert imported.forward_flops == 2 * 4 * 16 * 8 + 2 * 4 * 3 * 16
    assert imported.unsupported == {"Det": 1}
    assert imported.param_count == 128 + 48
    # x needs no gradient: MatMul gets a weight gradient only, Gemm both.
    assert imported.backward_flops == 2 * 4 * 16 * 8 + 2 * (2 * 4 * 3 * 16)


def test_malformed_and_missing_files_are_input_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(InputError, match="not a valid ONNX file"):
        from_onnx(bad)
    with pytest.raises(InputError, match="no such file"):
        from_onnx(tmp_path / "missing.onnx")
    with pytest.raises(SystemExit) as exit_info:
        main(["inspect", str(bad)])
    assert exit_info.value.code == 2
    assert "not a valid ONNX file" in capsys.readouterr().err


def test_inspect_json_reports_the_import(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    module, inputs = example("bert")
    path = export_onnx(
        module, inputs, tmp_path / "bert.onnx", input_names=["ids", "keep"], dynamic_axes={"ids": {0: "b"}}
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["inspect", str(path), "--input-shape", "ids=2x12", "--json"])
    assert exit_info.value.code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["forward_flops"] == from_torch(module, inputs).forward_flops
    assert report["batch"] == 2 and report["unsupported"] == {}
    with pytest.raises(SystemExit) as exit_info:
        main(["inspect", str(path), "--input-shape", "ids=2xx12"])
    assert exit_info.value.code == 2


@given(
    st.dictionaries(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_.:/=]{0,12}", fullmatch=True),
        st.lists(st.integers(1, 4096), min_size=1, max_size=5),
        max_size=4,
    )
)
def test_parse_input_shapes_round_trips(shapes: dict[str, list[int]]) -> None:
    items = [f"{name}={'x'.join(map(str, dims))}" for name, dims in shapes.items()]
    assert parse_input_shapes(items) == {name: tuple(dims) for name, dims in shapes.items()}


@pytest.mark.parametrize("item", ["x", "=1x2", "x=", "x=1xx2", "x=0x3", "x=-1", "x=1.5", "x=a", "x=²"])
def test_parse_input_shapes_rejects_malformed_items(item: str) -> None:
    with pytest.raises(InputError, match="input_shape"):
        parse_input_shapes([item])


def test_parse_input_shapes_rejects_duplicates() -> None:
    with pytest.raises(InputError, match="twice"):
        parse_input_shapes(["x=1", "x=2"])
