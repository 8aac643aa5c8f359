"""`compare` on imported models: an ONNX CNN through the command line (samples, not tokens) and a
PyTorch token model through the Python API. References: the telescoping identity of
`compare.factors` (factors multiply back to the ratio), the hand definition of throughput
(samples per step / (step time x chips)), and `search.plan_training` run directly on the model."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frontends"))
from frontends_models import export_onnx  # noqa: E402

from twofold.cli import main  # noqa: E402
from twofold.compare.compare import compare  # noqa: E402
from twofold.estimate.imported import imported_workload  # noqa: E402
from twofold.frontends import from_torch  # noqa: E402
from twofold.hardware.catalog import get_chip, system_for  # noqa: E402
from twofold.search.plan import plan_training  # noqa: E402

CHIPS = ["h100", "trn2", "tpu-v5p"]


class _TinyResNet(nn.Module):
    """A stem and one residual block (He et al. 2015, "Deep Residual Learning"), then a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.block = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
        )  # fmt: skip
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        y = torch.relu(y + self.block(y))
        return self.fc(y.mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def onnx_cnn(tmp_path_factory: pytest.TempPathFactory) -> str:
    pytest.importorskip("onnx")
    path = export_onnx(
        _TinyResNet(),
        (torch.randn(2, 3, 32, 32),),
        tmp_path_factory.mktemp("onnx") / "tiny_resnet.onnx",
        input_names=["pixels"],
        dynamic_axes={"pixels": {0: "batch"}},
    )
    return str(path)


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def _args(path: str, *extra: str) -> list[str]:
    return [
        "compare",
        path,
        "--input-shape",
        "pixels=8x3x32x32",
        "--on",
        ",".join(CHIPS),
        "--chips",
        "4",
        "--global-batch",
        "256",
        *extra,
    ]


def test_compare_onnx_cnn_json_rows_and_factors(onnx_cnn: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, *_args(onnx_cnn, "--samples", "1.2M", "--json"))
    assert code == 0, err
    d = json.loads(out)
    assert d["unit"] == "samples" and d["tokens"] is None and d["samples"] == 1.2e6
    assert d["workload"]["seq_len"] is None and d["reference"] == "h100"
    assert [r["chip"] for r in d["rows"]] == CHIPS
    ref = d["rows"][0]
    for r in d["rows"]:
        assert r["chips"] == 4
        assert (
            r["layout"]["dp"] == 4 and r["layout"]["micro_batch"] == 8 and r["layout"]["zero"] in (0, 1, 2, 3)
        )
        assert r["layout"]["tp"] == r["layout"]["pp"] == 1
        assert r["tokens_per_s_per_chip"] is None
        # Hand definition: 256 samples per step over the step time and 4 chips.
        assert r["samples_per_s_per_chip"] == pytest.approx(256 / (r["step_time_s"] * 4), rel=1e-12)
        assert r["time_to_train_s"] == pytest.approx(1.2e6 / (r["samples_per_s_per_chip"] * 4), rel=1e-12)
        ratio = r["samples_per_s_per_chip"] / ref["samples_per_s_per_chip"]
        assert r["ratio_to_reference"]["throughput_per_chip"] == pytest.approx(ratio, rel=1e-12)
        factors = r["factors"]["throughput_per_chip"]
        assert math.prod(factors.values()) == pytest.approx(ratio, rel=1e-9)
        system = r["factors"]["system_throughput"]
        assert math.prod(system.values()) == pytest.approx(ratio, rel=1e-9)  # same chip count: x1
        assert "flops_per_sample" in r["chip_terms"] and "flops_per_token" not in r["chip_terms"]
    assert ref["usd_per_million_samples"] is not None  # H100 has a catalog price


def test_compare_onnx_cnn_picks_what_plan_training_picks(onnx_cnn: str, capsys) -> None:
    from twofold.frontends import from_onnx

    code, out, err = _run(capsys, *_args(onnx_cnn, "--json"))
    assert code == 0, err
    rows = {r["chip"]: r for r in json.loads(out)["rows"]}
    imported = from_onnx(onnx_cnn, input_shapes={"pixels": (8, 3, 32, 32)})
    for name in CHIPS:
        chip = get_chip(name)
        workload = imported_workload(imported, 256)
        best = plan_training(imported, system_for(chip, None), 4, workload, chip=chip, top_k=1).best
        assert best is not None and best.samples_per_s_per_chip is not None
        assert rows[name]["layout"]["zero"] == best.layout.zero
        assert rows[name]["samples_per_s_per_chip"] == pytest.approx(best.samples_per_s_per_chip)
        assert rows[name]["time_to_train_s"] is None  # no --samples: unknown, never a made-up budget


def test_compare_onnx_cnn_table_says_samples(onnx_cnn: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, *_args(onnx_cnn))
    assert code == 0, err
    assert "smp/s/chip" in out and "256 samples/step" in out and "no sample budget" in out
    assert "tok/s/chip" not in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tokens", "1e9"], "error: tokens=1000000000.0: tiny_resnet has no token input"),
    ],
)
def test_compare_onnx_cnn_bad_input(onnx_cnn: str, capsys, extra: list[str], message: str) -> None:
    code, out, err = _run(capsys, *_args(onnx_cnn, *extra))
    assert code == 2 and out == ""
    assert err.startswith(message), err


