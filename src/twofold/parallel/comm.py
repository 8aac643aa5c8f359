"""Alpha-beta cost of collectives on a system's topology levels, vectorised over layouts.

A process group is up to two (size, stride) factors in rank space (ranks placed tp-innermost); a
collective runs hierarchically, level by level, innermost first (reduce-scatter inside, the
collective across, all-gather back), at ring/tree alpha-beta costs per level kind (switched, torus,
mesh, network; Thakur, Rabenseifner and Gropp, IJHPCA 2005), with in-network reduction on NVLink
SHARP levels and flat ZeRO-3/FSDP collectives across nodes; each call runs a level at the bandwidth
its size reaches and pays the collective library's measured step latency (`HALF_BANDWIDTH_BYTES`,
`STEP_LATENCY_S`, fitted to nccl-tests). The formulas, their derivations and
citations, the evidence for the flat-collective rule and what is left out: docs/parallel.md, "The
collective cost in full".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from twofold.hardware.types import System, TopologyLevel
from twofold.units import GB

__all__ = [
    "HALF_BANDWIDTH_BYTES",
    "STEP_LATENCY_S",
    "Group",
    "LevelArrays",
    "all_gather_s",
    "all_reduce_s",
    "all_to_all_s",
    "flat_collective_s",
    "reduce_scatter_s",
    "send_recv_s",
]

Factor = tuple[np.ndarray | float, np.ndarray | float]  # (size, stride)


@dataclass(frozen=True, kw_only=True, slots=True)
class LevelArrays:
    """One topology level as numbers (bytes/s and seconds), with what a bandwidth override changes."""

    kind: str
    domain_chips: float  # inf for the outermost network
    bandwidth_bytes_s: float
    latency_s: float
    torus_dims: tuple[int, ...]
    # Mesh levels: links per chip (domain - 1), kept even for an outermost level (whose domain is
    # treated as unbounded for group placement). None: domain_chips - 1.
    mesh_links: float | None = None
    # NVLink SHARP: the switch reduces, an all-reduce moves S (not 2 (n-1)/n S) per chip each way.
    in_network_reduction: bool = False
    # A scale-up domain spanning several hosts (GB200 NVL72: 72 chips, 4 per host): sharded-data-
    # parallel collectives are priced hierarchically there (`flat_collective_s`).
    multi_host: bool = False
    name: str = ""  # the catalog level's name (nvlink, efa, infiniband, ici, ...)

    @classmethod
    def from_level(cls, level: TopologyLevel, outermost: bool) -> LevelArrays:
        domain = float(level.domain_chips) if level.domain_chips and not outermost else np.inf
        return cls(
            kind=level.kind,
            domain_chips=domain,
            bandwidth_bytes_s=float(level.bandwidth_gb_s_per_chip) * GB,
            latency_s=float(level.latency_us) * 1e-6,
            torus_dims=tuple(level.torus_dims),
            mesh_links=max(float(level.domain_chips or 2) - 1.0, 1.0),
            name=level.name,
        )

    @staticmethod
    def of_system(
        system: System, bandwidth_efficiency: float = 1.0, *, in_network_reduction: bool = False
    ) -> tuple[LevelArrays, ...]:
        """The system's levels innermost first; the outermost is treated as unbounded so that any
        group fits (the system's `max_chips` is checked elsewhere). `bandwidth_efficiency`
        multiplies every level's bandwidth: the achieved bus bandwidth of the collective library
        relative to the link figure (`cost.calibration.TrainingCalibration.collective_efficiency`).
        `in_network_reduction`: the chip's switched NVLink level reduces in the switch (NVLS, module
        docstring); the caller decides from the chip generation (NVLink 4 switches and later)."""
        n = len(system.levels)
        levels = tuple(
            replace(
                LevelArrays.from_level(lv, i == n - 1),
                multi_host=lv.kind != "network"
                and i < n - 1
                and (lv.domain_chips or 0) > max(system.node_chips, 1),
            )
            for i, lv in enumerate(system.levels)
        )
        if in_network_reduction:
            levels = tuple(
                replace(lv, in_network_reduction=True)
                if lv.kind == "switched" and src.name == "nvlink"
                else lv
                for lv, src in zip(levels, system.levels, strict=True)
            )
        if bandwidth_efficiency == 1.0:
            return levels
        return tuple(
            replace(lv, bandwidth_bytes_s=lv.bandwidth_bytes_s * bandwidth_efficiency) for lv in levels
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Group:
    """How a process group spreads over the levels, per layout: members inside one domain of each
    level (cumulative), and the chip stride and chip span of the members first met at each level."""

    size: np.ndarray
    cum: tuple[np.ndarray, ...]
    strides: tuple[np.ndarray, ...]
    spans: tuple[np.ndarray, ...]

    @classmethod
    def place(cls, levels: Sequence[LevelArrays], factors: Sequence[Factor]) -> Group:
        sizes = [np.asarray(s, dtype=float) for s, _ in factors]
        steps = [np.asarray(t, dtype=float) for _, t in factors]
        size = np.ones(np.broadcast_shapes(*(x.shape for x in sizes + steps)))
        for s in sizes:
            size = size * s
        prev = [np.ones_like(size) for _ in sizes]
        cum, strides, spans = [], [], []
        for lv in levels:
            counts = [
                s * np.ones_like(size)
                if np.isinf(lv.domain_chips)
                else np.clip(np.floor(lv.domain_chips / t), 1.0, s)
                for s, t in zip(sizes, steps, strict=True)
            ]
            stride = np.full_like(size, np.inf)
            span = np.ones_like(size)
            total = np.ones_like(size)
            for c, p, t in zip(counts, prev, steps, strict=True):
                grows = c > p
                stride = np.where(grows, np.minimum(stride, t), stride)
                span = np.where(grows, np.maximum(span, t * c), span)
                total = total * c
            cum.append(total)
            strides.append(np.where(np.isinf(stride), 1.0, stride))
            spans.append(span)
            prev = counts
        return cls(size=size, cum=tuple(cum), strides=tuple(strides), spans=tuple(spans))

    def members(self, j: int) -> np.ndarray:
        """n_j: members per level-j domain that sit in distinct level-(j-1) domains."""
        below = self.cum[j - 1] if j > 0 else np.ones_like(self.size)
        return np.asarray(self.cum[j] / below)


def _torus_shape(lv: LevelArrays, stride: np.ndarray, span: np.ndarray) -> tuple[np.ndarray, float]:
    """(k covered dimensions >= 1, total dimensions) of a group of chip `stride` and chip `span`."""
    dims = lv.torus_dims or (int(lv.domain_chips) if np.isfinite(lv.domain_chips) else 1,)
    nodes = float(np.prod(dims))
    unit = lv.domain_chips / nodes if np.isfinite(lv.domain_chips) else 1.0
    covered = np.zeros_like(stride)
    extent = unit
    for d in dims:
        covered += ((extent * d > stride) & (extent < span)).astype(float)
        extent *= d
    return np.maximum(covered, 1.0), float(len(dims))


def _level_terms(lv: LevelArrays, group: Group, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n_j, effective bandwidth, latency steps of one reduce-scatter/all-gather pass) at level j."""
    n = group.members(j)
    bw = np.full_like(n, lv.bandwidth_bytes_s)
    if lv.kind == "torus":
        k, ndims = _torus_shape(lv, group.strides[j], np.minimum(group.spans[j], lv.domain_chips))
        bw = bw * k / ndims
        steps = k * (n ** (1.0 / k) - 1.0)
    elif lv.kind == "mesh":
        links = lv.mesh_links
        if links is None:
            links = max(lv.domain_chips - 1.0, 1.0) if np.isfinite(lv.domain_chips) else 1.0
        bw = bw * np.clip(n - 1.0, 1.0, links) / links
        steps = n - 1.0
    elif lv.kind == "network":
        steps = np.ceil(np.log2(np.maximum(n, 1.0)))
    else:
        steps = n - 1.0
    return n, bw, steps


