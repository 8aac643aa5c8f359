"""The training estimator: one code path for one layout and many, step-time algebra, invariants."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from twofold.cost import op_times_s, profile_for
from twofold.cost.calibration import UNCALIBRATED
from twofold.errors import InputError
from twofold.estimate import BREAKDOWN_TERMS, estimate_training, evaluate_layouts, model_flops_per_token
from twofold.estimate.compute import compute_times
from twofold.hardware.catalog import get_chip, system_for
from twofold.hardware.types import System
from twofold.parallel.arrays import LayoutArrays
from twofold.parallel.layout import Layout, LayoutTable, TrainingWorkload
from twofold.parallel.rules import valid_mask
from twofold.workload.graph import training_ops
from twofold.workload.model import ModelConfig
from twofold.workload.registry import get_model

DENSE = ModelConfig(
    name="dense-test",
    family="llama",
    num_layers=8,
    hidden_size=1024,
    num_attention_heads=16,
    num_kv_heads=8,
    head_dim=64,
    intermediate_size=2816,
    vocab_size=32000,
)
MOE = ModelConfig(
    name="moe-test",
    family="mixtral",
    num_layers=8,
    hidden_size=1024,
    num_attention_heads=16,
    num_kv_heads=8,
    head_dim=64,
    intermediate_size=2816,
    vocab_size=32000,
    num_experts=8,
    num_experts_per_tok=2,
    moe_intermediate_size=1408,
)
H100 = get_chip("h100")
HGX = system_for(H100)
TRN2 = get_chip("trn2")
TRN2_SYS = system_for(TRN2)
WL = TrainingWorkload(global_batch=64, seq_len=2048)

LAYOUTS = [
    Layout(dp=64),
    Layout(dp=8, tp=8),
    Layout(dp=4, tp=4, pp=4, zero=0),
    Layout(dp=4, tp=4, pp=4, vp=2, micro_batch=2, zero=2),
    Layout(dp=4, tp=2, pp=2, cp=4, recompute="selective"),
    Layout(dp=16, tp=2, pp=2, zero=3, recompute="full"),
    Layout(dp=8, tp=8, sequence_parallel=False),
]


def test_loop_of_single_estimates_equals_vectorised() -> None:
    rows = evaluate_layouts(DENSE, HGX, WL, LayoutTable.from_layouts(LAYOUTS), chip=H100)
    for i, layout in enumerate(LAYOUTS):
        one = estimate_training(DENSE, HGX, layout, WL, chip=H100, chips=64)
        assert one.step_time_s == rows.step_time_s[i]
        assert one.mfu == rows.mfu[i]
        assert one.memory_per_chip_gib == rows.memory_per_chip_gib[i]
        for term in BREAKDOWN_TERMS:
            assert one.breakdown[term] == rows.breakdown_s[term][i]


def test_breakdown_adds_up_and_dict_has_the_contract() -> None:
    est = estimate_training(DENSE, HGX, Layout(dp=4, tp=4, pp=4, vp=2), WL, chip=H100)
    d = est.to_dict()
    for key in (
        "step_time_s",
        "tokens_per_s_per_chip",
        "mfu",
        "memory_per_chip_gib",
        "fits",
        "layout",
        "breakdown",
        "memory",
    ):
        assert key in d
    assert sum(d["breakdown"].values()) == pytest.approx(d["step_time_s"], rel=1e-12)
    assert sum(d["memory"].values()) == pytest.approx(d["memory_per_chip_gib"], rel=1e-12)
    assert d["tokens_per_s_per_chip"] == pytest.approx(64 * 2048 / d["step_time_s"] / 64)


def test_pipeline_bubble_is_pp_minus_1_over_vp_m() -> None:
    """Narayanan et al. 2021: bubble = (p - 1) / (v m) of the ideal m micro-batches' time."""
    for layout in (
        Layout(dp=1, tp=4, pp=4, zero=0, micro_batch=2),
        Layout(dp=1, tp=4, pp=4, vp=2, zero=0, micro_batch=2),
    ):
        est = estimate_training(DENSE, HGX, layout, WL, chip=H100)
        b = est.breakdown
        per_microbatch_terms = sum(
            b[k] for k in BREAKDOWN_TERMS if k not in ("bubble", "optimizer", "other", "dp")
        )
        m = 64 // 2
        assert est.microbatches == m
        assert b["bubble"] / per_microbatch_terms == pytest.approx((4 - 1) / (layout.vp * m), rel=1e-12)
        assert est.bubble_fraction == pytest.approx(3 / (layout.vp * m))


