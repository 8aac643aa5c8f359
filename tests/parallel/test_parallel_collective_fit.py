"""The message-size term and step latencies of the collective cost (`parallel.comm`
HALF_BANDWIDTH_BYTES, STEP_LATENCY_S) against the published nccl-tests bus bandwidths of
cost/data/kernels.csv (`parallel.collective_fit`), and the cost formula with them, derived by hand."""

from __future__ import annotations

import numpy as np
import pytest

from twofold.hardware.catalog import get_system
from twofold.parallel import comm
from twofold.parallel.collective_fit import (
    PLAIN_HALF,
    PLAIN_LATENCY,
    fit_constants,
    log_errors,
    measured_rows,
)


def _mean_abs(values: list[float]) -> float:
    return sum(abs(v) for v in values) / len(values)


def test_the_shipped_constants_are_the_fit_and_halve_the_error_against_nccl_tests() -> None:
    rows = measured_rows()
    systems = {r.system for r in rows}
    assert len(rows) >= 100 and {"p5.48xlarge", "hgx-h200", "hgx-a100", "p6-b200.48xlarge"} <= systems
    fit = fit_constants(rows)
    assert dict(fit.half) == comm.HALF_BANDWIDTH_BYTES and dict(fit.latency) == comm.STEP_LATENCY_S
    plain = _mean_abs(log_errors(rows, half=PLAIN_HALF, latency=PLAIN_LATENCY))
    shipped = _mean_abs(log_errors(rows))
    assert shipped == pytest.approx(fit.mean_abs_log)
    # measured: 0.41 -> 0.22 mean |log(predicted / measured)| bus bandwidth
    assert shipped < 0.6 * plain and shipped < 0.25


def test_a_call_reaches_its_level_bandwidth_at_its_size_and_pays_latency_per_call() -> None:
    """Hand derivation on one NVLink level (8 x A100, no in-network reduction): a ring all-reduce of
    S bytes in calls of m bytes takes 2 (n-1)/n S / (B m / (m + min(m, h))) + (S / m) 2 (n-1) alpha,
    alpha the larger of the catalog's link latency and the fitted NVLink step latency."""
    system = get_system("hgx-a100")
    levels = comm.LevelArrays.of_system(system)
    nvlink = levels[0]
    assert nvlink.name == "nvlink"
    n, size = 8, 256e6
    group = comm.Group.place(levels, [(n, 1)])
    half = comm.HALF_BANDWIDTH_BYTES["switched"]
    bandwidth = nvlink.bandwidth_bytes_s
    alpha = max(nvlink.latency_s, comm.STEP_LATENCY_S["nvlink"])
    for message in (size, size / 4, 1e6):
        calls = size / message
        eff = message / (message + min(message, half))
        by_hand = 2 * (n - 1) / n * size / (bandwidth * eff) + calls * 2 * (n - 1) * alpha
        got = comm.all_reduce_s(levels, group, np.asarray(size), None if calls == 1 else np.asarray(message))
        assert float(got) == pytest.approx(by_hand, rel=1e-9)
