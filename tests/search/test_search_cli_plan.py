"""`twofold plan` end to end through the CLI entry point (real catalog, real estimator)."""

from __future__ import annotations

import json

import pytest

from twofold.cli import main
from twofold.hardware.catalog import get_chip, system_for
from twofold.parallel.layout import TrainingWorkload
from twofold.search.plan import plan_training
from twofold.workload import get_model


def _run(args: list[str]) -> int:
    """Exit code of the entry point (click's standalone mode exits even on success)."""
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


ARGS = [
    "plan",
    "--model",
    "llama-tiny",
    "--chip",
    "h100",
    "--chips",
    "16",
    "--global-batch",
    "16",
    "--seq-len",
    "256",
]


def test_json_output_is_the_api_result(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run([*ARGS, "--top", "3", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    chip = get_chip("h100")
    api = plan_training(
        get_model("llama-tiny"), system_for(chip), 16, TrainingWorkload(global_batch=16, seq_len=256), top_k=3
    ).to_dict()
    assert len(d["top"]) == 3
    # The CLI adds each listed layout's 80% interval (`estimate.uncertainty`), as an estimate has.
    for row in [d["best"], *d["top"], *d["pareto"]]:
        assert set(row.pop("uncertainty")) == {
            "coverage",
            "tokens_per_s_per_chip",
            "step_time_s",
            "mfu",
            "evidence",
        }
    for key in (
        "best",
        "top",
        "pareto",
        "evaluated_layouts",
        "valid_layouts",
        "fitting_layouts",
        "rejections",
    ):
        assert d[key] == api[key], key
    lay = d["best"]["layout"]
    assert lay["dp"] * lay["tp"] * lay["pp"] * lay["cp"] == 16
    assert d["best"]["fits"] is True


def test_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run([*ARGS, "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "tokens per second per chip" in out and "valid layouts evaluated" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--chips", "0"], "chips=0"),
        (
            ["--objective", "cost", "--chip", "trn2", "--min-quality", "B"],
            "the price of trn2 on trn2.48xlarge is unknown (the only on-demand price is grade C",
        ),
        (["--min-quality", "B"], "applies to --objective cost only"),
        (["--objective", "energy", "--chip", "trn2"], "pass --power trn2=W"),
        (["--price", "h100=2"], "applies to --objective cost only"),
        (["--objective", "time", "--tokens", "0"], "tokens='0'"),
        (["--objective", "speed"], "objective='speed'"),
        (["--precision", "fp9"], "precision='fp9'"),
        (["--top", "0"], "top=0"),
        (["--global-batch", "-1"], "global_batch=-1"),
        (["--model", "llama-tinny"], "llama-tiny"),
        (["--chip", "h1000"], "h100"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run([*ARGS, *extra, "--json"]) == 2
    err = capsys.readouterr()
    assert err.out == ""
    assert err.err.startswith("error: ") and message in err.err and err.err.count("\n") == 1


def test_system_flag_picks_another_system(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["plan", "--model", "llama-tiny", "--chip", "trn2", "--chips", "64", "--global-batch", "64"]
    assert _run([*args, "--seq-len", "256", "--system", "trn2-ultraserver", "--top", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["system"] == "trn2-ultraserver"
    assert _run([*args, "--system", "hgx-h100", "--json"]) == 2
    assert "holds h100, not trn2" in capsys.readouterr().err
