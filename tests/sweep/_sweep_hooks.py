"""Planning functions for the sweep tests; a module of its own so that spawned workers import it."""

from __future__ import annotations

import os

from twofold.sweep.scenario import Outcome, plan_scenario
from twofold.sweep.spec import Scenario

# The scenario whose worker dies: late in the spec, so that earlier scenarios have finished.
CRASH_CHIP = "trn2"
CRASH_CHIPS = 2


def crash_on_one(scenario: Scenario) -> Outcome:
    """Plans like `twofold plan`, except that one scenario kills its worker process outright."""
    if scenario.chip == CRASH_CHIP and scenario.chips == CRASH_CHIPS:
        os._exit(3)  # no exception, no cleanup: what an OOM kill or a lost node looks like
    return plan_scenario(scenario)


def never_called(scenario: Scenario) -> Outcome:
    """For runs that must find every scenario done: planning anything is a failure."""
    raise AssertionError(f"planned {scenario} although the store holds it")
