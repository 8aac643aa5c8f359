"""`plan_training` with a stand-in evaluator: ranking, top-k, Pareto, chunking, explanations, errors.

The reference for the ranking is a plain loop over the enumerated layouts, each evaluated alone
(a one-row table), sorted with Python's `sorted`; the reference for the front is the O(n^2)
definition of dominance.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from _search_fakes import fake_evaluate, fake_terms, toy_chip, toy_model, toy_system

from twofold.errors import InputError
from twofold.parallel.layout import LayoutTable, TrainingWorkload
from twofold.search import plan as plan_module
from twofold.search.enumerate import enumerate_layouts
from twofold.search.plan import plan_training

WORKLOAD = TrainingWorkload(global_batch=32, seq_len=2048)


def _plan(capacity_gib: float = 80.0, **kw):
    # The references below are the plain rules: fit within the whole capacity, rank by objective.
    kw.setdefault("mem_headroom", 0.0)
    kw.setdefault("tie_tolerance", 0.0)
    return plan_training(
        toy_model(),
        toy_system(),
        16,
        kw.pop("workload", WORKLOAD),
        chip=toy_chip(capacity_gib),
        evaluate=fake_evaluate,
        **kw,
    )


def _per_layout_reference(capacity_gib: float):
    """(throughput, memory, index, layout) of every fitting layout, each evaluated on its own."""
    table, _ = enumerate_layouts(toy_model(), WORKLOAD, 16, system=toy_system())
    rows = []
    for i in range(len(table)):
        one = LayoutTable.from_layouts([table.row(i)])
        r = fake_terms(toy_model(), toy_system(), WORKLOAD, one, chip=toy_chip(capacity_gib))
        if bool(r["fits"][0]):
            rows.append(
                (float(r["tokens_per_s_per_chip"][0]), float(r["memory_per_chip_gib"][0]), i, table.row(i))
            )
    return table, rows


def test_best_and_top_equal_a_per_layout_loop() -> None:
    capacity = 20.0
    result = _plan(capacity, top_k=7)
    table, rows = _per_layout_reference(capacity)
    ranked = sorted(rows, key=lambda r: (-r[0], r[1], r[2]))
    assert result.valid_layouts == result.evaluated_layouts == len(table)
    assert result.fitting_layouts == len(rows) > 0
    assert [r.layout for r in result.top] == [r[3] for r in ranked[:7]]
    assert [r.step.tokens_per_s_per_chip for r in result.top] == [r[0] for r in ranked[:7]]
    assert result.best is not None and result.best.layout == ranked[0][3]
    assert result.best.step.fits is True
    assert result.best.step.memory_per_chip_gib <= capacity
    assert result.explanation == ()


def test_pareto_front_equals_pairwise_definition() -> None:
    result = _plan(20.0)
    _, rows = _per_layout_reference(20.0)
    expected = {
        r[3]
        for r in rows
        if not any(o[1] <= r[1] and o[0] >= r[0] and (o[1] < r[1] or o[0] > r[0]) for o in rows)
    }
    got = [p.layout for p in result.pareto]
    assert set(got) == expected and len(got) == len(expected)
    mem = [p.step.memory_per_chip_gib for p in result.pareto]
    assert mem == sorted(mem)
    # the best layout by throughput is always on the throughput/memory front
    assert result.best.layout in set(got)


def test_chunked_evaluation_gives_the_same_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = _plan(20.0).to_dict()
    calls: list[int] = []

    def counting(*args, **kw):
        calls.append(len(args[3]))
        return fake_evaluate(*args, **kw)

    monkeypatch.setattr(plan_module, "CHUNK_LAYOUTS", 100)
    chunked = plan_training(
        toy_model(), toy_system(), 16, WORKLOAD, chip=toy_chip(20.0), evaluate=counting,
        mem_headroom=0.0, tie_tolerance=0.0,
    ).to_dict()  # fmt: skip
    assert len(calls) > 1 and max(calls) <= 100 and sum(calls) == whole["evaluated_layouts"]
    for key in ("best", "top", "pareto", "fitting_layouts"):
        assert chunked[key] == whole[key]


def test_nothing_fits_is_explained() -> None:
    result = _plan(0.01)
    assert result.best is None and result.top == () and result.pareto == ()
    assert result.fitting_layouts == 0 and result.valid_layouts > 0
    text = " ".join(result.explanation)
    # reference: the least-memory layout of the whole table and its largest memory term
    table, _ = enumerate_layouts(toy_model(), WORKLOAD, 16, system=toy_system())
    r = fake_terms(toy_model(), toy_system(), WORKLOAD, table)
    i = int(np.argmin(r["memory_per_chip_gib"]))
    parts = {"weights": 0, "gradients": 0, "optimizer_states": 0, "activations": 0}
    parts = {k: r[f"memory_{k}_bytes"][i] for k in parts}
    assert f"{r['memory_per_chip_gib'][i]:.1f} GiB against 0.0 GiB" in text
    assert f"largest term is {max(parts, key=parts.get)}" in text


def test_nothing_valid_is_explained() -> None:
    result = _plan(workload=TrainingWorkload(global_batch=1, seq_len=3), top_k=3)
    # 16 chips, global_batch 1 (dp = 1), seq_len 3 (no cp, tp must divide 3): at most tp*pp = 1*8
    assert result.valid_layouts == 0 and result.best is None
    assert any("at most 8 chips, fewer than 16" in line for line in result.explanation)


def test_to_dict_is_json_with_the_documented_keys() -> None:
    d = json.loads(json.dumps(_plan(20.0, top_k=3).to_dict()))
    for key in (
        "best",
        "top",
        "pareto",
        "evaluated_layouts",
        "valid_layouts",
        "fitting_layouts",
        "rejections",
        "elapsed_s",
    ):
        assert key in d
    assert len(d["top"]) == 3
    assert set(d["best"]["layout"]) >= {
        "dp",
        "tp",
        "pp",
        "vp",
        "cp",
        "ep",
        "zero",
        "micro_batch",
        "recompute",
    }
    assert (
        d["best"]["layout"]["dp"]
        * d["best"]["layout"]["tp"]
        * d["best"]["layout"]["pp"]
        * d["best"]["layout"]["cp"]
        == 16
    )


@pytest.mark.parametrize(
    ("kw", "field", "words"),
    [
        ({"chips": 0}, "chips", "positive"),
        ({"objective": "cost"}, "objective", "the price of toy-chip on toy-8 is unknown"),
        ({"objective": "energy"}, "objective", "the maximum power (TDP) of toy-chip is unknown"),
        ({"objective": "speed"}, "objective", "must be one of"),
        ({"top_k": 0}, "top_k", "positive"),
    ],
)
def test_bad_input_raises_input_error(kw, field, words) -> None:
    chips = kw.pop("chips", 16)
    with pytest.raises(InputError) as exc:
        plan_training(
            toy_model(), toy_system(), chips, WORKLOAD, chip=toy_chip(), evaluate=fake_evaluate, **kw
        )
    assert exc.value.field == field and words in exc.value.rule


def test_evaluator_returning_a_dict_is_a_programming_error() -> None:
    def broken(*args, **kw):
        return fake_terms(*args, **kw)  # string keys, not the typed `StepArrays`

    with pytest.raises(TypeError, match="StepArrays"):
        plan_training(toy_model(), toy_system(), 16, WORKLOAD, chip=toy_chip(), evaluate=broken)


def test_top_is_sorted_and_fits() -> None:
    result = _plan(20.0, top_k=50)
    thr = np.array([r.step.tokens_per_s_per_chip for r in result.top])
    assert (np.diff(thr) <= 0).all()
    assert all(r.step.fits for r in result.top)


def test_the_stack_s_context_parallel_algorithm_decides_the_head_rule() -> None:
    """A DeepSpeed search (all-to-all context parallelism) keeps the ring search's layouts whose
    tp*cp ranks each hold whole heads after the all-to-all (8 query and key/value heads here:
    tp*cp divides 8, written out), and a cp bound no tp satisfies is an InputError naming cp."""
    from twofold.search.enumerate import EnumerateOptions

    ring_table, _ = enumerate_layouts(toy_model(), WORKLOAD, 16, system=toy_system())
    whole = [ring_table.row(i) for i in range(len(ring_table))]
    whole = [lay for lay in whole if 8 % (lay.tp * lay.cp) == 0]
    assert 0 < len(whole) < len(ring_table)
    ring = _plan(stack="megatron")
    ulysses = _plan(stack="deepspeed")
    assert ring.valid_layouts == len(ring_table)
    assert ulysses.valid_layouts == len(whole)
    assert ulysses.rejections.rejected_factorisations["cp_heads"] > 0
    assert "cp_heads" not in ring.rejections.rejected_factorisations
    _plan(stack="megatron", options=EnumerateOptions(cp=16))
    with pytest.raises(InputError) as info:
        _plan(stack="deepspeed", options=EnumerateOptions(cp=16))
    assert (info.value.field, info.value.value) == ("cp", 16)
    assert "tp*cp does not divide num_attention_heads=8" in info.value.rule


def test_a_plan_searches_only_the_zero_stages_its_stack_implements() -> None:
    """`cost.stack` zero_stages: MaxText shards by mesh axes (ZeRO 0 or 3), nanotron stops at 1; a
    plan under either never returns another stage, and a bound outside them is refused by name."""
    from twofold.cost.stack import get_stack
    from twofold.search.enumerate import EnumerateOptions

    work = TrainingWorkload(global_batch=64, seq_len=2048)
    for stack, chip in (("maxtext", "tpu-v5p"), ("nanotron", "h100")):
        allowed = set(get_stack(stack).zero_stages(None))
        result = plan_training("llama3.1-8b", chip, 16, work, stack=stack, top_k=50)
        assert result.top and {r.layout.zero for r in result.top} <= allowed
    with pytest.raises(InputError, match="runs ZeRO stages 0, 1 only"):
        only_sharded = EnumerateOptions(zero_stages=(2, 3))
        plan_training("llama3.1-8b", "h100", 16, work, stack="nanotron", options=only_sharded)
