"""`compare --deadline`, `claim --finetune`, and the JSON form of the workload in both.

References: `search.plan_deadline` called directly with the row's price kind and --chips as the
cap (compare's column must be that search, nothing else); `search.plan_training` run by hand on
the LoRA workload for each chip (the claim's ratio must be the ratio of those throughputs, and
differ from full training's); `TrainingWorkload.to_dict` (no `finetune` key for full training).
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import pytest

from twofold.compare import claim as claim_module
from twofold.compare.claim import evaluate_claim
from twofold.compare.compare import compare
from twofold.compare.plans import target
from twofold.compare.workloads import ClaimWorkload
from twofold.parallel.layout import TrainingWorkload
from twofold.search.deadline import DeadlineTarget, plan_deadline
from twofold.search.plan import plan_training
from twofold.workload.finetune import Finetune

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import run_cli  # noqa: E402

SMALL = TrainingWorkload(global_batch=16, seq_len=256)
DAYS_3 = 3 * 86400.0
CLAIM_8B = ClaimWorkload(
    label="llama3.1-8b 4k x8", model="llama3.1-8b", kind="dense", seq_len=4096, global_batch=1024, chips=8
)
SERVE_8B = ClaimWorkload(
    label="serve", model="llama3.1-8b", kind="dense", seq_len=1280, global_batch=0, chips=8,
    phase="inference", input_tokens=1024, output_tokens=256,
)  # fmt: skip
LORA = Finetune(method="lora", rank=16, targets="attention-mlp")


def test_compare_deadline_column_is_the_deadline_search_at_the_rows_price() -> None:
    result = compare("llama-tiny", ["h100", "trn2"], chips=16, workload=SMALL, tokens=1e9, deadline_s=DAYS_3)
    targets = [
        DeadlineTarget(label=t.label, system=t.system, chip=t.chip) for t in map(target, ["h100", "trn2"])
    ]
    ref = plan_deadline(
        "llama-tiny", targets, SMALL, tokens=1e9, deadline_s=DAYS_3, price_kinds=("on-demand",), max_chips=16
    )
    for row, expected in zip(result.rows, ref.targets, strict=True):
        assert row.deadline is not None and row.deadline.status == expected.status == "meets"
        assert (row.deadline.best.chips, row.deadline.best.price.kind) == (expected.best.chips, "on-demand")
        assert row.deadline.best.cost_usd == pytest.approx(expected.best.cost_usd)
    d = result.to_dict()
    assert (
        d["deadline_s"] == DAYS_3 and d["rows"][0]["deadline"]["best"]["chips"] == ref.targets[0].best.chips
    )
    assert "finetune" not in d["workload"]  # full training: no `finetune: null`


def test_compare_without_a_deadline_keeps_its_json() -> None:
    d = compare("llama-tiny", ["h100"], chips=8, workload=SMALL).to_dict()
    assert "deadline_s" not in d and "deadline" not in d["rows"][0]
    assert d["workload"] == SMALL.to_dict()


@pytest.mark.parametrize(
    ("extra", "field"),
    [(["--deadline", "48h"], "tokens"), (["--tokens", "1e9", "--deadline", "two days"], "deadline")],
)
def test_compare_deadline_bad_input_exits_2(
    extra: list[str], field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "compare", "llama-tiny", "--on", "h100", "--chips", "8", *extra)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {field}="), err


def _by_hand(chip: str, finetune: Finetune | None) -> float:
    t = target(chip)
    workload = TrainingWorkload(global_batch=1024, seq_len=4096, precision="bf16", finetune=finetune)
    best = plan_training("llama3.1-8b", t.system, 8, workload, top_k=1, chip=t.chip).best
    assert best is not None
    return best.step.tokens_per_s_per_chip


@pytest.fixture(scope="module")
def hand_ratios() -> dict[str, float]:
    return {
        "lora": _by_hand("h100", LORA) / _by_hand("a100", LORA),
        "full": _by_hand("h100", None) / _by_hand("a100", None),
    }


@pytest.mark.parametrize("workers", [None, 1])  # in process, and on the sweep engine
def test_claim_finetune_runs_the_lora_workload(workers: int | None, hand_ratios: dict[str, float]) -> None:
    from twofold.sweep.claim_run import run_claim_plans

    result = evaluate_claim(
        "h100 is 2x a100",
        workloads=[CLAIM_8B, SERVE_8B],
        finetune=LORA,
        workers=workers,
        plan_runner=run_claim_plans,
    )
    assert [r.workload.label for r in result.rows] == [CLAIM_8B.label]  # serving left out
    assert result.rows[0].ratio == pytest.approx(hand_ratios["lora"])
    assert hand_ratios["lora"] != pytest.approx(hand_ratios["full"], rel=1e-3)
    assert result.to_dict()["finetune"] == LORA.to_dict()


def test_claim_cli_passes_the_finetune_flags(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], hand_ratios: dict[str, float]
) -> None:
    monkeypatch.setattr(
        claim_module, "evaluate_claim", functools.partial(evaluate_claim, workloads=[CLAIM_8B])
    )
    code, out, err = run_cli(capsys, "claim", "h100 is 2x a100", "--finetune", "lora", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["finetune"] == LORA.to_dict()
    assert d["rows"][0]["ratio"] == pytest.approx(hand_ratios["lora"])
    code, out, _ = run_cli(capsys, "claim", "h100 is 2x a100", "--json")
    assert code == 0 and "finetune" not in json.loads(out)
    assert json.loads(out)["rows"][0]["ratio"] == pytest.approx(hand_ratios["full"])


@pytest.mark.parametrize(
    ("extra", "field"),
    [(["--finetune", "dora"], "finetune"), (["--finetune", "lora", "--lora-rank", "0"], "lora_rank")],
)
def test_claim_bad_finetune_exits_2(extra: list[str], field: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "claim", "h100 is 2x a100", *extra)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {field}="), err


def test_a_chip_past_its_systems_scale_limit_is_a_row_not_a_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`hardware.scale.check_scale`: l4-workstation holds one chip (no interconnect in the catalog).
    At 16 chips its row says so and the others are compared; as the reference it stays exit 2."""
    result = compare("llama-tiny", ["h100", "l4"], chips=16, workload=SMALL, tokens=1e9, deadline_s=DAYS_3)
    l4 = result.row("l4")
    assert l4.layout is None and l4.ratio_to_reference["throughput_per_chip"] is None
    assert any("not possible at this chip count: l4-workstation" in n for n in l4.notes)
    assert result.row("h100").metrics and l4.deadline is not None and l4.deadline.fastest.chips == 1
    args = ("compare", "llama-tiny", "--on", "l4,h100", "--chips", "16", "--seq-len", "256")
    code, out, err = run_cli(capsys, *args, "--global-batch", "16")
    assert code == 2 and err.startswith("error: chips=16: l4-workstation"), err


