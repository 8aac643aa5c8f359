"""`twofold plan --infer`: the JSON contract and the latency targets."""

from __future__ import annotations

import json

import pytest

from twofold.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


BASE = ("plan", "--infer", "--model", "llama3.1-8b", "--chip", "h100", "--chips", "8")


def test_plan_infer_meets_targets(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *BASE, "--max-tpot-ms", "12", "--max-ttft-ms", "400", "--json")
    assert code == 0
    d = json.loads(out)
    best = d["best"]
    assert best["tpot_ms"] <= 12 and best["ttft_ms"] <= 400 and best["fits"]
    assert best["chips"] == 8
    assert d["top"][0]["output_tokens_per_s_per_chip"] == pytest.approx(best["output_tokens_per_s_per_chip"])


def test_plan_infer_table_and_unmeetable_target(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *BASE, "--max-tpot-ms", "0.001")
    assert code == 0 and "fastest seen" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--objective", "speed"), "objective"),
        (("--max-ttft-ms", "-5"), "max_ttft_ms"),
        (("--seq-len", "8"), "seq_len"),
    ],
)
def test_plan_infer_mistakes_exit_2(capsys: pytest.CaptureFixture[str], extra, message) -> None:
    code, out, err = run(capsys, *BASE, *extra)
    assert code == 2 and err.startswith("error: ") and message in err and out == ""
