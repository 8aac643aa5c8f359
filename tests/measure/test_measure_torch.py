"""The PyTorch side: the built model is the model twofold prices, and a tiny real run works.

References: `sum(p.numel())` of the built module against `workload.params.param_counts`; PyTorch's
`FlopCounterMode` (matmul FLOPs of a real forward + backward) against the GEMM FLOPs of
`workload.graph.training_ops`; the profile file a real (tiny) run writes, read back as a chip.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from twofold.cli import main  # noqa: E402
from twofold.errors import InputError  # noqa: E402
from twofold.hardware.local import load_local_chip  # noqa: E402
from twofold.measure.bench import TorchDevice  # noqa: E402
from twofold.measure.db import list_runs  # noqa: E402
from twofold.measure.kernels import Kernel, step_models  # noqa: E402
from twofold.measure.run import measure  # noqa: E402
from twofold.measure.torch_model import build_model, time_training_step  # noqa: E402
from twofold.workload.model import ModelConfig  # noqa: E402

BASE = step_models()["tiny-l2-h256"]
VARIANTS = {
    "gqa": BASE,
    "mha-tied": replace(BASE, num_kv_heads=4, tie_word_embeddings=True),
    "biases-layernorm-plain": replace(
        BASE,
        qkv_bias=True,
        attn_out_bias=True,
        mlp_bias=True,
        norm="layernorm",
        mlp_gated=False,
        activation="gelu",
    ),
    "mqa-lm-head-bias": replace(BASE, num_kv_heads=1, lm_head_bias=True, num_layers=1),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_param_count_matches_twofold(name: str) -> None:
    params = pytest.importorskip("twofold.workload.params", reason="workload.params not built yet")
    model = VARIANTS[name]
    net = build_model(model)
    assert sum(p.numel() for p in net.parameters()) == params.param_counts(model).total


@pytest.mark.parametrize("name", ["gqa", "biases-layernorm-plain"])
def test_matmul_flops_match_training_ops(name: str) -> None:
    graph = pytest.importorskip("twofold.workload.graph", reason="workload.graph not built yet")
    from torch.nn import functional as F
    from torch.utils.flop_counter import FlopCounterMode

    model, batch, seq = VARIANTS[name], 2, 32
    net = build_model(model)
    ids = torch.randint(0, model.vocab_size, (batch, seq + 1))
    with FlopCounterMode(display=False) as counter:
        logits = net(ids[:, :-1])
        F.cross_entropy(logits.reshape(-1, model.vocab_size), ids[:, 1:].reshape(-1)).backward()
    # Attention is left out: PyTorch's counter has no formula for the CPU flash-attention kernels.
    counted = sum(
        v
        for k, v in counter.get_flop_counts()["Global"].items()
        if str(k).split(".")[-1] in ("mm", "addmm", "bmm")
    )
    ops = graph.training_ops(model, micro_batch=batch, seq_len=seq, precision="fp32")
    assert counted == sum(op.flops * op.count for op in ops if op.kind == "gemm")


def test_unsupported_architectures_are_refused() -> None:
    with pytest.raises(InputError, match="mixture-of-experts"):
        build_model(replace(BASE, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64))
    with pytest.raises(InputError, match="activation"):
        build_model(replace(BASE, activation="swish-ish"))


def test_training_step_learns_and_times() -> None:
    tiny = ModelConfig(
        name="t", family="llama", num_layers=1, hidden_size=64, num_attention_heads=2, num_kv_heads=1,
        head_dim=32, intermediate_size=128, vocab_size=128,
    )  # fmt: skip
    timing = time_training_step(tiny, micro_batch=2, seq_len=16, warmup=1, repeats=3)
    assert len(timing.samples_s) == 3 and timing.step_time_s > 0
    assert timing.loss == pytest.approx(torch.log(torch.tensor(128.0)).item(), rel=0.2)  # ~ln(vocab) at init


def _run_cli(argv: list[str]) -> None:
    try:
        main(argv)
    except SystemExit as exc:  # typer may end a successful command with SystemExit(0)
        assert exc.code in (0, None)


def _tiny_plan() -> list[Kernel]:
    tiny = replace(BASE, name="tiny-l1-h128", num_layers=1, hidden_size=128, num_attention_heads=2,
                   num_kv_heads=1, head_dim=64, intermediate_size=256, vocab_size=512)  # fmt: skip
    kernels = [Kernel(kind="gemm", dims={"m": s, "n": s, "k": s}) for s in (32, 64, 128, 256)]
    kernels += [Kernel(kind="gemm", dtype="bf16", dims={"m": s, "n": s, "k": s}) for s in (64, 256)]
    kernels += [Kernel(kind=k, dims={"numel": n}) for k in ("copy", "add") for n in (4096, 65536)]
    kernels += [Kernel(kind="rmsnorm", dims={"rows": 64, "hidden": 128})]
    attn = {"batch": 1, "heads": 2, "kv_heads": 1, "seq": 64, "head_dim": 64}
    kernels += [Kernel(kind="sdpa", dims={**attn, "backward": b}) for b in (0, 1)]
    kernels += [Kernel(kind="train_step", dims={"micro_batch": 2, "seq_len": 32}, model=tiny)]
    kernels += [Kernel(kind="train_step", dims={"micro_batch": 1, "seq_len": 64}, model=tiny, role="heldout")]
    return kernels


@pytest.mark.slow
def test_tiny_real_run_writes_a_loadable_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, out = tmp_path / "results.db", tmp_path / "local.yaml"
    device = TorchDevice("cpu", threads=1, repeats=3, min_sample_s=1e-4, step_repeats=2)
    result = measure(device, kernels=_tiny_plan(), rounds=1, db_path=db, profile_path=out)
    chip = load_local_chip(str(out))
    assert chip.architecture == "cpu" and chip.calibration is not None
    assert chip.fp32_dense_tflops == pytest.approx(result.fit.chip.fp32_dense_tflops)
    # The peak is the best GEMM the run measured (or the fitted asymptote above it).
    assert chip.fp32_dense_tflops >= result.fit.best_gemm_tflops["fp32"]
    assert {r.role for r in result.validation} == {"fit", "heldout"}
    assert all(r.predicted_s > 0 and r.measured_s > 0 for r in result.validation)

    (run,) = list_runs(db)
    assert run.id == result.run_id and run.has_profile and run.num_measurements == len(_tiny_plan()) + 2
    _run_cli(["history", "--json", "--db", str(db)])
    listed = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in listed["runs"]] == [result.run_id]

    # The single-chip path: `twofold estimate --chip PROFILE` on the held-out step's config.json
    # gives the step time `measure` predicted for it (one micro-batch, no accumulation).
    (held,) = [r for r in result.validation if r.role == "heldout"]
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "model_type": "llama", "num_hidden_layers": 1, "hidden_size": 128, "num_attention_heads": 2,
        "num_key_value_heads": 1, "intermediate_size": 256, "vocab_size": 512,
        "max_position_embeddings": 4096, "tie_word_embeddings": False,
    }))  # fmt: skip
    # --global-batch 1: one micro-batch, no accumulation (the default is 1024 whatever --micro-batch is).
    _run_cli(["estimate", "--model", str(config), "--chip", str(out), "--chips", "1", "--micro-batch", "1",
              "--global-batch", "1", "--seq-len", "64", "--precision", "fp32", "--json"])  # fmt: skip
    estimate = json.loads(capsys.readouterr().out)
    assert estimate["step_time_s"] == pytest.approx(held.predicted_s, rel=1e-6)


def test_cli_errors_exit_2_and_touch_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "results.db"
    for argv in (["measure", "--device", "tpu", "--db", str(db)], ["history", "--db", str(db)]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert capsys.readouterr().err.startswith("error: ")
    assert not db.exists()
    bad = tmp_path / "bad.db"
    bad.write_text("not a database")
    with pytest.raises(SystemExit) as info:
        main(["measure", "--quick", "--device", "cpu", "--db", str(bad)])
    assert info.value.code == 2 and "not an SQLite database" in capsys.readouterr().err
    assert bad.read_text() == "not a database"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_device_times_kernels() -> None:
    device = TorchDevice("cuda", repeats=3, min_sample_s=1e-3)
    assert device.info.kind == "cuda" and device.info.compute_units
    timing = device.time_kernel(Kernel(kind="gemm", dims={"m": 1024, "n": 1024, "k": 1024}))
    assert timing.time_s > 0


def test_cuda_refused_without_a_gpu() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(InputError, match="no CUDA device"):
        TorchDevice("cuda")


def test_gemm_kernel_rotates_cold_operands() -> None:
    """Each timed GEMM call multiplies a different operand set (so its inputs are not cache-hot),
    and every call computes the product of its own operands (reference: torch.matmul on copies)."""
    from twofold.measure import bench

    fn = bench._build(Kernel(kind="gemm", dims={"m": 64, "n": 48, "k": 32}), "cpu")
    outputs = [fn() for _ in range(3)]
    assert len({out.data_ptr() for out in outputs}) == 3  # three calls wrote three buffers
    # The builder is a closure over its operand sets: as many as fit in the rotation budget.
    cells = [c.cell_contents for c in fn.__closure__ or ()]
    operands = next(c for c in cells if isinstance(c, list))
    assert len(operands) == bench.GEMM_ROTATION_BYTES // ((64 * 32 + 32 * 48) * 4)
    assert len({a.data_ptr() for a, _, _ in operands[:50]}) == 50  # distinct inputs per call
    for (a, b, _), out in zip(operands, outputs, strict=False):
        assert torch.equal(out, torch.matmul(a.clone(), b.clone()))


@pytest.mark.slow
def test_cli_measure_quick_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's CI requirement: `twofold measure --quick` runs on this CPU (about 30 s), writes a
    profile that `--chip local` loads and a run in the database, and reports held-out steps. The error
    figures themselves are the business of benchmarks/local_step.py (timings vary under CI load)."""
    monkeypatch.setenv("TWOFOLD_HOME", str(tmp_path))
    _run_cli(["measure", "--quick", "--device", "cpu", "--json"])
    out = json.loads(capsys.readouterr().out)
    roles = {row["role"] for row in out["validation"]}
    assert roles == {"fit", "heldout"}
    assert all(row["predicted_s"] > 0 and row["measured_s"] > 0 for row in out["validation"])
    chip = load_local_chip("local")
    assert chip.calibration is not None and Path(out["profile_path"]).is_file()
    (run,) = list_runs(Path(out["db"]))
    assert run.id == out["run_id"] and run.has_profile
