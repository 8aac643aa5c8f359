"""Rules every verb of the CLI follows, checked across verbs rather than one verb at a time.

References: the rules themselves, stated in README's CLI paragraph and `cli._options` (a property per
rule, checked on each verb's output), and Llama 2's 4M-token pretraining batch (Touvron et al.
2023, section 2.2) for the one default global batch: 4 * 2**20 tokens / 4096 tokens per sequence
= 1024 sequences.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_helpers import run_cli  # noqa: E402

LLAMA2_TOKENS_PER_STEP = 4 * 2**20
SEQ_LEN = 4096


# Item 8: one default global batch, stated in --help, never derived from --micro-batch.
def test_one_default_global_batch_in_estimate_plan_and_compare(capsys: pytest.CaptureFixture[str]) -> None:
    expected = LLAMA2_TOKENS_PER_STEP // SEQ_LEN
    runs = {
        "estimate": (
            "estimate",
            "--model",
            "llama3.1-8b",
            "--chip",
            "h100",
            "--chips",
            "64",
            "--micro-batch",
            "8",
        ),
        "plan": ("plan", "--model", "llama3.1-8b", "--chip", "h100", "--chips", "8", "--top", "1"),
        "compare": ("compare", "llama3.1-8b", "--on", "h100", "--chips", "8"),
    }
    for verb, args in runs.items():
        code, out, err = run_cli(capsys, *args, "--json")
        assert code == 0, (verb, err)
        assert json.loads(out)["workload"]["global_batch"] == expected, verb


@pytest.mark.parametrize("verb", ["estimate", "plan", "compare", "report"])
def test_help_states_the_default_global_batch(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, verb, "--help")
    assert code == 0
    text = " ".join(out.replace("│", " ").split())
    assert "default 1024, the same in estimate, plan and compare" in text


# Item 4: serving flags without --infer are an error, as training flags with --infer are.
@pytest.mark.parametrize(
    "flag",
    [
        ("--batch", "8"),
        ("--input-tokens", "512"),
        ("--output-tokens", "64"),
        ("--weight-precision", "int8"),
        ("--kv-precision", "fp8"),
        ("--pad-heads",),
        ("--concurrency", "16"),
        ("--engine", "trtllm"),
    ],
)
def test_serving_flags_without_infer_exit_2(
    flag: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        capsys, "estimate", "--model", "llama3.1-8b", "--chip", "h100", "--chips", "8", *flag
    )
    name = flag[0].removeprefix("--").replace("-", "_")
    assert code == 2 and out == ""
    assert err.startswith(f"error: {name}=") and "add --infer" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flag", [("--input-tokens", "512"), ("--max-ttft-ms", "100"), ("--pad-heads",)])
def test_plan_serving_flags_without_infer_exit_2(
    flag: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "plan", "--model", "llama3.1-8b", "--chip", "h100", "--chips", "8", *flag)
    assert code == 2 and "add --infer" in err


def test_serving_flags_with_infer_still_work(capsys: pytest.CaptureFixture[str]) -> None:
    args = ("estimate", "--infer", "--model", "llama3.1-8b", "--chip", "h100", "--chips", "8", "--batch", "8")
    code, out, _ = run_cli(capsys, *args, "--json")
    assert code == 0 and json.loads(out)["workload"]["batch"] == 8


# Item 5: one exit code for "a valid question without an answer", in every verb.
NO_ANSWER = [
    ("plan", "--model", "llama3.1-405b", "--chip", "l4", "--chips", "1"),  # nothing fits
    ("plan", "--model", "llama3.1-8b", "--chip", "h100", "--chips", "1000000000"),  # no valid layout
    ("plan", "--infer", "--model", "llama3.1-8b", "--chip", "h100", "--chips", "8", "--max-ttft-ms", "0.001"),
    ("compare", "llama3.1-405b", "--on", "l4,h100", "--chips", "1"),  # the reference cannot run it
]


@pytest.mark.parametrize("args", NO_ANSWER, ids=["nothing-fits", "no-layout", "no-target", "compare"])
def test_no_answer_exits_1_with_the_reason_on_one_line(
    args: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, *args)
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("no answer: ") and len(lines[0]) > len("no answer: ")
    assert "Traceback" not in err and "None ms" not in out + err


@pytest.mark.parametrize("args", NO_ANSWER[:3], ids=["nothing-fits", "no-layout", "no-target"])
def test_no_answer_with_json_is_still_one_document(
    args: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, *args, "--json")
    assert code == 1 and err.startswith("no answer: ")
    assert json.loads(out)["best"] is None


def test_an_answer_still_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(
        capsys, "plan", "--model", "llama3.1-8b", "--chip", "h100", "--chips", "8", "--top", "1"
    )
    assert code == 0 and err == ""
