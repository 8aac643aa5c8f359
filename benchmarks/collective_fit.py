"""The collective cost model against published bus bandwidths (cost/data/kernels.csv: nccl-tests and
all_reduce_bench.py by message size and node count), with and without its message-size term and
fitted step latencies.

    python benchmarks/collective_fit.py

Prints, per system and collective, the mean |log(predicted / measured)| bus bandwidth and the bias
(exp of the mean log: > 1 = predicted too fast) for plain alpha-beta with the catalog's latencies
and for the shipped constants (`parallel.comm.HALF_BANDWIDTH_BYTES`, `STEP_LATENCY_S`), then the
coordinate-descent fit that chose them (`parallel.collective_fit.fit_constants`).
"""

from __future__ import annotations

import math
from collections import defaultdict

from twofold.parallel.collective_fit import (
    PLAIN_HALF,
    PLAIN_LATENCY,
    fit_constants,
    log_errors,
    measured_rows,
)
from twofold.parallel.comm import HALF_BANDWIDTH_BYTES, STEP_LATENCY_S


def _cell(errs: list[float]) -> str:
    return f"{sum(abs(e) for e in errs) / len(errs):.3f} / {math.exp(sum(errs) / len(errs)):.2f}x"


def main() -> None:
    rows = measured_rows()
    groups = defaultdict(list)
    for row in rows:
        groups[(row.system, row.collective)].append(row)
    print(f"{len(rows)} measured rows (>= 1 MiB, the library's default algorithm)")
    print("| system | collective | rows | plain alpha-beta: mean abs log / bias | shipped constants |")
    print("|---|---|---:|---:|---:|")
    for (system, collective), members in sorted(groups.items()):
        plain = _cell(log_errors(members, half=PLAIN_HALF, latency=PLAIN_LATENCY))
        print(f"| {system} | {collective} | {len(members)} | {plain} | {_cell(log_errors(members))} |")
    print(f"all rows, plain alpha-beta: {_cell(log_errors(rows, half=PLAIN_HALF, latency=PLAIN_LATENCY))}")
    print(f"all rows, shipped:          {_cell(log_errors(rows))}")
    fit = fit_constants(rows)
    same = dict(fit.half) == HALF_BANDWIDTH_BYTES and dict(fit.latency) == STEP_LATENCY_S
    print(f"fit: half sizes {dict(fit.half)}, step latencies {dict(fit.latency)}")
    print(f"fit: mean |log| {fit.mean_abs_log:.3f}")
    print("shipped = fit" if same else f"shipped differs: {HALF_BANDWIDTH_BYTES}, {STEP_LATENCY_S}")


if __name__ == "__main__":
    main()
