"""The same spec on a local Ray cluster gives the results of the local process pool, byte for byte."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _sweep_reference import TINY_SPEC, reference_result

from twofold.sweep import SweepStore, parse_spec, run_sweep, scenario_key

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _rows(db: Path) -> dict[str, tuple[str, str | None]]:
    with SweepStore(db) as store:
        return {r.key: (r.scenario.canonical_json(), r.result) for r in store.results()}


def test_ray_and_local_pool_store_identical_results(ray_cluster: None, tmp_path: Path) -> None:
    spec = parse_spec(TINY_SPEC)
    local = run_sweep(spec, tmp_path / "local.db", workers=2)
    on_ray = run_sweep(spec, tmp_path / "ray.db", ray_address="auto")
    assert on_ray.executor == "ray:auto" and on_ray.complete and local.complete
    assert _rows(tmp_path / "local.db") == _rows(tmp_path / "ray.db")
    # Both equal the plan `twofold plan` makes in this process (independent reference).
    results = {k: r for k, (_, r) in _rows(tmp_path / "ray.db").items()}
    for scenario in spec.scenarios():
        assert results[scenario_key(scenario, on_ray.version)] == reference_result(scenario)
    with SweepStore(tmp_path / "ray.db") as store:
        workers = {r.worker for r in store.results()}
    assert len(workers) >= 1  # host:pid of the Ray workers that planned them


def test_a_rerun_on_ray_skips_what_the_local_run_stored(ray_cluster: None, tmp_path: Path) -> None:
    spec = parse_spec(TINY_SPEC)
    first = run_sweep(spec, tmp_path / "s.db", workers=1)
    again = run_sweep(spec, tmp_path / "s.db", ray_address="auto")
    assert (again.skipped, again.planned) == (first.total, 0)


def test_a_worker_killed_on_ray_fails_only_its_scenario(ray_cluster: None, tmp_path: Path) -> None:
    import _sweep_hooks
    from ray import cloudpickle

    # Ray workers do not have tests/ on their path: ship the hook module by value.
    cloudpickle.register_pickle_by_value(_sweep_hooks)
    try:
        spec = parse_spec(TINY_SPEC)
        summary = run_sweep(spec, tmp_path / "s.db", ray_address="auto", plan_fn=_sweep_hooks.crash_on_one)
    finally:
        cloudpickle.unregister_pickle_by_value(_sweep_hooks)
    # Ray retried the dying task and then gave up on it alone; every other scenario is stored.
    assert (len(summary.failed), summary.planned, summary.complete) == (1, 7, False)
    assert f'"chip":"{_sweep_hooks.CRASH_CHIP}","chips":{_sweep_hooks.CRASH_CHIPS}' in summary.failed[0]
    rerun = run_sweep(spec, tmp_path / "s.db", ray_address="auto")
    assert (rerun.skipped, rerun.planned, rerun.complete) == (7, 1, True)
