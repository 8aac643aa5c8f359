"""`twofold claim` on the sweep engine: the reference is the in-process path of `evaluate_claim`
(every plan made here, no store), which the engine must reproduce number for number."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _compare_fixtures import doubled_target

from twofold.cli import main
from twofold.compare.claim import Claim, evaluate_claim, evaluate_ratio
from twofold.compare.plans import target
from twofold.compare.workloads import CLAIM_WORKLOADS
from twofold.errors import InputError
from twofold.sweep import SweepStore, run_scenarios
from twofold.sweep.claim_run import claim_scenarios, run_claim_plans

# A dense and an MoE training step and one serving workload: every kind of row, in seconds.
SMALL = (CLAIM_WORKLOADS[0], CLAIM_WORKLOADS[6], CLAIM_WORKLOADS[9])


def _numbers(result: Any) -> str:
    d = result.to_dict()
    d.pop("run")
    return json.dumps(d, sort_keys=True)


def _no_planning(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("planned in process although the engine had planned it")

    monkeypatch.setattr("twofold.search.plan.plan_training", refuse)
    monkeypatch.setattr("twofold.search.infer_plan.plan_inference", refuse)


def test_pool_gives_the_in_process_numbers() -> None:
    text = "trn2 is 4x trn1"
    direct = evaluate_claim(text, workloads=SMALL)
    pooled = evaluate_claim(text, workloads=SMALL, workers=2, plan_runner=run_claim_plans)
    assert direct.run is None and pooled.run["executor"] == "local:2"
    assert pooled.run["planned"] == 2 * len(SMALL) and pooled.run["store"] is None
    assert direct.evaluated == len(SMALL)  # the comparison below compares figures, not gaps
    assert _numbers(pooled) == _numbers(direct)


def test_a_store_is_reused_and_every_plan_comes_from_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "trn2 has 2x lower latency than h100"
    direct = evaluate_claim(text, workloads=SMALL)
    first = evaluate_claim(text, workloads=SMALL, store=tmp_path / "claim.db", plan_runner=run_claim_plans)
    assert first.run["planned"] == 2 * len(SMALL) and first.run["store"] == str(tmp_path / "claim.db")
    _no_planning(monkeypatch)  # from here on, a plan made in process fails the test
    again = evaluate_claim(text, workloads=SMALL, store=tmp_path / "claim.db", plan_runner=run_claim_plans)
    assert again.run["skipped"] == 2 * len(SMALL) and again.run["planned"] == 0
    assert _numbers(direct) == _numbers(first) == _numbers(again)


def test_a_sweep_row_without_the_unconstrained_layout_is_planned_again(tmp_path: Path) -> None:
    # `twofold sweep` stores the same scenario without the layout that ignores memory.
    claim = Claim(text="x", chip_a="trn2", chip_b="trn1", multiplier=4.0, metric="throughput")
    a, b = target("trn2"), target("trn1")
    scenarios = claim_scenarios("throughput", (a, b), SMALL[:1])
    run_scenarios(scenarios[:1], tmp_path / "s.db", name="sweep", workers=1)
    store = tmp_path / "s.db"
    result = evaluate_ratio(claim, a, b, workloads=SMALL[:1], store=store, plan_runner=run_claim_plans)
    assert (result.run["skipped"], result.run["planned"]) == (0, 2)
    with SweepStore(tmp_path / "s.db") as store:
        assert all("unconstrained" in r.result for r in store.results())
    assert _numbers(result) == _numbers(evaluate_ratio(claim, a, b, workloads=SMALL[:1]))


def test_what_if_chips_cannot_go_to_workers() -> None:
    fast, base = doubled_target("h100", links=False), target("h100")
    claim = Claim(text="x", chip_a=fast.label, chip_b="h100", multiplier=2.0, metric="throughput")
    with pytest.raises(InputError) as info:
        evaluate_ratio(claim, fast, base, workloads=SMALL[:1], workers=2, plan_runner=run_claim_plans)
    assert info.value.field == "chip" and info.value.value == fast.label


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--workers", "0"], "workers"),
        (["--workers", "2", "--ray", "auto"], "workers"),
        (["--ray", " "], "ray"),
    ],
)
def test_cli_rejects_bad_engine_options(
    args: list[str], field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["claim", "trn2 is 4x trn1", *args])
    assert info.value.code == 2 and f"error: {field}=" in capsys.readouterr().err


def test_cli_writes_only_the_store_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("TWOFOLD_HOME", str(home))
    monkeypatch.delenv("TWOFOLD_SWEEP_DB", raising=False)
    with pytest.raises(SystemExit) as info:
        main(["claim", "trn2 has 2x perf/W of trn1", "--json", "--out", str(tmp_path / "c.db")])
    assert info.value.code == 0
    d = json.loads(capsys.readouterr().out)
    assert "run" in d and d["evaluated"] == 0  # no published Trainium power: nothing to plan
    assert (tmp_path / "c.db").is_file() and not home.exists()


def test_the_sweep_engine_is_handed_in_not_imported() -> None:
    """compare sits below sweep (tests/test_layers.py): asking for the engine without passing it names
    the field and how to pass it."""
    from twofold.errors import InputError

    with pytest.raises(InputError) as info:
        evaluate_claim("h100 is 2x a100", workloads=SMALL[:1], workers=2)
    assert info.value.field == "plan_runner" and "run_claim_plans" in info.value.rule
