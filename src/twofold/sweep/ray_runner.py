"""Running sweep scenarios as Ray tasks; the only module of twofold that imports `ray`.

`address="auto"` calls `ray.init()` with no address, which joins the cluster named by
`RAY_ADDRESS` or else starts a local one; any other value is passed to `ray.init(address=...)`
(`ray://head:10001`, `10.0.0.5:6379`). A Ray session that was already initialised in this process
(a test's `ray.init(num_cpus=2)`, a notebook) is used as it is and left running.

At most `window` tasks are in flight, so a sweep of a million scenarios holds a bounded number of
object references; outcomes are fetched as soon as `ray.wait` reports them ready. A worker that
dies is retried by Ray (`max_retries`); a scenario that still fails is yielded as its exception
and the sweep goes on, so a rerun plans only that one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from twofold.errors import InputError
from twofold.sweep.scenario import Outcome, PlanFn

__all__ = ["require_ray", "run_ray"]

_TASKS_PER_CPU = 4  # in-flight tasks per cluster CPU: keeps every worker fed between waits


def require_ray(address: str) -> Any:
    """The `ray` module, or an InputError saying how to install it (checked before any work). An
    explicit address is also checked to answer on its port (`check_reachable`): Ray itself retries
    an unreachable cluster for minutes before it gives up."""
    try:
        import ray
    except ImportError:
        raise InputError(
            "ray", address, "needs the optional Ray package: pip install 'twofold[ray]'"
        ) from None
    if address != "auto":
        check_reachable(address)
    return ray


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """InputError unless something accepts a TCP connection at the address's host and port
    (`host:port`, `ray://host:port`); an address without a port is left to Ray."""
    import socket
    from urllib.parse import urlsplit

    target = address if "://" in address else f"ray://{address}"
    try:
        parts = urlsplit(target)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise InputError("ray", address, "must be 'auto', host:port or ray://host:port") from None
    if not host or port is None:
        return
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise InputError(
            "ray", address, f"nothing answers at {host}:{port} ({exc.strerror or exc}); is the cluster up?"
        ) from None


def run_ray(
    scenarios: Sequence[Any],
    plan_fn: PlanFn,
    address: str,
    *,
    max_retries: int = 2,
    window: int | None = None,
) -> Iterator[tuple[int, Outcome | BaseException]]:
    """Plan `scenarios` as Ray tasks, yielding `(index, outcome or exception)` as each finishes.

    Connects (or starts Ray) now, so that a bad address fails before any work; the returned
    iterator shuts down a Ray it started when it is exhausted or closed.
    """
    ray = require_ray(address)
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=None if address == "auto" else address, include_dashboard=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise InputError("ray", address, f"cannot connect to a Ray cluster ({exc})") from None
    return _stream(ray, scenarios, plan_fn, started_here, max_retries, window)


def _stream(
    ray: Any,
    scenarios: Sequence[Any],
    plan_fn: PlanFn,
    started_here: bool,
    max_retries: int,
    window: int | None,
) -> Iterator[tuple[int, Outcome | BaseException]]:
    task = ray.remote(num_cpus=1, max_retries=max_retries)(plan_fn)
    if window is None:
        window = _TASKS_PER_CPU * max(int(ray.cluster_resources().get("CPU", 1)), 1)
    in_flight: dict[Any, int] = {}
    try:
        next_index = 0
        while next_index < len(scenarios) or in_flight:
            while next_index < len(scenarios) and len(in_flight) < window:
                in_flight[task.remote(scenarios[next_index])] = next_index
                next_index += 1
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            # Collect everything else that is ready too, without waiting.
            rest = [r for r in in_flight if r not in ready]
            more = ray.wait(rest, num_returns=len(rest), timeout=0)[0] if rest else []
            for ref in [*ready, *more]:
                index = in_flight.pop(ref)
                try:
                    yield index, ray.get(ref)
                except ray.exceptions.RayError as exc:
                    yield index, exc
    finally:
        for ref in in_flight:
            ray.cancel(ref)
        if started_here:
            ray.shutdown()