def test_claim_cli_runs_the_stack_it_is_given(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`claim --stack fsdp` plans both chips under plain PyTorch FSDP: its ratio is the one two
    plans under that stack give (`plan_training(stack=...)`), not the reference stacks' one."""

    def best(chip: str, stack: str | None) -> float:
        t = target(chip)
        work = TrainingWorkload(global_batch=1024, seq_len=4096, precision="bf16")
        plan = plan_training("llama3.1-8b", t.system, 8, work, top_k=1, chip=t.chip, stack=stack).best
        assert plan is not None
        return plan.step.tokens_per_s_per_chip

    monkeypatch.setattr(
        claim_module, "evaluate_claim", functools.partial(evaluate_claim, workloads=[CLAIM_8B])
    )
    code, out, err = run_cli(capsys, "claim", "h100 is 2x a100", "--stack", "fsdp", "--json")
    assert code == 0, err
    ratio = json.loads(out)["rows"][0]["ratio"]
    assert ratio == pytest.approx(best("h100", "fsdp") / best("a100", "fsdp"))
    assert ratio != pytest.approx(best("h100", None) / best("a100", None), rel=1e-3)
    code, _, err = run_cli(capsys, "claim", "h100 is 2x a100", "--stack", "nope")
    assert code == 2 and "stack" in err
