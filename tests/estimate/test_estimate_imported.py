"""Estimates of imported models (`estimate_training` on an `ImportedModel`, `twofold.estimate.imported`)
against the catalog estimator and through the CLI. References: `estimate_training` on the catalog
`ModelConfig` of the same Llama (the operator graph of `workload.graph`), and hand checks of the
layout rules."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frontends"))
from frontends_models import LlamaBlock, export_onnx  # noqa: E402

from cli_helpers import run_cli  # noqa: E402
from twofold.errors import InputError  # noqa: E402
from twofold.estimate.imported import imported_workload  # noqa: E402
from twofold.estimate.training import estimate_training  # noqa: E402
from twofold.frontends import from_torch  # noqa: E402
from twofold.hardware.catalog import get_chip, system_for  # noqa: E402
from twofold.parallel.layout import Layout, TrainingWorkload  # noqa: E402
from twofold.workload import get_model  # noqa: E402
from twofold.workload.fusion import FUSIBLE_KINDS  # noqa: E402


class VocabParallelCrossEntropy(torch.autograd.Function):
    """Megatron-Core's `_VocabParallelCrossEntropy` (megatron/core/tensor_parallel/cross_entropy.py)
    on one tensor-parallel rank (the max/sum all-reduces are no-ops): the logits upcast to fp32,
    then max, subtract, exp, sum, log, target gather and the softmax kept for the backward, in
    place as Megatron writes them; the backward subtracts the one-hot target and scales by the
    output gradient in place, and autograd casts the fp32 gradient back to the logits' dtype."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        logits = logits.float()
        logits_max = torch.max(logits, dim=-1)[0]
        logits -= logits_max.unsqueeze(dim=-1)
        logits_2d = logits.view(-1, logits.shape[-1])
        target_1d = target.reshape(-1)
        rows = torch.arange(start=0, end=logits_2d.shape[0], device=logits.device)
        predicted = logits_2d[rows, target_1d].clone().contiguous().view_as(target)
        exp_logits = logits
        torch.exp(logits, out=exp_logits)
        sum_exp = exp_logits.sum(dim=-1)
        loss = torch.log(sum_exp) - predicted
        exp_logits.div_(sum_exp.unsqueeze(dim=-1))
        ctx.save_for_backward(exp_logits, target_1d)
        return loss

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN001
        softmax, target_1d = ctx.saved_tensors
        grad_2d = softmax.view(-1, softmax.shape[-1])
        rows = torch.arange(start=0, end=grad_2d.shape[0], device=softmax.device)
        grad_2d[rows, target_1d] -= 1.0
        softmax.mul_(grad_output.unsqueeze(dim=-1))
        return softmax, None


