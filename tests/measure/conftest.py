"""Registers the `slow` marker (tests that time real kernels; small, and run by default)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: times real kernels (small; runs by default, deselect with -m 'not slow')"
    )
