"""Layouts people can run: the memory headroom, ties going to the simplest layout, search bounds.

References: the fit rule written out (memory per chip <= capacity * (1 - headroom)) against the
real estimator on catalog models and chips; hand-built evaluators whose ranking is known by
construction; for the bounds, the unbounded enumeration filtered by the bound.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _search_fakes import as_step_arrays, fake_evaluate, fake_terms, toy_chip, toy_model, toy_system
from hypothesis import given, settings
from hypothesis import strategies as st

from twofold.errors import InputError
from twofold.estimate import estimate_training, evaluate_layouts
from twofold.hardware.catalog import get_chip, system_for
from twofold.parallel.layout import Layout, TrainingWorkload
from twofold.parallel.memory import DEFAULT_MEM_HEADROOM
from twofold.search.enumerate import EnumerateOptions, enumerate_layouts
from twofold.search.plan import DEFAULT_TIE_TOLERANCE, PARALLEL_DIMENSIONS, plan_training
from twofold.workload import get_model

WORKLOAD = TrainingWorkload(global_batch=32, seq_len=2048)


# --- memory headroom -----------------------------------------------------------------------------


@settings(max_examples=12, deadline=None)
@given(
    model_id=st.sampled_from(["llama-tiny", "mistral-7b", "llama3.1-8b", "qwen3-30b-a3b"]),
    chip_id=st.sampled_from(["h100", "a100-40gb", "tpu-v5e", "mi300x"]),
    chips=st.sampled_from([8, 16, 32]),
    headroom=st.floats(min_value=0.0, max_value=0.5),
)
def test_plan_never_returns_a_layout_over_the_headroom(model_id, chip_id, chips, headroom) -> None:
    chip = get_chip(chip_id)
    workload = TrainingWorkload(global_batch=64, seq_len=2048)
    result = plan_training(
        get_model(model_id), system_for(chip), chips, workload, chip=chip, top_k=20, mem_headroom=headroom
    )
    usable_gib = chip.hbm_capacity_gib * (1.0 - headroom)
    rows = [*result.top, *result.pareto, *([result.best] if result.best else [])]
    for row in rows:
        assert row.step.memory_per_chip_gib <= usable_gib
        assert row.step.fits is True
    assert result.to_dict()["usable_memory_gib"] == pytest.approx(usable_gib, rel=1e-12)
    assert result.mem_headroom == headroom


def test_headroom_zero_is_the_old_fit_rule_and_the_default_keeps_five_percent() -> None:
    model, chip = get_model("llama3.1-8b"), get_chip("h100")
    system = system_for(chip)
    table, _ = enumerate_layouts(model, WORKLOAD, 16, system=system)
    old = evaluate_layouts(model, system, WORKLOAD, table, chip=chip, mem_headroom=0.0)
    total = old.memory_per_chip_bytes
    np.testing.assert_array_equal(old.fits, total <= chip.hbm_capacity_bytes)
    new = evaluate_layouts(model, system, WORKLOAD, table, chip=chip)
    np.testing.assert_array_equal(new.fits, total <= 0.95 * chip.hbm_capacity_bytes)
    assert DEFAULT_MEM_HEADROOM == 0.05
    # Some layouts sit between 95% and 100% of the capacity: the headroom changes the answer.
    tight = dataclasses.replace(chip, hbm_capacity_gib=float(np.median(total)) / 2**30)
    plain = plan_training(model, system, 16, WORKLOAD, chip=tight, mem_headroom=0.0)
    assert plain.fitting_layouts == int(np.count_nonzero(total <= tight.hbm_capacity_bytes))
    kept = plan_training(model, system, 16, WORKLOAD, chip=tight)
    assert kept.fitting_layouts == int(np.count_nonzero(total <= 0.95 * tight.hbm_capacity_bytes))
    assert kept.fitting_layouts < plain.fitting_layouts


def test_estimate_states_the_usable_memory_when_the_headroom_refuses() -> None:
    """A layout at 97% of the capacity fits without headroom and not with 5%."""
    model, base = get_model("llama3.1-8b"), get_chip("h100")
    layout = Layout(dp=8, zero=1)
    need = estimate_training(model, system_for(base), layout, WORKLOAD, chip=base).memory_per_chip_gib
    chip = dataclasses.replace(base, hbm_capacity_gib=need / 0.97)
    plain = estimate_training(model, system_for(chip), layout, WORKLOAD, chip=chip, mem_headroom=0.0)
    kept = estimate_training(model, system_for(chip), layout, WORKLOAD, chip=chip)
    assert plain.fits and not kept.fits
    usable = chip.hbm_capacity_gib * 0.95
    assert any(f"{usable:.3g} GiB usable" in n and "5% headroom" in n for n in kept.notes), kept.notes


@pytest.mark.parametrize("bad", [-0.01, 1.0, 1.5, float("nan"), True, "0.1"])
def test_bad_headroom_is_an_input_error(bad) -> None:
    model, chip = toy_model(), toy_chip()
    with pytest.raises(InputError) as exc:
        plan_training(model, toy_system(), 16, WORKLOAD, chip=chip, evaluate=fake_evaluate, mem_headroom=bad)
    assert exc.value.field == "mem_headroom"
    with pytest.raises(InputError) as exc:
        estimate_training(
            get_model("llama-tiny"), system_for(get_chip("h100")), Layout(), WORKLOAD, mem_headroom=bad
        )
    assert exc.value.field == "mem_headroom"


# --- ties prefer simpler layouts -----------------------------------------------------------------


def _one_percent_apart(model, system, workload, table, *, chip=None):
    """Constructed case: every layout runs 50 tokens/s/chip except two, plain dp = 16 at 100 and
    dp = 8 x tp = 2 at 101 (1% faster, one more parallel dimension)."""
    r = fake_terms(model, system, workload, table, chip=chip)
    plain = (table.dp == 16) & (table.zero == 1) & (table.micro_batch == 1) & (table.recompute == 0)
    split = (table.dp == 8) & (table.tp == 2) & (table.zero == 1) & (table.micro_batch == 1)
    split &= table.recompute == 0
    r["tokens_per_s_per_chip"] = np.where(plain, 100.0, np.where(split, 101.0, 50.0))
    return as_step_arrays(r)


def _plan_ties(**kw):
    return plan_training(
        toy_model(), toy_system(), 16, WORKLOAD, chip=toy_chip(80.0), evaluate=_one_percent_apart, **kw
    )


def test_a_one_percent_gain_does_not_buy_a_parallel_dimension() -> None:
    simple = _plan_ties()
    assert DEFAULT_TIE_TOLERANCE == 0.03
    assert (simple.best.layout.dp, simple.best.layout.tp) == (16, 1)
    assert simple.ties == 2 and simple.tie_tolerance == 0.03
    assert simple.top[1].layout.tp == 2
    assert simple.to_dict()["ties"] == 2
    strict = _plan_ties(tie_tolerance=0.0)
    assert (strict.best.layout.dp, strict.best.layout.tp) == (8, 2) and strict.ties == 1
    tight = _plan_ties(tie_tolerance=0.005)  # 101 / 100 - 1 = 1% > 0.5%
    assert tight.best.layout.tp == 2 and tight.ties == 1


def test_among_ties_the_order_is_dimensions_vp_cp_tp_pp_memory() -> None:
    """Every layout ties (equal throughput): the ranking is the simplicity order itself, checked
    against Python's `sorted` on the same keys."""

    def flat(model, system, workload, table, *, chip=None):
        r = fake_terms(model, system, workload, table, chip=chip)
        r["tokens_per_s_per_chip"] = np.full(len(table), 100.0)
        return as_step_arrays(r)

    result = plan_training(
        toy_model(), toy_system(), 16, WORKLOAD, chip=toy_chip(80.0), evaluate=flat, top_k=100000
    )
    assert result.ties == result.fitting_layouts == len(result.top)

    def key(row):
        lay = row.layout
        dims = sum(getattr(lay, d) > 1 for d in PARALLEL_DIMENSIONS)
        return (dims, lay.vp, lay.cp, lay.tp * lay.pp, row.step.memory_per_chip_gib)

    keys = [key(r) for r in result.top]
    assert keys == sorted(keys)
    assert sum(getattr(result.best.layout, d) > 1 for d in PARALLEL_DIMENSIONS) == 1


