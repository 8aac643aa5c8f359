"""`plan_training` by cost, energy and time, with the stand-in evaluator.

References: a plain loop over the enumerated layouts, each evaluated alone (a one-row table), priced
with the scalar functions of `twofold.economics` (`price_for`, `usd_per_million_tokens`,
`power_model_for`, `busy_fraction`, `energy_per_token_j`) and sorted with Python's `sorted`; the
formulas written out by hand in the tests.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _search_fakes import as_step_arrays, fake_evaluate, fake_terms, toy_chip, toy_model, toy_system

from twofold.economics.power import busy_fraction, energy_per_token_j, power_model_for
from twofold.economics.prices import price_for, usd_per_million_tokens
from twofold.errors import InputError
from twofold.hardware.types import PriceQuote
from twofold.parallel.layout import LayoutTable, TrainingWorkload
from twofold.search.enumerate import enumerate_layouts
from twofold.search.plan import plan_training
from twofold.workload.params import param_counts

WORKLOAD = TrainingWorkload(global_batch=32, seq_len=2048)
CAPACITY_GIB = 20.0
BUSY = ("compute_forward", "compute_backward", "compute_recompute", "optimizer")


def _plan(**kw):
    # The references below are the plain rules: fit within the whole capacity, rank by objective.
    kw.setdefault("mem_headroom", 0.0)
    kw.setdefault("tie_tolerance", 0.0)
    return plan_training(
        toy_model(),
        toy_system(),
        16,
        WORKLOAD,
        chip=kw.pop("chip", toy_chip(CAPACITY_GIB)),
        evaluate=fake_evaluate,
        **kw,
    )


def _fitting_rows():
    """(index, layout, one-row result) of every fitting layout, each evaluated on its own."""
    table, _ = enumerate_layouts(toy_model(), WORKLOAD, 16, system=toy_system())
    out = []
    for i in range(len(table)):
        one = LayoutTable.from_layouts([table.row(i)])
        r = fake_terms(toy_model(), toy_system(), WORKLOAD, one, chip=toy_chip(CAPACITY_GIB))
        if bool(r["fits"][0]):
            out.append((i, table.row(i), {k: float(v[0]) for k, v in r.items()}))
    return out


def _breakdown(r: dict[str, float]) -> dict[str, float]:
    return {k[len("breakdown_") : -len("_s")]: v for k, v in r.items() if k.startswith("breakdown_")}


def test_energy_ranking_equals_a_per_layout_loop_with_the_scalar_power_model() -> None:
    powers = {"toy-chip": 800.0}
    result = _plan(objective="energy", powers=powers, top_k=8)
    pm = power_model_for(toy_chip(), overrides_w=powers)
    ref = []
    for i, layout, r in _fitting_rows():
        u = busy_fraction(_breakdown(r), r["step_time_s"])
        j = energy_per_token_j(pm.power_w(u), r["tokens_per_s_per_chip"])
        ref.append((j, r["memory_per_chip_gib"], i, layout))
    ref.sort(key=lambda x: (x[0], x[1], x[2]))
    assert [row.layout for row in result.top] == [x[3] for x in ref[:8]]
    got = [row.objective.energy_per_token_j for row in result.top]
    assert got == pytest.approx([x[0] for x in ref[:8]], rel=1e-12)
    assert result.to_dict()["objective_inputs"]["power"]["tdp_w"] == 800.0


def _two_kinds(model, system, workload, table, *, chip=None):
    """Constructed case: tp = 1 layouts run 100 tokens/s/chip busy all the step; tp > 1 layouts
    run 95 tokens/s/chip and wait for tp traffic 20% of the step."""
    r = fake_terms(model, system, workload, table, chip=chip)
    split = table.tp > 1
    r["tokens_per_s_per_chip"] = np.where(split, 95.0, 100.0)
    busy = np.where(split, 0.8, 1.0)
    step = r["step_time_s"]
    r.update(
        breakdown_compute_forward_s=busy * step,
        breakdown_compute_backward_s=np.zeros_like(step),
        breakdown_compute_recompute_s=np.zeros_like(step),
        breakdown_optimizer_s=np.zeros_like(step),
        breakdown_tp_s=(1.0 - busy) * step,
        breakdown_bubble_s=np.zeros_like(step),
    )
    return as_step_arrays(r)


def test_energy_can_prefer_a_slower_layout() -> None:
    """Waiting is charged at idle power (200 W of 1000 W here), so the slower tp > 1 layouts win:
    tp = 1: 1000 W / 100 tok/s = 10 J/token; tp > 1: (200 + 800 * 0.8) W / 95 tok/s = 8.842 J/token."""
    kw = {"chip": toy_chip(80.0), "evaluate": _two_kinds}
    fast = plan_training(toy_model(), toy_system(), 16, WORKLOAD, **kw).best
    frugal = plan_training(
        toy_model(), toy_system(), 16, WORKLOAD, objective="energy", powers={"toy-chip": 1000.0},
        idle_fraction=0.2, **kw,
    ).best  # fmt: skip
    assert fast.layout.tp == 1 and frugal.layout.tp > 1
    assert frugal.objective.energy_per_token_j == pytest.approx(840.0 / 95.0, rel=1e-12)
    by_energy_all = plan_training(
        toy_model(), toy_system(), 16, WORKLOAD, objective="energy", powers={"toy-chip": 1000.0},
        idle_fraction=0.2, top_k=100000, **kw,
    ).top  # fmt: skip
    worst = by_energy_all[-1]
    assert worst.layout.tp == 1 and worst.objective.energy_per_token_j == pytest.approx(10.0, rel=1e-12)


def test_best_energy_per_token_by_hand() -> None:
    result = _plan(objective="energy", powers={"toy-chip": 1000.0}, idle_fraction=0.25)
    step, m = result.best.step, result.best.objective
    # P(u) = P_idle + (P_max - P_idle) * u with P_idle = 0.25 * 1000 W, u = kernel seconds / step
    u = sum(step.breakdown_s[t] for t in BUSY) / step.step_time_s
    power_w = 250.0 + (1000.0 - 250.0) * u
    assert 0.0 < u < 1.0
    assert m.busy_fraction == pytest.approx(u, rel=1e-12)
    assert m.power_w == pytest.approx(power_w, rel=1e-12)
    assert m.energy_per_token_j == pytest.approx(power_w / step.tokens_per_s_per_chip, rel=1e-12)


def test_cost_ranks_as_throughput_and_reports_dollars_per_million_tokens() -> None:
    result = _plan(objective="cost", prices={"toy-chip": 2.5}, top_k=6)
    thr = _plan(top_k=6)
    assert [r.layout for r in result.top] == [r.layout for r in thr.top]
    for row in result.top:
        # $2.5 per chip-hour / (tokens/s/chip * 3600 s/h) * 1e6 tokens
        hand = 2.5 / (row.step.tokens_per_s_per_chip * 3600.0) * 1e6
        assert row.objective.usd_per_million_tokens == pytest.approx(hand, rel=1e-12)
        scalar = usd_per_million_tokens(
            price_for(toy_system(), toy_chip(), {"toy-chip": 2.5}), row.step.tokens_per_s_per_chip
        )
        assert row.objective.usd_per_million_tokens == pytest.approx(scalar, rel=1e-12)
    price = result.to_dict()["objective_inputs"]["price"]
    assert (price["usd_per_chip_hour"], price["source"]) == (2.5, "user")


def test_cost_uses_the_catalog_price_of_the_chosen_kind() -> None:
    quotes = {
        "on-demand": PriceQuote(kind="on-demand", usd_per_chip_hour=4.0),
        "spot": PriceQuote(kind="spot", usd_per_chip_hour=1.0),
    }
    priced = dataclasses.replace(toy_system(), prices=quotes)
    for kind, usd in (("spot", 1.0), ("on-demand", 4.0)):
        result = plan_training(
            toy_model(), priced, 16, WORKLOAD, chip=toy_chip(CAPACITY_GIB), evaluate=fake_evaluate,
            objective="cost", price_kind=kind,
        )  # fmt: skip
        best = result.best
        assert best.objective.usd_per_million_tokens == pytest.approx(
            usd / (best.step.tokens_per_s_per_chip * 3600.0) * 1e6, rel=1e-12
        )
    with pytest.raises(InputError, match="capacity-block"):
        plan_training(
            toy_model(), priced, 16, WORKLOAD, chip=toy_chip(CAPACITY_GIB), evaluate=fake_evaluate,
            objective="cost", price_kind="capacity-block",
        )  # fmt: skip


def test_time_to_train_by_hand() -> None:
    result = _plan(objective="time", tokens=2.0e12, top_k=4)
    assert [r.layout for r in result.top] == [r.layout for r in _plan(top_k=4).top]
    best = result.best
    seconds = 2.0e12 / (best.step.tokens_per_s_per_chip * 16)  # tokens / (tokens/s/chip * chips)
    assert best.objective.time_to_train_s == pytest.approx(seconds, rel=1e-12)
    assert best.objective.time_to_train_days == pytest.approx(seconds / 86400.0, rel=1e-12)


def test_time_defaults_to_twenty_tokens_per_parameter() -> None:
    result = _plan(objective="time")
    tokens = 20.0 * param_counts(toy_model()).active  # Chinchilla (Hoffmann et al. 2022)
    assert result.to_dict()["objective_inputs"] == {"tokens": tokens}
    best = result.best
    assert best.objective.time_to_train_s == pytest.approx(
        tokens / (best.step.tokens_per_s_per_chip * 16), rel=1e-12
    )


@pytest.mark.parametrize(
    ("kw", "field", "words"),
    [
        ({"objective": "cost"}, "objective", "pass --price toy-chip=USD"),
        ({"objective": "energy"}, "objective", "pass --power toy-chip=W"),
        ({"objective": "cost", "prices": {"toy-chip": 1.0}, "price_kind": "bulk"}, "price_kind", "one of"),
        (
            {"objective": "energy", "powers": {"toy-chip": 9.0}, "idle_fraction": 1.0},
            "idle_fraction",
            "[0, 1)",
        ),
        ({"objective": "time", "tokens": -1.0}, "tokens", "positive"),
        ({"prices": {"toy-chip": 1.0}}, "price", "--objective cost only"),
        ({"objective": "cost", "prices": {"toy-chip": 1.0}, "tokens": 1e9}, "tokens", "--objective time"),
        ({"objective": "time", "powers": {"toy-chip": 500.0}}, "power", "--objective energy"),
    ],
)
def test_objective_inputs_are_validated_before_evaluation(kw, field, words) -> None:
    def never(*args, **kwargs):
        raise AssertionError("evaluated before the inputs were checked")

    with pytest.raises(InputError) as exc:
        plan_training(toy_model(), toy_system(), 16, WORKLOAD, chip=toy_chip(), evaluate=never, **kw)
    assert exc.value.field == field and words in exc.value.rule