def test_compare_onnx_cnn_without_a_valid_layout_has_no_answer(onnx_cnn: str, capsys) -> None:
    # global_batch=100 splits over no dp of the reference: a valid question without an answer (exit 1).
    code, out, err = _run(capsys, *_args(onnx_cnn, "--global-batch", "100"))
    assert code == 1 and out == ""
    # The search's own explanation (`search.enumerate.RejectionSummary`), as for a catalog model.
    assert err.startswith("no answer: reference h100 has no fitting layout: "), err
    assert "global_batch=100 is not divisible by dp*micro_batch" in err, err


def test_samples_budget_refused_for_a_token_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "compare", "llama3.1-8b", "--on", "h100", "--samples", "1M")
    assert code == 2 and err.startswith("error: samples='1M': applies to an ONNX model without tokens")


class _TinyLM(nn.Module):
    """Embedding, two-layer MLP and LM head with cross-entropy: a token model with no catalog twin."""

    def __init__(self, vocab: int = 64, hidden: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))
        self.head = nn.Linear(hidden, vocab, bias=False)

    def forward(self, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        logits = self.head(x + self.mlp(x))
        return nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())


def test_python_compare_on_a_torch_token_model() -> None:
    torch.manual_seed(0)
    ids = torch.randint(0, 64, (2, 16))
    imported = from_torch(_TinyLM(), (ids, ids))
    result = compare(imported, ["h100", "trn2"], chips=8)
    assert result.unit == "tokens" and result.samples is None
    # Chinchilla: 20 tokens per parameter, counted here from the module itself.
    assert result.tokens == 20 * sum(p.numel() for p in _TinyLM().parameters())
    # Default workload: 1024 sequences at the traced sequence length.
    assert (result.workload.global_batch, result.workload.seq_len) == (1024, 16)
    ref, other = (result.row(c) for c in ("h100", "trn2"))
    for row in (ref, other):
        assert row.layout is not None and row.layout.dp == 8 and row.layout.micro_batch == 2
        step = row.metrics["step_time_s"]
        assert row.metrics["tokens_per_s_per_chip"] == pytest.approx(1024 * 16 / (step * 8), rel=1e-12)
    ratio = other.metrics["tokens_per_s_per_chip"] / ref.metrics["tokens_per_s_per_chip"]
    assert math.prod(other.factors["throughput_per_chip"].values()) == pytest.approx(ratio, rel=1e-9)


def test_report_on_an_onnx_cnn_counts_samples(
    onnx_cnn: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The report of an imported CNN is per sample throughout: its side-by-side row carries the same
    # samples/s per chip as `twofold compare` (the reference, run separately), the scaling table
    # is headed in samples, and no per-token figure appears.
    pytest.importorskip("matplotlib")
    out = tmp_path / "cnn.html"
    code, _, err = _run(
        capsys,
        "report",
        "--model",
        onnx_cnn,
        "--input-shape",
        "pixels=8x3x32x32",
        "--on",
        "h100,a100",
        "--chips",
        "4",
        "--global-batch",
        "256",
        "--samples",
        "1.2M",
        "--out",
        str(out),
    )
    assert code == 0, err
    page = out.read_text()
    compare_args = ["compare", onnx_cnn, "--input-shape", "pixels=8x3x32x32", "--on", "h100,a100"]
    compare_args += ["--chips", "4", "--global-batch", "256", "--samples", "1.2M", "--json"]
    code, text, _ = _run(capsys, *compare_args)
    rows = {r["chip"]: r for r in json.loads(text)["rows"]}
    assert code == 0 and f"{rows['h100']['samples_per_s_per_chip']:,.0f}" in page
    assert "samples/s/chip" in page and "system samples/s" in page and "tokens/s" not in page
    # A token budget is refused for it, by name, before anything is written.
    code, _, err = _run(
        capsys, "report", "--model", onnx_cnn, "--input-shape", "pixels=8x3x32x32", "--on", "h100",
        "--tokens", "1T", "--out", str(tmp_path / "never.html"),
    )  # fmt: skip
    assert code == 2 and "tokens" in err and not (tmp_path / "never.html").exists()
