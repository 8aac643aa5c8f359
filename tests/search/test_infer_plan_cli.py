"""`twofold plan --infer`: the JSON contract and the latency targets."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import run_cli  # noqa: E402

BASE = ("plan", "--infer", "--model", "llama3.1-8b", "--chip", "h100", "--chips", "8")


def test_plan_infer_meets_targets(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, *BASE, "--max-tpot-ms", "12", "--max-ttft-ms", "400", "--json")
    assert code == 0
    d = json.loads(out)
    best = d["best"]
    assert best["tpot_ms"] <= 12 and best["ttft_ms"] <= 400 and best["fits"]
    assert best["chips"] == 8
    assert d["top"][0]["output_tokens_per_s_per_chip"] == pytest.approx(best["output_tokens_per_s_per_chip"])


def test_plan_infer_table_and_unmeetable_target(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, *BASE, "--max-tpot-ms", "0.001")
    # A valid question without an answer: the table, then exit 1 with the reason (errors.NoAnswer).
    assert code == 1 and "fastest seen" in out and "(targets: TPOT <= 0.001 ms)" in out
    assert err.startswith("no answer: no layout of 8 x h100 serves")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--objective", "speed"), "objective"),
        (("--max-ttft-ms", "-5"), "max_ttft_ms"),
        (("--seq-len", "8"), "seq_len"),
    ],
)
def test_plan_infer_mistakes_exit_2(capsys: pytest.CaptureFixture[str], extra, message) -> None:
    code, out, err = run_cli(capsys, *BASE, *extra)
    assert code == 2 and err.startswith("error: ") and message in err and out == ""
