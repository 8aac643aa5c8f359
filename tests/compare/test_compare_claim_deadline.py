"""`claim --deadline --tokens`: a cost claim read as the two chips' cheapest bills under a deadline.

References: `search.plan_deadline` called directly for each chip at its claim price with the
workload's chip count as the cap (the row's ratio must be B's bill over A's, nothing else), and a
hand derivation of each bill from the plan's throughput: price x billed chips x tokens /
(tokens/s/chip x chips) / 3600 (`economics.billing`, on-demand per second).
"""

from __future__ import annotations

import functools
import json
import math
import sys
from pathlib import Path

import pytest

from twofold.compare import claim as claim_module
from twofold.compare.claim import evaluate_claim
from twofold.compare.plans import target
from twofold.compare.workloads import ClaimWorkload
from twofold.parallel.layout import TrainingWorkload
from twofold.search.deadline import DeadlineTarget, plan_deadline

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import run_cli  # noqa: E402

W16 = ClaimWorkload(
    label="llama3.1-8b 4k x16", model="llama3.1-8b", kind="dense", seq_len=4096, global_batch=256, chips=16
)
SERVE = ClaimWorkload(
    label="serve", model="llama3.1-8b", kind="dense", seq_len=1280, global_batch=0, chips=8,
    phase="inference", input_tokens=1024, output_tokens=256,
)  # fmt: skip
TOKENS, HOURS_48 = 1e9, 48 * 3600.0


def _reference(chip: str) -> object:
    t = target(chip)
    tgt = DeadlineTarget(label=t.label, system=t.system, chip=t.chip, price=t.price)
    workload = TrainingWorkload(global_batch=W16.global_batch, seq_len=W16.seq_len, precision="bf16")
    result = plan_deadline(
        W16.model, [tgt], workload, tokens=TOKENS, deadline_s=HOURS_48, max_chips=W16.chips
    )
    return result.targets[0]


def test_deadline_ratio_is_b_bill_over_a_bill_from_plan_deadline_and_by_hand() -> None:
    result = evaluate_claim(
        "trn2 is 2x cheaper than h100", workloads=[W16, SERVE], tokens=TOKENS, deadline_s="48h"
    )
    assert [r.workload.label for r in result.rows] == [W16.label]  # serving left out
    row = result.rows[0]
    a, b = _reference("trn2").best, _reference("h100").best
    assert a is not None and b is not None
    assert row.ratio == pytest.approx(b.cost_usd / a.cost_usd)
    for o in (a, b):  # the bill by hand: price x whole instances x seconds
        seconds = TOKENS / (o.tokens_per_s_per_chip * o.chips)
        billed = math.ceil(o.chips / o.billing_unit_chips) * o.billing_unit_chips
        assert o.cost_usd == pytest.approx(o.price.usd_per_chip_hour * billed * seconds / 3600.0)
        assert o.chips <= W16.chips and o.meets_deadline
    assert row.ratio_range is not None and row.ratio_range[0] < row.ratio < row.ratio_range[1]
    assert row.verdict is not None and row.holds == (row.ratio >= 0.9 * 2.0)
    d = result.to_dict()
    assert (d["tokens"], d["deadline_s"]) == (TOKENS, HOURS_48)
    assert d["rows"][0]["deadline"]["a"]["best"]["cost_usd"] == pytest.approx(a.cost_usd)
    assert any(n.startswith("deadline:") for n in d["notes"])


def test_a_chip_that_misses_the_deadline_gives_no_ratio_and_says_why() -> None:
    result = evaluate_claim("trn1 is 2x cheaper than h100", workloads=[W16], tokens=TOKENS, deadline_s="1h")
    row = result.rows[0]
    assert row.ratio is None and "trn1 cannot train 1e+09 tokens by 1 h on up to 16 chips" in row.note
    assert result.verdict.startswith("cannot be checked")


def test_an_unknown_price_stays_unknown_under_a_deadline() -> None:
    # gb200-nvl72 has no on-demand price: never filled from another kind, so nothing is planned.
    result = evaluate_claim("trn2 is 2x cheaper than gb200", workloads=[W16], tokens=TOKENS, deadline_s="48h")
    assert result.evaluated == 0 and "price unknown for gb200" in result.rows[0].note
    assert result.verdict.startswith("cannot be checked")


@pytest.mark.parametrize(
    ("text", "extra", "field"),
    [
        ("trn2 is 4x trn1", ["--tokens", "1e9", "--deadline", "48h"], "deadline"),  # throughput
        ("trn2 has 2x perf/W of trn1", ["--tokens", "1e9", "--deadline", "48h"], "deadline"),
        ("trn2 is 2x cheaper than h100", ["--deadline", "48h"], "tokens"),
        ("trn2 is 2x cheaper than h100", ["--tokens", "1e9"], "tokens"),
        ("trn2 is 2x cheaper than h100", ["--tokens", "1e9", "--deadline", "soon"], "deadline"),
        (
            "trn2 is 2x cheaper than h100",
            ["--tokens", "1e9", "--deadline", "48h", "--workers", "2"],
            "deadline",
        ),
    ],
)
def test_claim_deadline_bad_input_exits_2(
    text: str, extra: list[str], field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "claim", text, *extra)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {field}="), err
    if field == "deadline" and "soon" not in extra and "--workers" not in extra:
        assert "applies to cost claims only" in err


def test_claim_cli_passes_the_deadline(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(claim_module, "evaluate_claim", functools.partial(evaluate_claim, workloads=[W16]))
    args = ("claim", "trn2 is 2x cheaper than h100", "--tokens", "1e9", "--deadline", "48h")
    code, out, err = run_cli(capsys, *args, "--json")
    assert code == 0, err
    d = json.loads(out)
    a, b = _reference("trn2").best, _reference("h100").best
    assert d["rows"][0]["ratio"] == pytest.approx(b.cost_usd / a.cost_usd)
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert "trn2 x 16 (billed 16)" in out and "deadline:" in out