# Half-bandwidth message size per level kind: a collective call whose buffer at a level is S bytes
# per chip reaches S / (S + min(S, S_half)) of the level's bandwidth. A pipelined ring fills and
# drains its pipeline once per call, which costs about one chunk per step: a fixed time once the
# buffer is larger than the library's chunk (the S_half term), a share of the buffer below it
# (at most half the bandwidth lost; small calls are then latency-bound, the levels' alpha).
# Fitted to the nccl-tests / all_reduce_bench curves of cost/data/kernels.csv (H100 on EFA at 2-32
# nodes, H200, A100 and B200 nodes, B200 on EFA at 4 nodes) by `benchmarks/collective_fit.py`,
# which prints the fit and its error; S at a network level is what reaches it after the
# node-local reduce-scatter (1/8 of the buffer on 8-GPU hosts). Kinds without measurements
# (torus, mesh) keep the plain alpha-beta cost.
HALF_BANDWIDTH_BYTES: dict[str, float] = {"switched": 2e6, "network": 1e6}
# Per-step latency of an NCCL collective call on these interconnects (level name -> seconds), where
# it exceeds the catalog level's own (assumed link) latency: the library's launch, synchronisation
# and protocol cost per ring/tree step, fitted with the half sizes above on the same measurements
# (NVLink nodes; AWS EFA). Other interconnects have no such measurement and keep the catalog's.
STEP_LATENCY_S: dict[str, float] = {"nvlink": 5e-6, "efa": 80e-6}


