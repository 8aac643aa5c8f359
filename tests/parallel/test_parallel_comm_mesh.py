"""Full-mesh level (AMD xGMI): a group of n chips of a D-chip mesh uses n - 1 of each chip's D - 1
links. Reference: hand derivation for MI300X (7 links of 64 GB/s, 448 GB/s per chip in all)."""

from __future__ import annotations

import numpy as np
import pytest

from twofold.parallel.comm import Group, LevelArrays, all_reduce_s


def _mesh() -> tuple[LevelArrays, ...]:
    return (
        LevelArrays(kind="mesh", domain_chips=8.0, bandwidth_bytes_s=448e9, latency_s=0.0, torus_dims=()),
        LevelArrays(
            kind="network", domain_chips=np.inf, bandwidth_bytes_s=50e9, latency_s=0.0, torus_dims=()
        ),
    )


@pytest.mark.parametrize(("n", "link_share"), [(2, 1 / 7), (4, 3 / 7), (8, 1.0)])
def test_mesh_all_reduce_uses_the_links_to_group_members(n: int, link_share: float) -> None:
    levels = _mesh()
    size = 4.0 * 2**30
    t = float(all_reduce_s(levels, Group.place(levels, [(float(n), 1.0)]), np.asarray(size)).reshape(-1)[0])
    expected = 2 * (n - 1) / n * size / (448e9 * link_share)
    assert t == pytest.approx(expected)
    # nccl-tests bus bandwidth of 2 GPUs: one 64 GB/s link.
    if n == 2:
        assert size / t * 2 * (n - 1) / n / 1e9 == pytest.approx(64.0)
