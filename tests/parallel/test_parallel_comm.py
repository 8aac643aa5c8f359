"""Collective times against hand derivations of the alpha-beta ring/hierarchical formulas.

References for the formulas written out below: Thakur, Rabenseifner, Gropp, "Optimization of
Collective Communication Operations in MPICH", IJHPCA 2005 (ring reduce-scatter/all-gather:
(n-1)/n * S / B with n-1 steps; all-reduce twice that), hierarchical all-reduce as reduce-scatter
inside, all-reduce across, all-gather inside.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twofold.hardware.types import System, TopologyLevel
from twofold.parallel.comm import (
    Group,
    LevelArrays,
    all_gather_s,
    all_reduce_s,
    all_to_all_s,
    reduce_scatter_s,
    send_recv_s,
)

NV_BW, NV_A = 450e9, 2e-6
IB_BW, IB_A = 50e9, 10e-6


pytestmark = pytest.mark.usefixtures("plain_alpha_beta")  # the alpha-beta structure (tests/conftest.py)


HGX = System(
    id="test-hgx",
    name="test",
    chip_id="h100",
    node_chips=8,
    levels=(
        TopologyLevel(
            name="nvlink", kind="switched", domain_chips=8, bandwidth_gb_s_per_chip=450, latency_us=2
        ),
        TopologyLevel(
            name="ib", kind="network", domain_chips=None, bandwidth_gb_s_per_chip=50, latency_us=10
        ),
    ),
)
T_BW, T_A = 512e9, 2e-6
TORUS = System(
    id="test-torus",
    name="test",
    chip_id="trn2",
    node_chips=16,
    levels=(
        TopologyLevel(
            name="nl",
            kind="torus",
            domain_chips=16,
            bandwidth_gb_s_per_chip=512,
            latency_us=2,
            torus_dims=(4, 4),
        ),
        TopologyLevel(
            name="efa", kind="network", domain_chips=None, bandwidth_gb_s_per_chip=25, latency_us=15
        ),
    ),
)
S = 1e9  # bytes


def group(system: System, *factors: tuple[float, float]) -> tuple[tuple[LevelArrays, ...], Group]:
    levels = LevelArrays.of_system(system)
    return levels, Group.place(levels, [(np.array([n]), np.array([s])) for n, s in factors])


def test_tp8_inside_nvlink() -> None:
    levels, g = group(HGX, (8, 1))
    assert all_gather_s(levels, g, S)[0] == pytest.approx(7 / 8 * S / NV_BW + 7 * NV_A)
    assert reduce_scatter_s(levels, g, S)[0] == pytest.approx(7 / 8 * S / NV_BW + 7 * NV_A)
    assert all_reduce_s(levels, g, S)[0] == pytest.approx(2 * 7 / 8 * S / NV_BW + 2 * 7 * NV_A)


def test_dp_across_nodes_one_rank_per_node() -> None:
    # dp=16 with stride 8 (tp=8 inside): every member in its own node, ring bandwidth over the
    # network, tree latency 2 * log2(16) steps.
    levels, g = group(HGX, (16, 8))
    assert all_reduce_s(levels, g, S)[0] == pytest.approx(2 * 15 / 16 * S / IB_BW + 2 * 4 * IB_A)


def test_hierarchical_all_reduce() -> None:
    # dp=32 with stride 4: 2 members per node, 16 nodes. Reduce-scatter + all-gather inside the
    # node on S, all-reduce across nodes on S/2.
    levels, g = group(HGX, (32, 4))
    inside = 2 * (1 / 2) * S / NV_BW + 2 * 1 * NV_A
    across = 2 * (15 / 16) * (S / 2) / IB_BW + 2 * 4 * IB_A
    assert all_reduce_s(levels, g, S)[0] == pytest.approx(inside + across)


def test_two_factor_group_dp_times_cp() -> None:
    # cp=2 (stride tp=2) and dp=8 (stride tp*cp*pp=2*2*2=8): 2 cp ranks and 1 dp rank per node.
    levels, g = group(HGX, (2, 2), (8, 8))
    inside = (1 / 2) * S / NV_BW + 1 * NV_A
    across = (7 / 8) * (S / 2) / IB_BW + 3 * IB_A
    assert reduce_scatter_s(levels, g, S)[0] == pytest.approx(inside + across)


def test_torus_one_dimension_uses_half_the_links() -> None:
    # tp=4 along one dimension of a 4x4 torus: one bidirectional ring, 2 of the 4 links: B/2.
    levels, g = group(TORUS, (4, 1))
    assert all_reduce_s(levels, g, S)[0] == pytest.approx(2 * 3 / 4 * S / (T_BW / 2) + 2 * 3 * T_A)
    # dp=4 with stride 4 runs along the other dimension: the same.
    levels, g = group(TORUS, (4, 4))
    assert all_reduce_s(levels, g, S)[0] == pytest.approx(2 * 3 / 4 * S / (T_BW / 2) + 2 * 3 * T_A)


def test_torus_both_dimensions() -> None:
    # 16 chips over both dimensions: all links, rings of 4 per dimension: 2 * (4 - 1) steps.
    levels, g = group(TORUS, (16, 1))
    assert all_reduce_s(levels, g, S)[0] == pytest.approx(2 * 15 / 16 * S / T_BW + 2 * 6 * T_A)


def test_all_to_all_across_two_nodes() -> None:
    # ep=16 contiguous: 7/16 of a chip's data to node peers over NVLink, 8/16 over the network.
    levels, g = group(HGX, (16, 1))
    expected = 7 / 16 * S / NV_BW + 7 * NV_A + 8 / 16 * S / IB_BW + 1 * IB_A
    assert all_to_all_s(levels, g, S)[0] == pytest.approx(expected)
    levels, g = group(HGX, (8, 1))
    assert all_to_all_s(levels, g, S)[0] == pytest.approx(7 / 8 * S / NV_BW + 7 * NV_A)


def test_moe_dispatch_sends_each_token_once_per_remote_node() -> None:
    # ep=16 over two nodes, S bytes = k = 8 routed copies per token. Hand derivation: a token's 8
    # destinations are uniform over 2 nodes, so it reaches the other node with probability
    # 1 - (1/2)^8 and sends one copy there instead of 8 * 1/2 = 4: the network share 8/16 scales by
    # 2 * (1 - 2^-8) / 8; those copies are forwarded over NVLink inside the destination node.
    levels, g = group(HGX, (16, 1))
    network = 8 / 16 * 2 * (1 - 0.5**8) / 8
    expected = 7 / 16 * S / NV_BW + 7 * NV_A + network * S / IB_BW + 1 * IB_A + 8 / 16 * S / NV_BW
    assert all_to_all_s(levels, g, S, copies_per_token=8)[0] == pytest.approx(expected)
    # Inside one node nothing is deduplicated; one copy per token is the plain all-to-all.
    levels, g = group(HGX, (8, 1))
    assert all_to_all_s(levels, g, S, copies_per_token=8)[0] == pytest.approx(7 / 8 * S / NV_BW + 7 * NV_A)
    levels, g = group(HGX, (16, 1))
    assert all_to_all_s(levels, g, S, copies_per_token=1)[0] == pytest.approx(all_to_all_s(levels, g, S)[0])


def test_send_recv_uses_the_slowest_boundary() -> None:
    levels, g = group(HGX, (4, 2))  # pp=4, stride 2: inside one node
    assert send_recv_s(levels, g, S)[0] == pytest.approx(S / NV_BW + NV_A)
    levels, g = group(HGX, (4, 8))  # stride 8: across nodes
    assert send_recv_s(levels, g, S)[0] == pytest.approx(S / IB_BW + IB_A)


def test_group_of_one_costs_nothing() -> None:
    levels, g = group(HGX, (1, 8))
    for fn in (all_reduce_s, all_gather_s, reduce_scatter_s, all_to_all_s, send_recv_s):
        assert fn(levels, g, S)[0] == 0.0


def _scaled(system: System, factor: float) -> System:
    from dataclasses import replace

    return replace(
        system,
        levels=tuple(
            replace(lv, bandwidth_gb_s_per_chip=lv.bandwidth_gb_s_per_chip * factor) for lv in system.levels
        ),
    )


@settings(max_examples=80, deadline=None)
@given(
    system=st.sampled_from([HGX, TORUS]),
    size=st.sampled_from([1, 2, 3, 4, 8, 16, 64, 512]),
    stride=st.sampled_from([1, 2, 4, 8, 16]),
    nbytes=st.floats(1.0, 1e11),
    factor=st.floats(1.0, 10.0),
)
def test_more_bandwidth_is_never_slower(system, size, stride, nbytes, factor) -> None:
    base_levels, g = group(system, (size, stride))
    fast_levels, g2 = group(_scaled(system, factor), (size, stride))
    for fn in (all_reduce_s, all_gather_s, reduce_scatter_s, all_to_all_s, send_recv_s):
        slow, fast = fn(base_levels, g, nbytes)[0], fn(fast_levels, g2, nbytes)[0]
        assert np.isfinite(slow) and slow >= 0
        assert fast <= slow * (1 + 1e-12)


@settings(max_examples=50, deadline=None)
@given(ep=st.sampled_from([2, 8, 16, 32, 64]), k=st.integers(1, 16))
def test_moe_dispatch_never_costs_more_than_sending_every_copy(ep: int, k: int) -> None:
    # Deduplicating copies per destination node moves at most what sending each copy moves across
    # the network; what it adds is one NVLink crossing of the copies bound for other nodes (the
    # forwarding inside the destination node), priced at the NVLink rate. Inside one node: equal.
    levels, g = group(HGX, (ep, 1))
    plain = all_to_all_s(levels, g, S)[0]
    hierarchical = all_to_all_s(levels, g, S, copies_per_token=k)[0]
    remote = (ep - 8) / ep if ep > 8 else 0.0
    assert hierarchical <= plain + remote * S / NV_BW + 1e-12
    if ep <= 8 or k == 1:
        assert hierarchical == pytest.approx(plain, rel=1e-12)
