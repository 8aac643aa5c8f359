"""Local sweeps: results equal direct plans, reruns skip by key, lost workers and Ctrl-C lose nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _sweep_hooks import CRASH_CHIP, CRASH_CHIPS, crash_on_one, never_called
from _sweep_reference import TINY_SPEC, reference_result

from twofold.sweep import SweepStore, parse_spec, run_sweep, scenario_key
from twofold.sweep.scenario import Outcome
from twofold.sweep.spec import Scenario

SPEC = parse_spec(TINY_SPEC)


def _stored(db: Path) -> dict[str, dict]:
    with SweepStore(db) as store:
        return {r.key: r.result for r in store.results() if r.status == "ok"}


def test_every_result_is_the_plan_of_twofold_plan_and_a_rerun_plans_nothing(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    seen: list[tuple[int, int]] = []
    first = run_sweep(SPEC, db, workers=2, on_progress=lambda done, total: seen.append((done, total)))
    assert (first.total, first.planned, first.skipped, first.complete) == (8, 8, 0, True)
    assert seen[0] == (0, 8) and seen[-1] == (8, 8)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    stored = _stored(db)
    for scenario in SPEC.scenarios():
        assert stored[scenario_key(scenario, first.version)] == reference_result(scenario)

    # The planning function raises if called: the rerun must find everything by key.
    second = run_sweep(SPEC, db, workers=1, plan_fn=never_called)
    assert (second.planned, second.skipped, second.complete) == (0, 8, True)
    assert _stored(db) == stored


def test_a_new_version_plans_again_beside_the_old_results(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    small = parse_spec({**TINY_SPEC, "axes": {**TINY_SPEC["axes"], "chip_counts": [2]}})
    run_sweep(small, db, workers=1, version="1.0")
    again = run_sweep(small, db, workers=1, version="1.1")
    assert (again.planned, again.skipped) == (2, 0)
    with SweepStore(db) as store:
        assert sorted(r.version for r in store.results()) == ["1.0", "1.0", "1.1", "1.1"]


def test_a_killed_worker_loses_no_finished_result_and_the_rerun_completes_the_rest(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    crashed = run_sweep(SPEC, db, workers=2, plan_fn=crash_on_one)
    assert crashed.lost >= 1 and not crashed.complete
    assert 1 <= crashed.planned < crashed.total

    stored = _stored(db)
    # Every result that reached the parent is in the store, and each one is the true plan.
    assert len(stored) == crashed.planned
    by_key = {scenario_key(s, crashed.version): s for s in SPEC.scenarios()}
    for key, result in stored.items():
        assert result == reference_result(by_key[key])
    crash_key = next(k for k, s in by_key.items() if (s.chip, s.chips) == (CRASH_CHIP, CRASH_CHIPS))
    assert crash_key not in stored

    rerun = run_sweep(SPEC, db, workers=2)
    assert (rerun.skipped, rerun.planned, rerun.complete) == (crashed.planned, 8 - crashed.planned, True)
    final = _stored(db)
    assert {k: final[k] for k in stored} == stored  # the first run's results were kept, not replanned
    assert final == {k: reference_result(s) for k, s in by_key.items()}


def test_ctrl_c_keeps_what_finished_and_the_rerun_finishes(tmp_path: Path) -> None:
    db = tmp_path / "s.db"

    def interrupt_after_three(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    stopped = run_sweep(SPEC, db, workers=1, on_progress=interrupt_after_three)
    assert stopped.interrupted and (stopped.planned, stopped.complete) == (3, False)
    assert len(_stored(db)) == 3
    rest = run_sweep(SPEC, db, workers=1)
    assert (rest.skipped, rest.planned, rest.complete) == (3, 5, True)


def _fails_on_trn2(scenario: Scenario) -> Outcome:
    if scenario.chip == "trn2":
        raise RuntimeError("a bug in the planner")
    from twofold.sweep.scenario import plan_scenario

    return plan_scenario(scenario)


def test_a_planner_bug_is_reported_not_stored_and_the_rest_completes(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    summary = run_sweep(SPEC, db, workers=1, plan_fn=_fails_on_trn2)
    assert (summary.planned, len(summary.failed), summary.complete) == (4, 4, False)
    assert all("RuntimeError: a bug in the planner" in line for line in summary.failed)
    assert len(_stored(db)) == 4


def test_a_rejected_scenario_is_stored_with_its_rule_and_not_retried(tmp_path: Path) -> None:
    config = {
        "model_type": "llama",
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 128,
        "vocab_size": 256,
    }
    model_file = tmp_path / "config.json"
    model_file.write_text(json.dumps(config))
    spec = parse_spec(
        {
            **TINY_SPEC,
            "axes": {**TINY_SPEC["axes"], "models": [str(model_file)], "chips": ["h100"], "chip_counts": [2]},
        }
    )
    model_file.unlink()  # gone between validation and planning: the planner's InputError is the outcome
    db = tmp_path / "s.db"
    summary = run_sweep(spec, db, workers=1)
    assert (summary.planned, summary.rejected, summary.complete) == (1, 1, True)
    with SweepStore(db) as store:
        (row,) = store.results()
    assert row.status == "rejected" and row.result is None
    assert row.message == f"model={str(model_file.resolve())!r}: file not found"
    assert run_sweep(spec, db, workers=1, plan_fn=never_called).skipped == 1


def test_store_refuses_a_foreign_database(tmp_path: Path) -> None:
    import sqlite3

    from twofold.errors import InputError

    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE runs (id TEXT)")
    conn.close()
    with pytest.raises(InputError, match="not a sweep store"):
        run_sweep(SPEC, db, workers=1)


def test_outcome_json_has_no_wall_clock_fields(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    small = parse_spec({**TINY_SPEC, "axes": {**TINY_SPEC["axes"], "chips": ["h100"], "chip_counts": [1]}})
    run_sweep(small, db, workers=1)
    with SweepStore(db) as store:
        (row,) = store.results()
    text = json.dumps(row.result)
    assert "elapsed_s" not in text and "enumerate_s" not in text and row.elapsed_s > 0