def test_interleaved_pipeline_hides_its_sends_behind_compute() -> None:
    # 1F1B (vp = 1): each micro-batch's 2 boundary transfers are exposed. Interleaved (vp = 2):
    # 2 * vp transfers, hidden while they fit in the micro-batch's compute (overlap_p2p_comm), and
    # reported as hidden; only the chunk steps' latency and launch stay exposed. Hand derivation
    # of the 1F1B term: 2 sends of b*s*h*e / tp bytes (SP scatter) over the level the pp group
    # spans (pp over 4 nodes of 8: the network), per micro-batch, m = 32 micro-batches
    # (uncalibrated: links at their catalog bandwidth).
    workload = TrainingWorkload(global_batch=64, seq_len=2048)
    plain = estimate_training(
        DENSE,
        HGX,
        Layout(dp=1, tp=8, pp=4, zero=0, micro_batch=2),
        workload,
        chip=H100,
        calibration=UNCALIBRATED,
    )
    level = HGX.levels[-1]
    send = 2 * 2048 * 1024 * 2 / 8 / (level.bandwidth_gb_s_per_chip * 1e9) + level.latency_us * 1e-6
    assert plain.breakdown["pp"] == pytest.approx(32 * 2 * send, rel=1e-9)
    assert plain.hidden_comm["pp"] == 0.0
    interleaved = estimate_training(
        DENSE,
        HGX,
        Layout(dp=1, tp=8, pp=4, vp=2, zero=0, micro_batch=2),
        workload,
        chip=H100,
        calibration=UNCALIBRATED,
    )
    assert interleaved.hidden_comm["pp"] == pytest.approx(32 * 4 * send, rel=1e-9)
    # What stays exposed is the chunk steps (estimate.comm_plan, "PP chunks"): 2 * (vp - 1) extra
    # steps per micro-batch, each the network's latency plus the profile's per-op overhead.
    from twofold.cost.defaults import profile_for

    op_overhead_s = profile_for(H100, UNCALIBRATED).op_overhead_s
    chunk = 2 * (2 - 1) * (level.latency_us * 1e-6 + op_overhead_s)
    assert interleaved.breakdown["pp"] == pytest.approx(32 * chunk, rel=1e-9)


def test_model_flops_per_token_hand_derivation() -> None:
    """6 N (matmul parameters: active minus the input embedding) + causal attention
    3 * 2 * a * 2d * (s + 1)/2 per layer (QK^T and PV, forward + 2x backward)."""
    from twofold.workload.params import param_counts

    c = param_counts(DENSE)
    n = c.total - c.embedding
    s = 2048
    attention = 3 * 2 * 16 * (2 * 64) * (s + 1) / 2 * 8
    assert model_flops_per_token(DENSE, s) == pytest.approx(6 * n + attention, rel=1e-12)


def test_recompute_time_equals_the_graph_recompute_ops() -> None:
    """Recompute is derived from the forward ops; check it against pricing training_ops' own
    recompute-phase ops."""
    table = LayoutTable.from_layouts([Layout(tp=2, recompute="full"), Layout(tp=2, recompute="selective")])
    ct = compute_times(DENSE, H100, LayoutArrays.build(table, DENSE, WL), seq_len=2048, precision="bf16")
    for i, mode in enumerate(("full", "selective")):
        ops = [
            op
            for op in training_ops(DENSE, micro_batch=1, seq_len=2048, recompute=mode, tp=2)
            if op.phase == "recompute"
        ]
        expected = float((op_times_s(ops, H100) * np.array([op.count for op in ops])).sum())
        assert ct.layers_recompute[i] == pytest.approx(expected, rel=1e-12)