class LlamaForTraining(nn.Module):
    """Embedding, decoder layers, final RMSNorm, untied LM head, and next-token cross-entropy as
    Megatron-Core computes it (`VocabParallelCrossEntropy`), the loss the catalog graph prices."""

    def __init__(self, vocab: int, hidden: int, layers: int, heads: int, kv_heads: int, ffn: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(LlamaBlock(hidden, heads, kv_heads, ffn) for _ in range(layers))
        self.norm, self.head = nn.RMSNorm(hidden), nn.Linear(hidden, vocab, bias=False)
        self.d = hidden // heads

    def forward(self, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        inv = 1.0 / (500000.0 ** (torch.arange(0, self.d, 2, device=ids.device).float() / self.d))
        angles = torch.outer(torch.arange(t, device=ids.device).float(), inv)
        cos, sin = torch.cat([angles.cos()] * 2, dim=-1), torch.cat([angles.sin()] * 2, dim=-1)
        x = self.embed(ids)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)  # as Hugging Face's rotary embedding does
        for layer in self.layers:
            x = layer(x, cos, sin)
        logits = self.head(self.norm(x))
        return VocabParallelCrossEntropy.apply(logits, labels).mean()


@pytest.fixture(scope="module")
def llama8b():
    """Llama-3.1-8B (the catalog's `llama3-8b`) built in bf16 on the meta device, traced once."""
    config = get_model("llama3-8b")
    with torch.device("meta"):
        module = LlamaForTraining(
            vocab=config.vocab_size,
            hidden=config.hidden_size,
            layers=config.num_layers,
            heads=config.num_attention_heads,
            kv_heads=config.num_kv_heads,
            ffn=config.intermediate_size,
        ).to(torch.bfloat16)
        ids = torch.zeros(1, 2048, dtype=torch.long)
    return config, from_torch(module, (ids, ids.clone()))


@pytest.mark.parametrize("dp, zero", [(1, 1), (8, 1), (8, 3), (16, 0), (16, 3)])
def test_imported_llama_matches_its_catalog_estimate(llama8b, dp: int, zero: int) -> None:
    config, imported = llama8b
    chip = get_chip("h100")
    system = system_for(chip, None)
    layout = Layout(dp=dp, zero=zero, micro_batch=1)
    workload = TrainingWorkload(global_batch=8 * dp, seq_len=2048)
    expected = estimate_training(config, system, layout, workload, chip=chip)
    got = estimate_training(imported, system, layout, workload, chip=chip)
    # The whole step, loss included: the catalog graph prices Megatron-Core's fp32 cross-entropy
    # pass by pass (`workload.graph._cross_entropy`), and so does the import of the same code.
    assert got.step_time_s == pytest.approx(expected.step_time_s, rel=0.01)
    # Per term 3%: the import's fusion pass merges each residual add into the next norm's input
    # cast (9 forward kernels per layer, the catalog graph prices 11), and every kernel pays the
    # fitted per-op overhead (`cost.calibration.op_overhead_factor`): 64 launches per forward. The
    # dp and fsdp terms are the same mechanism on both (`comm_plan.data_parallel_comm`, the stack's
    # collective efficiency and FSDP flavour, one FSDP unit per layer), within one node and across two.
    for term in ("compute_forward", "compute_backward", "dp", "fsdp", "optimizer"):
        assert got.breakdown[term] == pytest.approx(expected.breakdown[term], rel=0.03, abs=1e-3)
    ratio = expected.step_time_s / got.step_time_s
    assert got.tokens_per_s_per_chip == pytest.approx(expected.tokens_per_s_per_chip * ratio, rel=1e-9)
    assert got.mfu == pytest.approx(expected.mfu * ratio, rel=0.01)
    # Gradients and optimizer states: the same parameters, the same ZeRO formulas. (ZeRO-3's
    # gathered-layer buffer differs: the catalog knows the embedding is outside the layers.)
    parts = ("gradients", "optimizer_states") + (("weights",) if zero < 3 else ())
    for part in parts:
        assert got.memory_gib[part] == pytest.approx(expected.memory_gib[part], rel=0.01)


def test_the_imported_loss_moves_what_the_catalog_loss_moves(llama8b) -> None:
    # Megatron's fp32 passes seen in the bf16 trace: per logit, forward reads act + 5 fp32 and
    # writes 4 fp32, backward reads 2 fp32 and writes fp32 + act (hand count in
    # tests/workload/test_graph_loss.py), here summed over the kernels that touch every logit.
    config, imported = llama8b
    fwd, bwd = imported.step_ops()
    logits = 2048 * config.vocab_size

    def per_logit(ops: tuple, side: str) -> float:
        # The loss's kernels: memory-bound, once per step (not per layer), a byte per logit or more.
        big = [
            op
            for op in ops
            if op.kind in FUSIBLE_KINDS and op.count == 1 and op.bytes_read + op.bytes_written >= logits
        ]
        return sum(getattr(op, side) for op in big) / logits

    assert per_logit(fwd, "bytes_read") == pytest.approx(2 + 5 * 4, rel=1e-3)
    assert per_logit(fwd, "bytes_written") == pytest.approx(4 * 4, rel=1e-3)
    assert per_logit(bwd, "bytes_read") == pytest.approx(2 * 4, rel=1e-3)
    assert per_logit(bwd, "bytes_written") == pytest.approx(4 + 2, rel=1e-3)


def test_unfused_eager_trace_is_slower_than_the_fused_one(llama8b) -> None:
    # Without fusion every eager kernel pays its own HBM round trip and launch: the catalog
    # equivalence above holds only for the fused operators.
    _, imported = llama8b
    system = system_for(get_chip("h100"), None)
    layout = Layout(micro_batch=1)
    fused = estimate_training(imported, system, layout, imported_workload(imported, 8))
    eager = estimate_training(imported.eager(), system, layout, imported_workload(imported, 8))
    assert eager.step_time_s > 1.05 * fused.step_time_s
    assert (fused.fused, eager.fused) == (True, False)


def _tiny() -> object:
    torch.manual_seed(0)
    module = LlamaForTraining(vocab=64, hidden=32, layers=1, heads=4, kv_heads=2, ffn=48)
    ids = torch.randint(0, 64, (2, 8))
    return from_torch(module, (ids, ids))


@pytest.mark.parametrize("axis", ["tp", "pp", "cp", "ep"])
def test_model_parallel_layouts_are_refused_by_name(axis: str) -> None:
    system = system_for(get_chip("h100"), None)
    tiny = _tiny()
    with pytest.raises(InputError, match=f"^{axis}=2: imported models support data parallel"):
        estimate_training(tiny, system, Layout(micro_batch=2, **{axis: 2}), imported_workload(tiny, 4))


def test_micro_batch_and_global_batch_rules() -> None:
    system = system_for(get_chip("h100"), None)
    tiny = _tiny()
    with pytest.raises(InputError, match="micro_batch=1: must equal the batch"):
        estimate_training(tiny, system, Layout(micro_batch=1), imported_workload(tiny, 4))
    # The catalog rule, one text for every model (`parallel.rules`).
    with pytest.raises(InputError, match="global_batch=6: is not divisible by dp\\*micro_batch"):
        estimate_training(tiny, system, Layout(dp=2, micro_batch=2), imported_workload(tiny, 6))
    with pytest.raises(InputError, match="seq_len=16: must equal the imported sequence length 8"):
        estimate_training(tiny, system, Layout(micro_batch=2), TrainingWorkload(global_batch=4, seq_len=16))


def test_more_data_parallel_ranks_never_need_more_memory_with_zero3() -> None:
    system = system_for(get_chip("h100"), None)
    imported = _tiny()
    mem = [
        estimate_training(
            imported, system, Layout(dp=dp, zero=3, micro_batch=2), imported_workload(imported, 2 * dp)
        ).memory_per_chip_gib
        for dp in (1, 2, 4, 8)
    ]
    assert mem == sorted(mem, reverse=True)


class _ResNetish(nn.Module):
    """Two residual conv blocks (He et al. 2015), a depthwise conv and a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.block = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
        )  # fmt: skip
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        y = F.relu(y + self.block(y))
        y = self.dw(y)
        return self.fc(y.mean(dim=(2, 3)))


def _export(tmp_path) -> str:
    pytest.importorskip("onnx")
    path = export_onnx(
        _ResNetish(),
        (torch.randn(2, 3, 32, 32),),
        tmp_path / "resnetish.onnx",
        input_names=["pixels"],
        dynamic_axes={"pixels": {0: "batch"}},
    )
    return str(path)


def _estimate_on_two_h100(path: str) -> list[str]:
    """`twofold estimate` of the exported CNN at batch 16 per chip on two H100s."""
    shape = ("--input-shape", "pixels=16x3x32x32")
    return ["estimate", "--model", path, *shape, "--chip", "h100", "--chips", "2"]


def test_cli_estimate_on_an_onnx_cnn_reports_samples_and_unsupported(tmp_path, capsys) -> None:
    path = _export(tmp_path)
    args = _estimate_on_two_h100(path)
    code, out, err = run_cli(capsys, *args, "--global-batch", "64", "--zero", "3", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["tokens_per_s_per_chip"] is None
    # 64 samples per step on 2 chips: samples/s/chip is the global batch over step time and chips.
    assert d["samples_per_s_per_chip"] == pytest.approx(64 / (d["step_time_s"] * 2))
    assert d["layout"]["micro_batch"] == 16 and d["microbatches"] == 2
    assert isinstance(d["unsupported_ops"], dict)
    assert d["fused"] is True
    assert sum(d["breakdown"].values()) == pytest.approx(d["step_time_s"])


def test_cli_estimate_refuses_tp_on_an_onnx_model(tmp_path, capsys) -> None:
    path = _export(tmp_path)
    args = ["estimate", "--model", path, "--input-shape", "pixels=16x3x32x32", "--chip", "h100", "--tp", "2"]
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("error: tp=2: imported models support data parallel")


def test_cli_plan_on_an_onnx_model_ranks_zero_stages(tmp_path, capsys) -> None:
    path = _export(tmp_path)
    args = ["plan", "--model", path, "--input-shape", "pixels=8x3x32x32", "--chip", "h100", "--chips", "4"]
    code, out, err = run_cli(capsys, *args, "--global-batch", "64", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["evaluated_layouts"] == 4  # dp=4 with ZeRO 0, 1, 2, 3
    assert {row["layout"]["zero"] for row in d["top"]} <= {0, 1, 2, 3}
    assert all(row["layout"]["micro_batch"] == 8 and row["layout"]["tp"] == 1 for row in d["top"])
    # The search's ranking (`search.plan`): the best is within the tie tolerance of the fastest, and
    # among those ties it needs the least memory.
    best, fastest = d["best"], max(row["samples_per_s_per_chip"] for row in d["top"])
    assert best["samples_per_s_per_chip"] * (1 + d["tie_tolerance"]) >= fastest
    ties = [r for r in d["top"] if r["samples_per_s_per_chip"] * (1 + d["tie_tolerance"]) >= fastest]
    assert best["memory_per_chip_gib"] == min(r["memory_per_chip_gib"] for r in ties)
    assert "unsupported_ops" in d


def test_onnx_fusion_keeps_the_flops_of_the_derived_pass(tmp_path) -> None:
    from twofold.frontends import from_onnx

    imported = from_onnx(_export(tmp_path), input_shapes={"pixels": (4, 3, 32, 32)})
    fwd, bwd = imported.step_ops(fused=True)
    eager = imported.training_ops()
    assert sum(op.total_flops for op in (*fwd, *bwd)) == sum(op.total_flops for op in eager)
    assert sum(op.total_bytes for op in (*fwd, *bwd)) < sum(op.total_bytes for op in eager)


def test_cli_estimate_text_shows_samples_for_a_cnn(tmp_path, capsys) -> None:
    path = _export(tmp_path)
    args = _estimate_on_two_h100(path)
    code, out, err = run_cli(capsys, *args, "--global-batch", "64")
    assert code == 0, err
    code, js, _ = run_cli(capsys, *args, "--global-batch", "64", "--json")
    samples = json.loads(js)["samples_per_s_per_chip"]
    # The step line reports samples/s (the JSON figure, formatted) and no token rate at all.
    assert f"{samples:,.1f} samples/s/chip" in out
    assert "tokens/s" not in out
