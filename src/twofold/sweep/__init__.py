"""Sweeps: many plans (models x chips x scales x workloads) from one spec, locally or on Ray.

`load_spec` validates a YAML spec whole before any work; `run_sweep` plans every scenario the
store does not hold yet, on a local process pool or on Ray, storing each result as it finishes.
Nothing here imports ray (or rich, or typer) at import time.
"""

from twofold.sweep.runner import SweepSummary, run_local, run_scenarios, run_sweep
from twofold.sweep.scenario import Outcome, canonical_result, plan_scenario
from twofold.sweep.spec import Scenario, SweepSpec, load_spec, parse_spec, scenario_key
from twofold.sweep.store import StoredResult, SweepStore, default_store_path

__all__ = [
    "Outcome",
    "Scenario",
    "StoredResult",
    "SweepSpec",
    "SweepStore",
    "SweepSummary",
    "canonical_result",
    "default_store_path",
    "load_spec",
    "parse_spec",
    "plan_scenario",
    "run_local",
    "run_scenarios",
    "run_sweep",
    "scenario_key",
]
