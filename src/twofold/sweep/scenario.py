"""Planning one scenario: the function every executor (process pool, Ray task) runs.

It calls exactly what `twofold plan` calls (`plan_training` with the catalog chip and system; for
inference scenarios `plan_inference`), and
returns the plan as canonical JSON without its wall-clock timings, so that the same scenario gives
byte-identical results on any worker, local or remote. The serialisation happens in the worker:
the parent, the only writer of the database, then does no more than one INSERT per result.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twofold.errors import InputError
from twofold.sweep.spec import Scenario

if TYPE_CHECKING:
    from twofold.parallel.layout import TrainingWorkload

__all__ = ["TIMING_FIELDS", "Outcome", "PlanFn", "canonical_result", "plan_scenario", "training_workload"]

# Wall-clock fields of `PlanResult.to_dict()`: they differ between runs, so they are kept out of the
# stored result (the outcome's `elapsed_s` records the time instead).
TIMING_FIELDS: tuple[str, ...] = ("enumerate_s", "evaluate_s", "elapsed_s")


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """What a worker hands back: `ok` with the plan as JSON, or `rejected` with the rule broken.

    A rejection (an `InputError` from the planner, e.g. a model file that vanished) is as
    deterministic as a plan, so it is stored and a rerun does not repeat it.
    """

    status: str
    result_json: str | None
    message: str
    elapsed_s: float
    worker: str

    @classmethod
    def ok(cls, result: dict[str, Any], t0: float) -> Outcome:
        """A plan's record (`canonical_result`), timed from `t0` (`time.perf_counter`)."""
        return cls(
            status="ok",
            result_json=canonical_result(result),
            message="",
            elapsed_s=time.perf_counter() - t0,
            worker=_worker_name(),
        )

    @classmethod
    def rejected(cls, exc: InputError, t0: float) -> Outcome:
        """The rule the planner found broken, timed from `t0`."""
        return cls(
            status="rejected",
            result_json=None,
            message=str(exc),
            elapsed_s=time.perf_counter() - t0,
            worker=_worker_name(),
        )


PlanFn = Callable[[Scenario], Outcome]


def _finite(obj: Any) -> Any:
    """JSON-safe copy: tuples to lists, non-finite floats to None (never a NaN in the store)."""
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def canonical_result(result: dict[str, Any]) -> str:
    """A plan's `to_dict()` as sorted, compact JSON, without the wall-clock fields."""
    kept = {k: v for k, v in result.items() if k not in TIMING_FIELDS}
    return json.dumps(_finite(kept), sort_keys=True, separators=(",", ":"), allow_nan=False)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def plan_scenario(scenario: Scenario) -> Outcome:
    """Plan one scenario with the code of `twofold plan`; the default `PlanFn` of every executor."""
    from twofold.hardware.catalog import get_chip, get_system
    from twofold.search.plan import plan_training
    from twofold.workload import get_model

    t0 = time.perf_counter()
    try:
        model = get_model(scenario.model)
        chip = get_chip(scenario.chip)
        system = get_system(scenario.system)
        if scenario.mode == "inference":
            plan = _plan_inference(scenario, model, system, chip)
        else:
            plan = plan_training(
                model,
                system,
                scenario.chips,
                training_workload(scenario),
                objective=scenario.objective,
                top_k=scenario.top_k,
                chip=chip,
                stack=None if scenario.stack == "auto" else scenario.stack,
            )
    except InputError as exc:
        return Outcome.rejected(exc, t0)
    return Outcome.ok(plan.to_dict(), t0)


def training_workload(scenario: Scenario) -> TrainingWorkload:
    """The `TrainingWorkload` of a training scenario, fine-tuning included."""
    from twofold.parallel.layout import TrainingWorkload
    from twofold.workload.finetune import Finetune

    return TrainingWorkload(
        global_batch=_given(scenario.global_batch),
        seq_len=_given(scenario.seq_len),
        precision=scenario.precision,
        finetune=Finetune(**scenario.finetune) if scenario.finetune else None,
    )


def _given(value: int | None) -> int:
    if value is None:  # a Scenario built by hand without its mode's workload fields
        raise InputError("scenario", value, "lacks a workload field of its mode")
    return value


def _plan_inference(scenario: Scenario, model: Any, system: Any, chip: Any) -> Any:
    from twofold.estimate.inference_types import InferenceWorkload
    from twofold.search.infer_plan import plan_inference

    # batch=1 is a placeholder: plan_inference searches the batch and reports the one it chose.
    workload = InferenceWorkload(
        batch=1,
        input_tokens=_given(scenario.input_tokens),
        output_tokens=_given(scenario.output_tokens),
        precision=scenario.precision,
    )
    return plan_inference(
        model,
        system,
        scenario.chips,
        workload,
        max_ttft_ms=scenario.max_ttft_ms,
        max_tpot_ms=scenario.max_tpot_ms,
        objective=scenario.objective,
        top_k=scenario.top_k,
        chip=chip,
    )