def test_outside_the_tolerance_the_objective_order_stands() -> None:
    result = _plan_ties(top_k=50)
    thr = [r.step.tokens_per_s_per_chip for r in result.top]
    assert thr[:2] == [100.0, 101.0] and all(t == 50.0 for t in thr[2:])
    mem = [r.step.memory_per_chip_gib for r in result.top[2:]]
    assert mem == sorted(mem)


@pytest.mark.parametrize("bad", [-0.1, 1.0, float("nan"), True])
def test_bad_tie_tolerance_is_an_input_error(bad) -> None:
    with pytest.raises(InputError) as exc:
        _plan_ties(tie_tolerance=bad)
    assert exc.value.field == "tie_tolerance"


# --- bounds --------------------------------------------------------------------------------------

BOUND_CASES = [
    ({"max_vp": 2}, lambda t: t.vp <= 2),
    ({"max_cp": 1}, lambda t: t.cp == 1),
    ({"max_cp": 2}, lambda t: t.cp <= 2),
    ({"tp": 2}, lambda t: t.tp == 2),
    ({"pp": 2}, lambda t: t.pp == 2),
    ({"cp": 2}, lambda t: t.cp == 2),
    ({"vp": 2}, lambda t: t.vp == 2),
    ({"tp": 2, "max_vp": 1}, lambda t: (t.tp == 2) & (t.vp == 1)),
]


