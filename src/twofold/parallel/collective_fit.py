"""Published collective bus bandwidths against the collective cost model (`parallel.comm`).

`cost/data/kernels.csv` holds nccl-tests and `all_reduce_bench.py` measurements of all-reduce and
all-gather bus bandwidth by message size and node count (H100 on AWS EFA at 2-32 nodes, H200, A100
and B200 nodes, B200 on EFA at 4 nodes; each row with its source). This module predicts each of
them with `parallel.comm` on the catalog system the row ran on, so that the message-size term of
the cost model (`parallel.comm.HALF_BANDWIDTH_BYTES`, the call size at which a level reaches half
its bandwidth) and the collective library's per-step latency on NVLink and EFA
(`parallel.comm.STEP_LATENCY_S`) are fitted to measurements and their error can be printed
(`benchmarks/collective_fit.py`).

Rows used: bus bandwidth of the library's default algorithm (runs that force an algorithm, such as
NCCL_NVLS_ENABLE=0, are other configurations) at messages of 1 MiB and more: below that the time is
the levels' latency, which the catalog states per level and this fit does not touch.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

__all__ = ["BusbwRow", "CollectiveFit", "fit_constants", "log_errors", "measured_rows", "predicted_busbw"]

# kernels.csv hardware text -> the catalog system it ran on.
SYSTEMS: Mapping[str, str] = {
    "AWS p5.48xlarge": "p5.48xlarge",
    "AWS p5en.48xlarge": "hgx-h200",
    "NVIDIA H200 SXM (8-GPU node": "hgx-h200",
    "NVIDIA A100 (8-GPU node": "hgx-a100",
    "p6-b200.48xlarge": "p6-b200.48xlarge",
}
FORCED = ("NVLS_ENABLE=0", "NCCL_ALGO=", "NVLS_ENABLE=1")
MIN_BYTES = 2**20


@dataclass(frozen=True, kw_only=True, slots=True)
class BusbwRow:
    id: str
    system: str
    collective: str  # "all_reduce" | "all_gather"
    chips: int
    message_bytes: float
    busbw_gb_s: float


def _system(hardware: str) -> str | None:
    return next((sid for key, sid in SYSTEMS.items() if key in hardware), None)


@cache
def measured_rows() -> tuple[BusbwRow, ...]:
    """The kernels.csv bus-bandwidth rows this module predicts (module docstring)."""
    text = resources.files("twofold.cost").joinpath("data", "kernels.csv").read_text(encoding="utf-8")
    out = []
    for r in csv.DictReader(text.splitlines()):
        if r["kind"] != "collective" or r["metric"] != "busbw_gb_s":
            continue
        kernel = r["kernel"]
        collective = (
            "all_reduce" if "all_reduce" in kernel else "all_gather" if "all_gather" in kernel else None
        )
        system = _system(r["hardware"])
        if collective is None or system is None or any(f in r["notes"] for f in FORCED):
            continue
        size = float(r["message_bytes"])
        if size < MIN_BYTES:
            continue
        row = BusbwRow(
            id=r["id"],
            system=system,
            collective=collective,
            chips=int(r["chips"]),
            message_bytes=size,
            busbw_gb_s=float(r["value"]),
        )
        out.append(row)
    return tuple(out)


@contextmanager
def _constants(half: Mapping[str, float] | None, latency: Mapping[str, float] | None) -> Iterator[None]:
    """`parallel.comm`'s half sizes and step latencies set to these (None: the shipped ones)."""
    from twofold.parallel import comm

    saved = dict(comm.HALF_BANDWIDTH_BYTES), dict(comm.STEP_LATENCY_S)
    try:
        for table, new in ((comm.HALF_BANDWIDTH_BYTES, half), (comm.STEP_LATENCY_S, latency)):
            if new is not None:
                table.clear()
                table.update(new)
        yield
    finally:
        for table, old in zip((comm.HALF_BANDWIDTH_BYTES, comm.STEP_LATENCY_S), saved, strict=True):
            table.clear()
            table.update(old)