def test_moe_layout_has_expert_traffic_and_fits_check() -> None:
    est = estimate_training(
        MOE, HGX, Layout(dp=16, tp=2, ep=8), TrainingWorkload(global_batch=64, seq_len=2048), chip=H100
    )
    assert est.breakdown["ep"] > 0
    assert est.fits
    big = ModelConfig(
        name="big",
        family="llama",
        num_layers=80,
        hidden_size=8192,
        num_attention_heads=64,
        num_kv_heads=8,
        head_dim=128,
        intermediate_size=28672,
        vocab_size=128256,
    )
    est = estimate_training(big, HGX, Layout(dp=8, zero=0), WL, chip=H100)
    assert not est.fits and est.notes and "does not fit" in est.notes[0]


def test_bad_layout_raises_input_error() -> None:
    with pytest.raises(InputError, match="tp=3"):
        estimate_training(DENSE, HGX, Layout(tp=3), WL, chip=H100)
    with pytest.raises(InputError, match="chips=64"):
        estimate_training(DENSE, HGX, Layout(dp=2), WL, chip=H100, chips=64)


def _scaled(system: System, factor: float) -> System:
    levels = tuple(
        replace(lv, bandwidth_gb_s_per_chip=lv.bandwidth_gb_s_per_chip * factor) for lv in system.levels
    )
    return replace(system, levels=levels)


layouts = st.builds(
    Layout,
    dp=st.sampled_from([1, 2, 4, 8, 16]),
    tp=st.sampled_from([1, 2, 4, 8]),
    pp=st.sampled_from([1, 2, 3, 4]),
    vp=st.sampled_from([1, 2]),
    cp=st.sampled_from([1, 2, 4]),
    ep=st.sampled_from([1, 2, 4, 8]),
    zero=st.integers(0, 3),
    micro_batch=st.sampled_from([1, 2, 4]),
    recompute=st.sampled_from(["none", "selective", "full"]),
    sequence_parallel=st.booleans(),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    layout=layouts,
    model=st.sampled_from([DENSE, MOE]),
    system=st.sampled_from([(H100, HGX), (TRN2, TRN2_SYS)]),
    factor=st.floats(1.0, 8.0),
    precision=st.sampled_from(["bf16", "fp8"]),
)
def test_invariants(layout, model, system, factor, precision) -> None:
    """Breakdown terms are non-negative and sum to the step; nothing is NaN or infinite; more
    bandwidth on every level is never slower."""
    chip, sys_ = system
    wl = TrainingWorkload(global_batch=64, seq_len=2048, precision=precision)
    table = LayoutTable.from_layouts([layout])
    assume(bool(valid_mask(model, table, wl)[0]))
    base = evaluate_layouts(model, sys_, wl, table, chip=chip)
    for key, value in base.to_dict().items():
        assert np.all(np.isfinite(value.astype(float))), key
    terms = np.array([base.breakdown_s[t][0] for t in BREAKDOWN_TERMS])
    assert np.all(terms >= 0)
    assert terms.sum() == pytest.approx(base.step_time_s[0], rel=1e-12)
    assert base.step_time_s[0] > 0 and 0 < base.mfu[0] < 1
    fast = evaluate_layouts(model, _scaled(sys_, factor), wl, table, chip=chip)
    assert fast.step_time_s[0] <= base.step_time_s[0] * (1 + 1e-12)