@pytest.mark.parametrize(("bound", "keep"), BOUND_CASES)
def test_a_bound_is_the_unbounded_space_filtered(bound, keep) -> None:
    model, system = get_model("llama3.1-8b"), system_for(get_chip("h100"))
    whole, _ = enumerate_layouts(model, WORKLOAD, 16, system=system)
    bounded, summary = enumerate_layouts(
        model, WORKLOAD, 16, system=system, options=EnumerateOptions(**bound)
    )
    expected = whole.take(np.flatnonzero(keep(whole)))
    assert 0 < len(bounded) == len(expected) == summary.valid
    for name in ("dp", "tp", "pp", "vp", "cp", "ep", "zero", "micro_batch", "recompute"):
        np.testing.assert_array_equal(getattr(bounded, name), getattr(expected, name))


def test_ep_bound_on_a_moe_model() -> None:
    model, system = get_model("qwen3-30b-a3b"), system_for(get_chip("h100"))
    table, _ = enumerate_layouts(model, WORKLOAD, 16, system=system, options=EnumerateOptions(ep=4))
    assert len(table) and set(table.ep.tolist()) == {4}


@pytest.mark.parametrize(
    ("bound", "field", "words"),
    [
        ({"max_vp": 0}, "max_vp", "positive integer"),
        ({"max_cp": -2}, "max_cp", "positive integer"),
        ({"tp": True}, "tp", "positive integer"),
        ({"vp": 1.5}, "vp", "positive integer"),
        ({"tp": 3}, "tp", "divide the chip count 16"),
        ({"vp": 5}, "vp", "divide num_layers=32"),
        ({"ep": 2}, "ep", "has no experts"),
    ],
)
def test_bad_bounds_are_input_errors(bound, field, words) -> None:
    model, system = get_model("llama3.1-8b"), system_for(get_chip("h100"))
    with pytest.raises(InputError) as exc:
        enumerate_layouts(model, WORKLOAD, 16, system=system, options=EnumerateOptions(**bound))
    assert exc.value.field == field and words in exc.value.rule
