"""`twofold plan --objective cost|energy|time` end to end (real catalog, real estimator).

The expected figures are recomputed in the tests from the formulas written here, on the best
layout's own tokens/s/chip and step breakdown.
"""

from __future__ import annotations

import json

import pytest

from twofold.cli import main

ARGS = ["plan", "--model", "llama-tiny", "--chip", "h100", "--chips", "16", "--global-batch", "16"]
ARGS += ["--seq-len", "256", "--top", "3", "--json"]


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cost_dollars_per_million_tokens_by_hand(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run([*ARGS, "--objective", "cost", "--price", "h100=2.5"], capsys)
    assert code == 0
    d = json.loads(out)
    best = d["best"]
    # $2.5 per chip-hour / (tokens/s/chip * 3600 s/h) * 1e6 tokens
    assert best["usd_per_million_tokens"] == pytest.approx(
        2.5 / (best["tokens_per_s_per_chip"] * 3600.0) * 1e6, rel=1e-12
    )
    assert d["objective_metric"] == "usd_per_million_tokens"
    assert d["objective_inputs"]["price"]["source"] == "user"
    usd = [row["usd_per_million_tokens"] for row in d["top"]]
    assert usd == sorted(usd)
    code, out, _ = _run(ARGS, capsys)
    assert [r["layout"] for r in d["top"]] == [r["layout"] for r in json.loads(out)["top"]]


def test_energy_joules_per_token_by_hand(capsys: pytest.CaptureFixture[str]) -> None:
    args = [*ARGS, "--objective", "energy", "--power", "h100=1000", "--idle-fraction", "0.25"]
    code, out, _ = _run(args, capsys)
    assert code == 0
    best = json.loads(out)["best"]
    # u = (forward + backward + recompute + optimizer seconds) / step seconds;
    # P = 250 W + (1000 - 250) W * u; J/token = P / (tokens/s/chip)
    kernels = ("compute_forward", "compute_backward", "compute_recompute", "optimizer")
    u = sum(best[f"breakdown_{t}_s"] for t in kernels) / best["step_time_s"]
    assert 0.0 < u <= 1.0
    watts = 250.0 + 750.0 * u
    assert best["energy_per_token_j"] == pytest.approx(watts / best["tokens_per_s_per_chip"], rel=1e-9)


def test_time_to_train_by_hand(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run([*ARGS, "--objective", "time", "--tokens", "2T"], capsys)
    assert code == 0
    d = json.loads(out)
    best = d["best"]
    seconds = 2e12 / (best["tokens_per_s_per_chip"] * 16)
    assert best["time_to_train_s"] == pytest.approx(seconds, rel=1e-12)
    assert best["time_to_train_days"] == pytest.approx(seconds / 86400.0, rel=1e-12)
    assert d["objective_inputs"] == {"tokens": 2e12}


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--chip", "trn2", "--objective", "cost", "--min-quality", "B"], ["trn2", "--price trn2=USD"]),
        (["--chip", "tpu-v7", "--objective", "cost"], ["tpu-v7", "--price tpu-v7=USD"]),
        (["--chip", "trn2", "--objective", "energy"], ["trn2", "--power trn2=W"]),
        (["--chip", "h100", "--objective", "cost", "--price-kind", "bulk"], ["price_kind='bulk'"]),
        (["--objective", "cost", "--price", "h100=free"], ["'free' is not a number"]),
        (["--objective", "throughput", "--tokens", "1T"], ["--objective time only"]),
    ],
)
def test_missing_or_misplaced_inputs_exit_2_naming_the_chip(
    extra: list[str], words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run([*ARGS, *extra], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    for w in words:
        assert w in err


def test_infer_refuses_the_training_objective_flags(capsys: pytest.CaptureFixture[str]) -> None:
    infer = ["plan", "--infer", "--model", "llama-tiny", "--chip", "h100", "--chips", "1"]
    # --price is a serving flag too ($ per million output tokens); --power is training's only.
    code, _, err = _run([*infer, "--objective", "cost", "--power", "h100=700"], capsys)
    assert code == 2 and err.startswith("error: power=") and "is a training flag" in err


def test_table_shows_the_objective_column(capsys: pytest.CaptureFixture[str]) -> None:
    table_args = [a for a in ARGS if a != "--json"]
    code, out, _ = _run([*table_args, "--objective", "energy", "--power", "h100=700"], capsys)
    assert code == 0 and "J/tok" in out and "busy share" in out