def test_context_parallel_costs_its_ring_launches_when_nothing_else_differs() -> None:
    # Same chips, tokens per micro-batch and per chip: dp8 x mb2 against dp2 x cp4 x mb8. Without
    # tensor or pipeline parallelism the two differ only by context parallelism, whose ring steps
    # are extra kernel launches and a merge pass (its K/V transfers hide behind attention here), so
    # it must be slower, by at least the launches: (cp - 1) attention kernels per layer forward
    # and backward at the GPU's calibrated per-op overhead.
    model = get_model("llama3.1-8b")
    workload = TrainingWorkload(global_batch=1024, seq_len=4096)
    flat = estimate_training(model, HGX, Layout(dp=8, micro_batch=2), workload, chip=H100)
    ring = estimate_training(model, HGX, Layout(dp=2, cp=4, micro_batch=8), workload, chip=H100)
    launches = 64 * model.num_layers * (4 - 1) * 2 * profile_for(H100).op_overhead_s  # 64 micro-batches
    assert ring.step_time_s - flat.step_time_s >= launches


def test_fsdp_overlap_fraction_moves_hidden_collectives_into_the_step() -> None:
    # Hand derivation of `fsdp_exposure` on numbers: one pass of gathers ag = 3 s and scatters
    # rs = 2 s against windows of 2 s (forward) and 4 s (backward), a layer share of 0.1.
    # Full overlap: forward exposes max(3 - 2, 0.3) = 1; backward max(5 - 4, 0.5) = 1, split
    # 3:2 into gathers 0.6 and scatters 0.4: exposed gathers 1.6, scatters 0.4, hidden 4.4 and 1.6.
    from twofold.estimate.comm_plan import fsdp_exposure

    full = [float(x) for x in fsdp_exposure(3.0, 2.0, 2.0, 4.0, 0.1, overlap=1.0)]
    assert full == pytest.approx([1.6, 0.4, 4.4, 1.6])
    # Overlap 0.25: three quarters of what hid is exposed too.
    part = [float(x) for x in fsdp_exposure(3.0, 2.0, 2.0, 4.0, 0.1, overlap=0.25)]
    assert part == pytest.approx([1.6 + 0.75 * 4.4, 0.4 + 0.75 * 1.6, 0.25 * 4.4, 0.25 * 1.6])
    # In the estimator: a ZeRO-3 layout's step grows by exactly the lost hidden time.
    model, workload = get_model("llama3.1-8b"), TrainingWorkload(global_batch=64, seq_len=4096)
    layout = Layout(dp=64, zero=3, micro_batch=1)
    kept = estimate_training(model, HGX, layout, workload, chip=H100, calibration=UNCALIBRATED)
    half = estimate_training(
        model, HGX, layout, workload, chip=H100, calibration=replace(UNCALIBRATED, fsdp_comm_overlap=0.5)
    )
    lost = 0.5 * (kept.hidden_comm["fsdp"] + kept.hidden_comm["dp"])
    assert lost > 0 and half.step_time_s == pytest.approx(kept.step_time_s + lost, rel=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    ag=st.floats(0.0, 10.0),
    rs=st.floats(0.0, 10.0),
    fwd=st.floats(0.0, 10.0),
    bwd=st.floats(0.0, 20.0),
    share=st.floats(0.0, 1.0),
    overlap=st.floats(0.0, 1.0),
)
def test_fsdp_exposure_conserves_time_and_is_monotone(
    ag: float, rs: float, fwd: float, bwd: float, share: float, overlap: float
) -> None:
    from twofold.estimate.comm_plan import fsdp_exposure

    g, s, hg, hs = (float(x) for x in fsdp_exposure(ag, rs, fwd, bwd, share, overlap))
    assert g + hg == pytest.approx(2 * ag, abs=1e-9) and s + hs == pytest.approx(rs, abs=1e-9)
    assert min(g, s, hg, hs) >= -1e-12
    g_more, s_more, _, _ = (float(x) for x in fsdp_exposure(ag, rs, fwd, bwd, share, max(overlap - 0.1, 0.0)))
    assert g_more >= g - 1e-12 and s_more >= s - 1e-12  # less overlap never exposes less