def _alpha(lv: LevelArrays) -> float:
    return max(lv.latency_s, STEP_LATENCY_S.get(lv.name, 0.0))


def _size_efficiency(kind: str, message: np.ndarray) -> np.ndarray:
    half = HALF_BANDWIDTH_BYTES.get(kind, 0.0)
    if half <= 0.0:
        return np.ones_like(message)
    return np.asarray(message / (message + np.minimum(message, half)))


def _hierarchical(
    levels: Sequence[LevelArrays],
    group: Group,
    nbytes: np.ndarray,
    passes: float,
    message: np.ndarray | None = None,
) -> np.ndarray:
    """Hierarchical cost of `nbytes` per chip sent in calls of `message` bytes (default: one call
    of `nbytes`): each level's bandwidth at the size of the call's share that reaches it
    (`HALF_BANDWIDTH_BYTES`), its latency once per call."""
    total = np.zeros(np.broadcast_shapes(group.size.shape, np.shape(nbytes)))
    left = np.asarray(nbytes, dtype=float)
    part = left if message is None else np.asarray(message, dtype=float)
    for j, lv in enumerate(levels):
        n, bw, steps = _level_terms(lv, group, j)
        volume = (n - 1.0) / n * left
        if passes == 2.0 and lv.in_network_reduction:
            # NVLS all-reduce: S out and S in per chip, i.e. half the ring's 2 (n-1)/n S.
            volume = np.where(n > 1.0, left / 2.0, 0.0)
        eff = np.where(part > 0.0, _size_efficiency(lv.kind, np.maximum(part, 1.0)), 1.0)
        calls = np.where(part > 0.0, left / np.maximum(part, 1.0), 1.0)
        total = total + passes * (volume / (bw * eff) + np.maximum(calls, 1.0) * steps * _alpha(lv))
        left = left / n
        part = part / n
    return total


def all_reduce_s(
    levels: Sequence[LevelArrays], group: Group, nbytes: np.ndarray, message: np.ndarray | None = None
) -> np.ndarray:
    """Seconds for an all-reduce of `nbytes` per chip (module docstring), in calls of `message`
    bytes (gradient buckets; default one call)."""
    return _hierarchical(levels, group, nbytes, 2.0, message)


def reduce_scatter_s(
    levels: Sequence[LevelArrays], group: Group, nbytes: np.ndarray, message: np.ndarray | None = None
) -> np.ndarray:
    """Seconds for a reduce-scatter whose input is `nbytes` per chip (module docstring)."""
    return _hierarchical(levels, group, nbytes, 1.0, message)


def all_gather_s(
    levels: Sequence[LevelArrays], group: Group, nbytes: np.ndarray, message: np.ndarray | None = None
) -> np.ndarray:
    """Seconds for an all-gather whose output is `nbytes` per chip (module docstring)."""
    return _hierarchical(levels, group, nbytes, 1.0, message)


