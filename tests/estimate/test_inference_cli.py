"""`twofold estimate --infer` and `twofold plan --infer`: JSON contract, user mistakes exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import run_cli  # noqa: E402

BASE = ("estimate", "--infer", "--model", "llama3.1-8b", "--chip", "h100")


def test_estimate_infer_json(capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--chips", "8", "--tp", "4", "--batch", "16", "--input-tokens", "512", "--output-tokens", "64")
    code, out, _ = run_cli(capsys, *BASE, *args, "--weight-precision", "fp8", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["layout"] == {"tp": 4, "pp": 1, "ep": 1, "dp": 2, "pad_heads": False}
    assert d["workload"]["weight_precision"] == "fp8" and d["workload"]["batch"] == 16
    assert d["chips"] == 8
    assert sum(d["breakdown_prefill"].values()) == pytest.approx(d["ttft_s"], rel=1e-9)
    assert sum(d["breakdown_decode"].values()) == pytest.approx(d["tpot_s"], rel=1e-9)
    assert d["fits"] and d["max_batch"] >= 16


def test_estimate_infer_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, *BASE, "--tp", "2")
    assert code == 0 and "TTFT" in out and "where the time goes" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--batch", "0"), "batch=0"),
        (("--tp", "3"), "tp=3: does not divide num_attention_heads=32"),
        (("--chips", "6", "--tp", "4"), "chips=6"),
        (("--seq-len", "2048"), "seq_len=2048: is a training flag"),
        (("--kv-precision", "fp9"), "kv_precision"),
    ],
)
def test_estimate_infer_mistakes_exit_2(capsys: pytest.CaptureFixture[str], extra, message) -> None:
    code, out, err = run_cli(capsys, *BASE, *extra)
    assert code == 2 and err.startswith("error: ") and message in err and out == ""
