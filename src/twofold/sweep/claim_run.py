"""`twofold claim` on the sweep engine: the plans a claim needs, as sweep scenarios, in parallel.

A claim plans, per training workload, each chip's best layout and its best layout ignoring memory
(`plans.search_chip`), and per serving workload each chip's best serving plan. `claim_scenarios`
lists them as sweep `Scenario`s; `run_claim_plans` plans them with `sweep.run_scenarios` (the
entry `twofold sweep` uses: a local process pool of `workers`, or Ray at `ray_address`), stores
them in a sweep store (a temporary one unless `store` names a file, so nothing is written to
~/.twofold unless asked), and decodes them into the caches `evaluate_ratio` reads. The rows of the
claim are then computed by the same code as the in-process path, from the same numbers (JSON
writes floats with `repr`, which reads back exactly), so the result is identical.

Stored training rows are ordinary sweep results (`PlanResult.to_dict()` of a throughput, top-1
search) plus one field, `unconstrained`, so `twofold report --sweep` reads them; a row that a
sweep stored for the same scenario lacks that field and is planned again. Serving rows are
exactly what `twofold sweep` stores (`sweep.plan_scenario`). A scenario the store reports as
rejected or failed is simply not cached: `evaluate_ratio` then plans it in process and reports
it as it always has.

What-if chips (not in the catalog) cannot be named in a scenario, so they are planned in process.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from twofold.compare.plans import ChipPlan, PlanCache, Target, stack_key
from twofold.compare.workloads import ClaimWorkload
from twofold.errors import InputError
from twofold.estimate.step import StepTerms
from twofold.parallel.layout import Layout
from twofold.sweep.scenario import Outcome, plan_scenario, training_workload
from twofold.sweep.spec import Scenario
from twofold.workload.finetune import Finetune

__all__ = ["claim_scenarios", "is_catalog_target", "plan_claim_scenario", "run_claim_plans"]

_PRECISION = "bf16"  # the claim's training precision (`claim._row`) and serving's default


def is_catalog_target(tgt: Target) -> bool:
    """Whether `tgt` is a catalog chip in a catalog system, as a scenario can name it."""
    from twofold.hardware.catalog import get_chip, get_system

    try:
        return get_chip(tgt.chip.id) == tgt.chip and get_system(tgt.system.id) == tgt.system
    except InputError:
        return False


def _serving_objective(metric: str) -> str:
    return "latency" if metric == "latency" else "throughput"


def claim_scenarios(
    metric: str,
    targets: Sequence[Target],
    workloads: Sequence[ClaimWorkload],
    finetune: Finetune | None = None,
) -> list[Scenario]:
    """The scenarios a claim on `metric` plans: every workload on every target, in order.
    Serving perf/W is not modelled (`infer_claim`), so it plans nothing. `finetune` (LoRA/QLoRA)
    is every training scenario's."""
    out = []
    for w in workloads:
        if w.phase == "inference" and metric == "perf-per-watt":
            continue
        for t in targets:
            common: dict[str, Any] = {
                "model": w.model,
                "chip": t.chip.id,
                "system": t.system.id,
                "chips": w.chips,
                "top_k": 1,
                "stack": stack_key(t.stack),
            }
            if w.phase == "inference":
                out.append(
                    Scenario(
                        mode="inference",
                        precision=_PRECISION,
                        objective=_serving_objective(metric),
                        input_tokens=w.input_tokens,
                        output_tokens=w.output_tokens,
                        **common,
                    )
                )
            else:
                out.append(
                    Scenario(
                        mode="training",
                        precision=_PRECISION,
                        objective="throughput",
                        seq_len=w.seq_len,
                        global_batch=w.global_batch,
                        finetune=None if finetune is None else finetune.to_dict(),
                        **common,
                    )
                )
    return out


def plan_claim_scenario(scenario: Scenario) -> Outcome:
    """The sweep `PlanFn` of a claim: `plan_scenario` for serving; for training the search of
    `plan_chip` with its unconstrained layout added to the result. Runs in the workers."""
    if scenario.mode != "training":
        return plan_scenario(scenario)
    from twofold.compare.plans import search_chip
    from twofold.hardware.catalog import get_chip, get_system
    from twofold.workload.registry import get_model

    t0 = time.perf_counter()
    try:
        workload = training_workload(scenario)
        result, unconstrained = search_chip(
            get_model(scenario.model),
            get_system(scenario.system),
            get_chip(scenario.chip),
            scenario.chips,
            workload,
            None if scenario.stack == "auto" else scenario.stack,
        )
    except InputError as exc:
        return Outcome.rejected(exc, t0)
    record = result.to_dict()
    # The stored record keeps its format: every figure of the unconstrained layout a float, `fits` too.
    record["unconstrained"] = None
    if unconstrained is not None:
        free_layout, free_step = unconstrained
        figures = {k: float(v) for k, v in free_step.to_dict().items()}
        record["unconstrained"] = {"layout": asdict(free_layout), **figures}
    return Outcome.ok(record, t0)


