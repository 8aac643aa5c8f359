"""`twofold estimate --infer` under load: the JSON's "load" block and the flags' boundary (exit 2).

Reference: the flags and keys of issue 15 (`--max-batch B (--concurrency K | --request-rate R)`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import run_cli  # noqa: E402

BASE = ("estimate", "--model", "llama3.1-8b", "--chip", "h100", "--infer", "--input-tokens", "512",
        "--output-tokens", "64")  # fmt: skip


def test_load_block_in_the_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, *BASE, "--max-batch", "16", "--concurrency", "4", "--num-requests", "40",
                             "--json")  # fmt: skip
    assert code == 0, err
    load = json.loads(out)["load"]
    for key in ("ttft_ms", "itl_ms", "e2e_s"):
        assert set(load[key]) == {"mean", "p50", "p90", "p99"}
    assert load["output_tokens_per_s"] > 0 and load["requests_per_s"] > 0
    assert 0 < load["batch_occupancy"] <= 1


@pytest.mark.parametrize(
    "flags",
    [
        ("--concurrency", "4"),  # no --max-batch
        ("--max-batch", "8"),  # neither --concurrency nor --request-rate
        ("--max-batch", "8", "--concurrency", "4", "--request-rate", "2"),
        ("--max-batch", "8", "--concurrency", "4", "--engine", "sglang"),
        ("--max-batch", "8", "--concurrency", "4", "--accept-rate", "0.7"),
        ("--max-batch", "8", "--concurrency", "4", "--batch", "4"),
        ("--max-batch", "8", "--request-rate", "-1"),
    ],
)
def test_bad_load_flags_exit_2(capsys: pytest.CaptureFixture[str], flags: tuple[str, ...]) -> None:
    code, _, _ = run_cli(capsys, *BASE, *flags)
    assert code == 2