def flat_collective_s(
    levels: Sequence[LevelArrays],
    group: Group,
    nbytes: np.ndarray,
    *,
    passes: float = 1.0,
    buckets: np.ndarray | float = 1.0,
    ring: bool = True,
) -> np.ndarray:
    """Seconds for `buckets` flat all-gathers / reduce-scatters (`passes` = 1) moving `nbytes` in
    all (module docstring, "Flat collectives"): where the group crosses a network level, one ring
    over all its members at that level's per-chip bandwidth with (n-1) latency steps per bucket;
    otherwise the hierarchical cost plus the extra buckets' latency. `ring=False` prices every
    bucket hierarchically (what NCCL reaches across nodes with one NIC per GPU: the multi-node
    all-gather bus bandwidth of nccl-tests, kernels.csv, is several times one NIC's)."""
    buckets = np.asarray(buckets, dtype=float)
    per_bucket = np.asarray(nbytes, dtype=float) / np.maximum(buckets, 1.0)
    inner = _hierarchical(levels, group, nbytes, passes, per_bucket)
    out = inner
    if not ring or any(lv.multi_host for lv in levels):
        return np.asarray(out)
    n_total = group.size
    for j, lv in enumerate(levels):
        if lv.kind != "network":
            continue
        eff = _size_efficiency(lv.kind, np.maximum(per_bucket, 1.0))
        ring = passes * (
            (n_total - 1.0) / np.maximum(n_total, 1.0) * nbytes / (lv.bandwidth_bytes_s * eff)
            + buckets * (n_total - 1.0) * _alpha(lv)
        )
        out = np.where(group.members(j) > 1.0, np.maximum(ring, inner), out)
    return np.asarray(out)


def all_to_all_s(
    levels: Sequence[LevelArrays],
    group: Group,
    nbytes: np.ndarray,
    *,
    copies_per_token: float = 1.0,
) -> np.ndarray:
    """Seconds for an all-to-all where each chip holds `nbytes` spread evenly over the group.

    The share bound for peers first met at level j, (cum_j - cum_(j-1)) / size, crosses level j at
    that level's all-to-all bandwidth; levels are paid one after the other (no overlap).

    `copies_per_token` = k > 1 prices an MoE dispatch or combine whose `nbytes` are k routed copies
    of each token, sent hierarchically as DeepEP's inter-node kernels do (Megatron-Core's flex
    dispatcher; DeepSeek-AI, "DeepSeek-V3 Technical Report", arXiv 2412.19437, section 3.2.2:
    a token crosses the scale-out network once per destination node and is forwarded to its
    experts' GPUs over NVLink; the combine reduces inside the node before sending back). With
    the k destinations uniform over the N domains the group spans at an outer level j, a token
    reaches (N - 1)(1 - (1 - 1/N)^k) remote domains instead of sending k(N - 1)/N copies: that
    level's share is scaled by N(1 - (1 - 1/N)^k)/k (<= 1), and the forwarded copies cross the
    innermost level once more.
    """
    total = np.zeros(np.broadcast_shapes(group.size.shape, np.shape(nbytes)))
    prev = np.ones_like(group.size)
    k = max(float(copies_per_token), 1.0)
    forwarded = np.zeros_like(total)
    for j, lv in enumerate(levels):
        n, bw, _ = _level_terms(lv, group, j)
        if lv.kind == "torus":
            dims, _ = _torus_shape(lv, group.strides[j], np.minimum(group.spans[j], lv.domain_chips))
            ring = n ** (1.0 / dims)
            bw = bw / np.maximum(1.0, ring / 4.0)
        share = (group.cum[j] - prev) / group.size
        if j > 0 and k > 1.0:
            domains = group.cum[j] / prev
            dedup = np.where(domains > 1.0, domains * (1.0 - (1.0 - 1.0 / domains) ** k) / k, 1.0)
            forwarded = forwarded + share
            share = share * dedup
        total = total + share * nbytes / bw + (n - 1.0) * lv.latency_s
        prev = group.cum[j]
    if k > 1.0 and len(levels) > 1:
        n0, bw0, _ = _level_terms(levels[0], group, 0)
        total = total + np.where(n0 > 1.0, forwarded * nbytes / bw0, 0.0)
    return total


def send_recv_s(levels: Sequence[LevelArrays], group: Group, nbytes: np.ndarray) -> np.ndarray:
    """Seconds to send `nbytes` to the next member: priced at the outermost level the group spans
    (the slowest boundary of a synchronous pipeline sets its pace)."""
    out = np.zeros(np.broadcast_shapes(group.size.shape, np.shape(nbytes)))
    for j, lv in enumerate(levels):
        n = group.members(j)
        out = np.where(n > 1.0, nbytes / lv.bandwidth_bytes_s + lv.latency_s, out)
    return out
