"""Fixtures shared across the test packages."""

from __future__ import annotations

import pytest


@pytest.fixture
def plain_alpha_beta(monkeypatch: pytest.MonkeyPatch) -> None:
    """Collectives as plain alpha-beta on the catalog's links: the collective library's call-size
    term and fitted step latencies (`parallel.comm` HALF_BANDWIDTH_BYTES, STEP_LATENCY_S) off. For
    derivations of the link figures and the alpha-beta structure, and for what-if chips whose every
    resource doubles (the library's fixed step latency is not the chip's); the two terms are derived
    in tests/parallel/test_parallel_collective_fit.py."""
    from twofold.parallel import comm

    monkeypatch.setattr(comm, "HALF_BANDWIDTH_BYTES", {})
    monkeypatch.setattr(comm, "STEP_LATENCY_S", {})
