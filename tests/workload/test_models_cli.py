"""`twofold models`: its JSON agrees with the workload API, and mistakes exit with code 2."""

from __future__ import annotations

import json

import pytest

from twofold.cli import main
from twofold.workload.graph import forward_ops, totals
from twofold.workload.params import param_counts
from twofold.workload.registry import get_model


def _run(argv: list[str]) -> int:
    """Exit code of `twofold argv` (the entry point may or may not raise SystemExit on success)."""
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_models_json_reports_exact_counts_and_flops(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["models", "mixtral-8x7b", "--seq-len", "256", "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    model = get_model("mixtral-8x7b")
    assert record["total_params"] == param_counts(model).total
    assert record["active_params"] == param_counts(model).active
    assert record["seq_len"] == 256
    forward = totals(forward_ops(model, batch=1, seq_len=256))
    assert record["forward_flops_per_sequence"] == forward["flops"]
    # Hand derivation: every backward is 2x its forward, except FlashAttention's 2.5x (d_qk = d_v).
    attention = forward["by_kind"]["attention"]
    assert record["training_flops_per_sequence"] == pytest.approx(3 * forward["flops"] + 0.5 * attention)
    assert record["weight_bytes"]["bf16"] == 2 * record["total_params"]


def test_models_lists_the_whole_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["models", "--json", "--seq-len", "128"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {r["id"] for r in records} >= {"deepseek-v3", "llama3.1-8b"}


@pytest.mark.parametrize("argv", [["models", "no-such-model"], ["models", "bert-large", "--seq-len", "4096"]])
def test_models_mistakes_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(argv) == 2
    assert capsys.readouterr().err.startswith("error: ")