@dataclass(frozen=True, slots=True)
class _StoredEstimate:
    """A stored serving estimate: what `infer_claim.inference_ratio` reads of one."""

    record: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.record)


@dataclass(frozen=True, slots=True)
class _StoredServing:
    """A stored serving plan: its best estimate (None: nothing fits) and why."""

    best: _StoredEstimate | None
    explanation: tuple[str, ...]


def _figures(record: Mapping[str, Any]) -> tuple[Layout, StepTerms]:
    # A non-finite figure is stored as null (`canonical_result`); it reads back as NaN, unknown.
    return Layout(**record["layout"]), StepTerms.from_dict(record)


def _chip_plan(tgt: Target, scenario: Scenario, result: Mapping[str, Any]) -> ChipPlan:
    best, free = result["best"], result["unconstrained"]
    layout, step = (None, None) if best is None else _figures(best)
    free_layout, free_step = (None, None) if free is None else _figures(free)
    return ChipPlan(
        target=tgt,
        chips=scenario.chips,
        workload=training_workload(scenario),
        layout=layout,
        step=step,
        unconstrained_layout=free_layout,
        unconstrained_step=free_step,
        explanation=tuple(result["explanation"]),
    )


def run_claim_plans(
    metric: str,
    targets: Sequence[Target],
    workloads: Sequence[ClaimWorkload],
    *,
    cache: PlanCache,
    serving: dict[Any, Any],
    workers: int | None = None,
    ray_address: str | None = None,
    store: str | Path | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    finetune: Finetune | None = None,
) -> dict[str, Any]:
    """Plan a claim's scenarios on the sweep engine and fill `cache` (training, `PlanCache`) and
    `serving` (`infer_claim`'s cache); returns the run's summary (`SweepSummary.to_dict()`, with
    `store` None when the store was temporary)."""
    from twofold.sweep.runner import run_scenarios
    from twofold.sweep.spec import scenario_key
    from twofold.sweep.store import SweepStore
    from twofold.workload.registry import get_model

    for t in targets:
        if not is_catalog_target(t):
            raise InputError(
                "chip",
                t.label,
                "is not a catalog chip in a catalog system; what-if chips are planned in this process "
                "(leave workers, ray and out unset)",
            )
    scenarios = claim_scenarios(metric, targets, workloads, finetune)
    by_chip = {(t.chip.id, t.system.id): t for t in targets}
    with tempfile.TemporaryDirectory(prefix="twofold-claim-") as tmp:
        path = Path(store).expanduser() if store is not None else Path(tmp) / "claim.db"
        from twofold import __version__

        keys = [scenario_key(s, __version__) for s in scenarios]
        with SweepStore(path) as opened:
            # A sweep's row for a training scenario lacks the unconstrained layout: plan it again.
            stale = [
                r.key
                for r in opened.results(keys)
                if r.scenario.mode == "training" and r.result is not None and "unconstrained" not in r.result
            ]
        summary = run_scenarios(
            scenarios,
            path,
            name="claim",
            workers=workers,
            ray_address=ray_address,
            plan_fn=plan_claim_scenario,
            on_progress=on_progress,
            version=__version__,
            replan=stale,
        )
        with SweepStore(path) as opened:
            rows = opened.results(summary.keys)
    for row in rows:
        s = row.scenario
        if row.status != "ok" or row.result is None:
            continue  # evaluate_ratio plans it in process and reports it as it always has
        tgt = by_chip[(s.chip, s.system)]
        if s.mode == "training":
            plan = _chip_plan(tgt, s, row.result)
            key = (get_model(s.model).name, s.chip, s.system, s.chips, plan.workload, s.stack, tgt.options)
            cache[key] = plan
        else:
            best = row.result["best"]
            cache_key = (s.model, s.chip, s.system, s.chips, s.input_tokens, s.output_tokens, s.objective)
            serving[cache_key] = _StoredServing(
                best=None if best is None else _StoredEstimate(best),
                explanation=tuple(row.result["explanation"]),
            )
    return summary.to_dict() | {"store": None if store is None else str(path)}