def predicted_busbw(
    row: BusbwRow,
    *,
    half: Mapping[str, float] | None = None,
    latency: Mapping[str, float] | None = None,
    efficiency: float = 1.0,
) -> float:
    """The bus bandwidth `parallel.comm` gives for the row's collective (nccl-tests' definition:
    all-reduce 2 (n-1)/n S / t, all-gather (n-1)/n S / t, S the buffer), with the half-bandwidth
    sizes `half` and step latencies `latency` (default: the shipped ones) and every level's
    bandwidth times `efficiency`."""
    from twofold.cost.calibration import NVLS_FAMILIES
    from twofold.hardware.catalog import chip_of, get_system
    from twofold.parallel import comm

    system = get_system(row.system)
    levels = comm.LevelArrays.of_system(
        system, efficiency, in_network_reduction=chip_of(system).family in NVLS_FAMILIES
    )
    n = row.chips
    group = comm.Group.place(levels, [(n, 1)])
    size = np.asarray(row.message_bytes)
    with _constants(half, latency):
        if row.collective == "all_reduce":
            seconds, factor = float(comm.all_reduce_s(levels, group, size)), 2.0
        else:
            seconds, factor = float(comm.all_gather_s(levels, group, size)), 1.0
    return factor * (n - 1) / n * row.message_bytes / seconds / 1e9


def log_errors(
    rows: Iterable[BusbwRow],
    *,
    half: Mapping[str, float] | None = None,
    latency: Mapping[str, float] | None = None,
    efficiency: float = 1.0,
) -> list[float]:
    """log(predicted / measured) bus bandwidth per row."""
    return [
        math.log(predicted_busbw(r, half=half, latency=latency, efficiency=efficiency) / r.busbw_gb_s)
        for r in rows
    ]


# The grid of each constant (coordinate descent over it, `fit_constants`).
GRID: Mapping[str, tuple[float, ...]] = {
    "latency nvlink": (1e-6, 2e-6, 3e-6, 4e-6, 5e-6, 6e-6, 8e-6, 10e-6),
    "latency efa": (10e-6, 15e-6, 20e-6, 30e-6, 45e-6, 60e-6, 80e-6, 100e-6),
    "half switched": (0.0, 1e6, 2e6, 4e6, 8e6, 16e6, 32e6),
    "half network": (0.0, 1e6, 2e6, 4e6, 8e6, 16e6, 32e6),
}
# Plain alpha-beta with the catalog's latencies (the model before the message-size term).
PLAIN_HALF: Mapping[str, float] = {"switched": 0.0, "network": 0.0}
PLAIN_LATENCY: Mapping[str, float] = {}


@dataclass(frozen=True, kw_only=True, slots=True)
class CollectiveFit:
    half: Mapping[str, float]
    latency: Mapping[str, float]
    mean_abs_log: float
    bias_log: float


def _score(rows: Sequence[BusbwRow], point: Mapping[str, float]) -> tuple[float, float]:
    half = {"switched": point["half switched"], "network": point["half network"]}
    latency = {"nvlink": point["latency nvlink"], "efa": point["latency efa"]}
    errs = log_errors(rows, half=half, latency=latency)
    return sum(abs(e) for e in errs) / len(errs), sum(errs) / len(errs)


def fit_constants(rows: Sequence[BusbwRow] | None = None, rounds: int = 3) -> CollectiveFit:
    """Coordinate descent over `GRID` from the shipped constants, minimising the mean |log error| of
    the predicted bus bandwidth over `rows` (default: every measured row), bandwidths as the
    catalog states them (the training fit sets the collective efficiency, `cost.calibration`)."""
    from twofold.parallel import comm

    rows = measured_rows() if rows is None else rows
    point = {
        "latency nvlink": comm.STEP_LATENCY_S["nvlink"],
        "latency efa": comm.STEP_LATENCY_S["efa"],
        "half switched": comm.HALF_BANDWIDTH_BYTES["switched"],
        "half network": comm.HALF_BANDWIDTH_BYTES["network"],
    }
    best = _score(rows, point)
    for _ in range(rounds):
        moved = False
        for name, values in GRID.items():
            for value in values:
                trial = {**point, name: value}
                score = _score(rows, trial)
                if score[0] < best[0] - 1e-9:
                    point, best, moved = trial, score, True
        if not moved:
            break
    return CollectiveFit(
        half={"switched": point["half switched"], "network": point["half network"]},
        latency={"nvlink": point["latency nvlink"], "efa": point["latency efa"]},
        mean_abs_log=best[0],
        bias_log=best[1],
    )
