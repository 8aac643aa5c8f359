"""The result of a serving simulation: latency distributions and rates, one field per figure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["LoadResult", "Percentiles"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Percentiles:
    """Mean and percentiles of one latency (units in the owning field's name)."""

    mean: float
    p50: float
    p90: float
    p99: float

    @classmethod
    def of(cls, values: np.ndarray, weights: np.ndarray | None = None, scale: float = 1.0) -> Percentiles:
        """Of `values` (times `scale`), each counted `weights` times (None: once). The percentile is the
        smallest value whose cumulative weight reaches the fraction (inverted CDF)."""
        v = np.asarray(values, dtype=float) * scale
        if v.size == 0:
            return cls(mean=float("nan"), p50=float("nan"), p90=float("nan"), p99=float("nan"))
        w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=float)
        order = np.argsort(v, kind="stable")
        v, w = v[order], w[order]
        cdf = np.cumsum(w) / w.sum()

        def q(p: float) -> float:
            return float(v[min(int(np.searchsorted(cdf, p - 1e-12)), v.size - 1)])

        return cls(mean=float(np.average(v, weights=w)), p50=q(0.5), p90=q(0.9), p99=q(0.99))

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "p50": self.p50, "p90": self.p90, "p99": self.p99}


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadResult:
    """Requests served under a load (`serving.simulate`), over all dp replicas.

    `ttft_ms`: arrival to first token; `itl_ms`: gaps between consecutive tokens of a request (each
    decode step counted once per sequence in it); `tpot_ms`: per request (e2e - TTFT) / (output - 1)
    (what vLLM's benchmark and LLMPerf report as TPOT); `e2e_s`: arrival to last token.
    `output_tokens_per_s` and `requests_per_s` are system-wide, over the span from the first arrival
    to the last completion. `batch_occupancy`: the time-mean of running sequences / max_batch;
    `mean_in_flight`: the time-mean of requests in a replica (waiting or running), for Little's law.
    """

    ttft_ms: Percentiles
    itl_ms: Percentiles
    tpot_ms: Percentiles
    e2e_s: Percentiles
    output_tokens_per_s: float
    requests_per_s: float
    batch_occupancy: float
    mean_in_flight: float
    arrival_rate_per_s: float
    preemptions: int
    steps: int
    span_s: float
    num_requests: int
    replicas: int
    engine: str
    simulation_wall_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "ttft_ms": self.ttft_ms.to_dict(),
            "itl_ms": self.itl_ms.to_dict(),
            "tpot_ms": self.tpot_ms.to_dict(),
            "e2e_s": self.e2e_s.to_dict(),
            "output_tokens_per_s": self.output_tokens_per_s,
            "requests_per_s": self.requests_per_s,
            "batch_occupancy": self.batch_occupancy,
            "mean_in_flight_per_replica": self.mean_in_flight,
            "arrival_rate_per_s_per_replica": self.arrival_rate_per_s,
            "preemptions": self.preemptions,
            "steps": self.steps,
            "span_s": self.span_s,
            "num_requests": self.num_requests,
            "replicas": self.replicas,
            "engine": self.engine,
            "simulation_wall_s": self.simulation_wall_s,
        }
