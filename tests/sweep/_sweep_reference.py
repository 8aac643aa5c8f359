"""The independent reference: each scenario planned directly, as `twofold plan` does, in the test."""

from __future__ import annotations

import json
from typing import Any

from twofold.hardware.catalog import get_chip, get_system
from twofold.parallel.layout import TrainingWorkload
from twofold.search.plan import plan_training
from twofold.sweep.spec import Scenario
from twofold.workload import get_model

TINY_SPEC: dict[str, Any] = {
    "name": "tiny",
    "top_k": 2,
    "axes": {
        "models": ["llama-tiny"],
        "chips": ["h100", "trn2"],
        "chip_counts": [1, 2, 4, 8],
        "seq_lens": [256],
        "global_batches": [16],
    },
}


def reference_result(scenario: Scenario) -> dict[str, Any]:
    """`plan_training(...).to_dict()` without its wall-clock fields, through a JSON round trip."""
    chip = get_chip(scenario.chip)
    plan = plan_training(
        get_model(scenario.model),
        get_system(scenario.system),
        scenario.chips,
        TrainingWorkload(
            global_batch=scenario.global_batch, seq_len=scenario.seq_len, precision=scenario.precision
        ),
        objective=scenario.objective,
        top_k=scenario.top_k,
        chip=chip,
    ).to_dict()
    for timing in ("enumerate_s", "evaluate_s", "elapsed_s"):
        del plan[timing]
    return json.loads(json.dumps(plan))
