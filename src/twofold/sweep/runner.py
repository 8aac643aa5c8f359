"""Running a sweep: skip what the store holds, plan the rest on an executor, store as they finish.

Two executors yield `(index, outcome or exception)` pairs as scenarios finish:
- `run_local`: a process pool on this machine (`concurrent.futures.ProcessPoolExecutor`, spawned
  workers, so the parent's threads and imports never leak into them and the same code runs on
  macOS); `workers=1` plans in this process instead, which is what a debugger wants. As with any
  spawned pool, a script that calls `run_sweep` needs the `if __name__ == "__main__":` guard.
- `twofold.sweep.ray_runner.run_ray`: Ray tasks, imported only when asked for.

Only the parent writes the store, one transaction per finished scenario. A worker that dies breaks
a process pool: the results that reached the parent are already stored, the rest are counted as
`lost`, and a rerun plans exactly those. Ctrl-C stops submitting, waits for the scenarios already
running (workers ignore SIGINT so they finish cleanly), and keeps everything stored.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twofold.checks import positive_ints
from twofold.sweep.scenario import Outcome, PlanFn, plan_scenario
from twofold.sweep.spec import Scenario, SweepSpec, scenario_key
from twofold.sweep.store import SweepStore

__all__ = ["ProgressFn", "SweepSummary", "run_local", "run_scenarios", "run_sweep"]

ProgressFn = Callable[[int, int], None]  # (scenarios done, including skipped; total)
Finished = Iterator[tuple[int, "Outcome | BaseException"]]


class WorkerLost(RuntimeError):
    """The process pool broke (a worker was killed); `lost` scenarios never came back."""

    def __init__(self, lost: int) -> None:
        self.lost = lost
        super().__init__(f"a worker process died; {lost} scenario(s) did not finish")


@dataclass(frozen=True, kw_only=True, slots=True)
class SweepSummary:
    """What one `run_sweep` call did. `complete` when every scenario of the spec is stored."""

    name: str
    store: str
    version: str
    executor: str
    keys: tuple[str, ...]
    total: int
    skipped: int
    planned: int
    rejected: int
    failed: tuple[str, ...] = field(default_factory=tuple)
    lost: int = 0
    interrupted: bool = False
    elapsed_s: float = 0.0

    @property
    def complete(self) -> bool:
        return self.skipped + self.planned == self.total

    @property
    def scenarios_per_s(self) -> float | None:
        return self.planned / self.elapsed_s if self.elapsed_s > 0 and self.planned else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "store": self.store,
            "version": self.version,
            "executor": self.executor,
            "total": self.total,
            "skipped": self.skipped,
            "planned": self.planned,
            "rejected": self.rejected,
            "failed": list(self.failed),
            "lost": self.lost,
            "interrupted": self.interrupted,
            "complete": self.complete,
            "elapsed_s": self.elapsed_s,
            "scenarios_per_s": self.scenarios_per_s,
        }


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group; the parent decides, workers finish what they hold.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_local(scenarios: Sequence[Any], plan_fn: PlanFn, workers: int) -> Finished:
    """Plan `scenarios` on `workers` processes, yielding each outcome as it finishes.

    Raises `WorkerLost` after yielding every outcome that came back, if the pool broke.
    """
    if workers == 1:
        for i, scenario in enumerate(scenarios):
            try:
                outcome: Outcome | BaseException = plan_fn(scenario)
            except Exception as exc:  # noqa: BLE001 - as a pool reports it: failed, not stored
                outcome = exc
            yield i, outcome
        return
    pool = ProcessPoolExecutor(
        max_workers=min(workers, max(len(scenarios), 1)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_ignore_sigint,
    )
    try:
        futures = {pool.submit(plan_fn, s): i for i, s in enumerate(scenarios)}
        lost = 0
        for future in as_completed(futures):
            error = future.exception()
            if isinstance(error, BrokenProcessPool):
                lost += 1
                continue
            yield futures[future], error if error is not None else future.result()
        if lost:
            raise WorkerLost(lost)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_sweep(
    spec: SweepSpec,
    store_path: str | Path,
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    plan_fn: PlanFn = plan_scenario,
    on_progress: ProgressFn | None = None,
    version: str | None = None,
) -> SweepSummary:
    """Plan every scenario of `spec` not yet in the store at `store_path`, storing each as it ends.

    `ray_address` ("auto" or a cluster address) runs the scenarios as Ray tasks; otherwise a local
    pool of `workers` processes (default: one per CPU). `plan_fn` is the planning seam (default
    `plan_scenario`, the code of `twofold plan`); it must be importable by the workers.
    """
    return run_scenarios(
        spec.scenarios(),
        store_path,
        name=spec.name,
        workers=workers,
        ray_address=ray_address,
        plan_fn=plan_fn,
        on_progress=on_progress,
        version=version,
    )


def run_scenarios(
    scenarios: Sequence[Scenario],
    store_path: str | Path,
    *,
    name: str,
    workers: int | None = None,
    ray_address: str | None = None,
    plan_fn: PlanFn = plan_scenario,
    on_progress: ProgressFn | None = None,
    version: str | None = None,
    replan: Collection[str] = (),
) -> SweepSummary:
    """`run_sweep` on any list of scenarios (not only a spec's product): the entry `twofold claim`
    shares with `twofold sweep`. Keys in `replan` are planned again even when stored (a caller
    whose `plan_fn` stores more than a stored row holds)."""
    positive_ints(workers=workers)
    if version is None:
        from twofold import __version__

        version = __version__
    t0 = time.perf_counter()
    keys = tuple(scenario_key(s, version) for s in scenarios)
    if ray_address is not None:
        from twofold.sweep.ray_runner import require_ray, run_ray

        require_ray(ray_address)  # before the store is touched: a missing extra is a user mistake
    with SweepStore(store_path) as store:
        done = store.done_keys(keys) - set(replan)
        todo = [i for i, key in enumerate(keys) if key not in done]
        pending = [scenarios[i] for i in todo]
        finished: Finished
        if ray_address is not None:
            executor = f"ray:{ray_address}"
            # Nothing to plan: do not start (or join) a cluster for it.
            finished = run_ray(pending, plan_fn, ray_address) if pending else iter(())
        else:
            n = workers or os.cpu_count() or 1
            executor = f"local:{n}"
            finished = run_local(pending, plan_fn, n)

        counts = {"planned": 0, "rejected": 0}
        failed: list[str] = []
        lost = 0
        interrupted = False
        if on_progress is not None:
            on_progress(len(done), len(keys))
        try:
            for j, outcome in finished:
                i = todo[j]
                if isinstance(outcome, BaseException):
                    failed.append(f"{scenarios[i].canonical_json()}: {type(outcome).__name__}: {outcome}")
                    continue
                store.put(keys[i], version, scenarios[i], outcome)
                counts["planned"] += 1
                counts["rejected"] += outcome.status == "rejected"
                if on_progress is not None:
                    on_progress(len(done) + counts["planned"], len(keys))
        except WorkerLost as exc:
            lost = exc.lost
        except KeyboardInterrupt:
            interrupted = True
        finally:
            close = getattr(finished, "close", None)
            if close is not None:
                close()  # stops the executor: cancels what has not started

    return SweepSummary(
        name=name,
        store=str(Path(store_path).expanduser()),
        version=version,
        executor=executor,
        keys=keys,
        total=len(keys),
        skipped=len(done),
        planned=counts["planned"],
        rejected=counts["rejected"],
        failed=tuple(failed),
        lost=lost,
        interrupted=interrupted,
        elapsed_s=time.perf_counter() - t0,
    )
