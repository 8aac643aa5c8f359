"""Layout enumeration against a plain-Python brute force (itertools over divisors) of the same rules.

The reference below is written from the rule list in `twofold.search.enumerate`'s docstring, one
`if` per rule, with no NumPy, so the vectorised masks and the loop have to agree layout by layout
and count by count.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twofold.errors import InputError
from twofold.hardware.types import System, TopologyLevel
from twofold.parallel.layout import RECOMPUTE_MODES, TrainingWorkload
from twofold.search.enumerate import EnumerateOptions, enumerate_layouts
from twofold.workload.model import ModelConfig


def _model(
    *, layers: int = 8, heads: int = 8, kv: int = 4, ffn: int = 64, experts: int = 0, moe_ffn: int = 0
) -> ModelConfig:
    return ModelConfig(
        name="tiny",
        family="llama",
        num_layers=layers,
        hidden_size=heads * 8,
        num_attention_heads=heads,
        num_kv_heads=kv,
        head_dim=8,
        intermediate_size=ffn,
        vocab_size=256,
        num_experts=experts,
        num_experts_per_tok=2 if experts else 0,
        moe_intermediate_size=moe_ffn,
    )


def _system(domain: int) -> System:
    return System(
        id="toy",
        name="toy",
        chip_id="toy-chip",
        node_chips=domain,
        levels=(
            TopologyLevel(
                name="nvlink", kind="switched", domain_chips=domain, bandwidth_gb_s_per_chip=450, latency_us=2
            ),
            TopologyLevel(
                name="ib", kind="network", domain_chips=None, bandwidth_gb_s_per_chip=50, latency_us=5
            ),
        ),
    )


def _divs(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _reference(model, workload, chips, *, domain=None, opts=None):
    """Valid layouts as tuples (dp, tp, pp, cp, vp, ep, etp, zero, micro_batch, recompute, sp), in
    order, and the count of factorisations each rule rejects first."""
    opts = opts or EnumerateOptions()
    s, gb, L = workload.seq_len, workload.global_batch, model.num_layers
    fact_first: dict[str, int] = {}
    out = []
    facts = [
        (chips // (t * p * c), t, p, c)
        for t, p, c in itertools.product(_divs(chips), repeat=3)
        if chips % (t * p * c) == 0
    ]
    for dp, tp, pp, cp in sorted(facts):
        # Megatron-LM: tp divides the KV heads, or is a multiple of them (replicated KV heads).
        kv_ok = model.num_kv_heads % tp == 0 or tp % model.num_kv_heads == 0
        # The routed-expert width is split by etp (checked per layout below), not by tp.
        ffn_ok = model.intermediate_size % tp == 0
        checks = [
            ("tp_heads", model.num_attention_heads % tp == 0),
            ("tp_kv_heads", kv_ok),
            ("tp_ffn", ffn_ok),
            ("tp_domain", domain is None or not opts.tp_within_fastest_domain or tp <= domain),
            ("pp_layers", pp <= L if opts.uneven_pipeline else L % pp == 0),
            ("cp_seq", cp == 1 or s % (2 * cp) == 0),
            ("sp_seq", tp == 1 or (s % cp == 0 and (s // cp) % tp == 0)),
            ("dp_batch", gb % dp == 0),
        ]
        failed = [name for name, ok in checks if not ok]
        if failed:
            fact_first[failed[0]] = fact_first.get(failed[0], 0) + 1
            continue
        eps = _divs(model.num_experts) if model.is_moe else [1]
        max_mb = gb if opts.max_micro_batch is None else min(gb, opts.max_micro_batch)
        mbs = [2**k for k in range(max_mb.bit_length())]
        rcs = [RECOMPUTE_MODES.index(r) for r in RECOMPUTE_MODES if r in opts.recompute]
        # Expert tensor parallelism: tp (Megatron's default) and, for MoE with tp > 1, also 1.
        etps = [tp, 1] if model.is_moe and tp > 1 else [tp]
        grid = itertools.product(_divs(L), eps, etps, sorted(opts.zero_stages), mbs, rcs)
        for vp, ep, etp, zero, mb, rc in grid:
            if vp > 1 and pp == 1:
                continue
            # Uneven interleaved splits are allowed; the embedding and the loss may fill a virtual
            # stage each (Megatron's account-for-embedding/loss-in-pipeline-split).
            if pp * vp > L + 2:
                continue
            if model.is_moe and model.moe_intermediate_size % etp:
                continue
            if (tp * dp * cp) % (ep * etp):  # a stage's ranks refold as etp x ep x edp
                continue
            if gb % (dp * mb):
                continue
            if vp > 1 and (gb // (dp * mb)) % pp:
                continue
            if zero > 0 and dp * cp == 1:
                continue
            out.append((dp, tp, pp, cp, vp, ep, etp, zero, mb, rc, int(tp > 1)))
    return out, fact_first


def _rows(table):
    cols = (
        "dp",
        "tp",
        "pp",
        "cp",
        "vp",
        "ep",
        "etp",
        "zero",
        "micro_batch",
        "recompute",
        "sequence_parallel",
    )
    return list(zip(*(getattr(table, c).tolist() for c in cols), strict=True))


@pytest.mark.parametrize(
    ("model", "workload", "chips", "domain", "opts"),
    [
        (_model(), TrainingWorkload(global_batch=16, seq_len=64), 16, None, EnumerateOptions()),
        (_model(), TrainingWorkload(global_batch=12, seq_len=96), 24, 8, EnumerateOptions()),
        (
            _model(layers=12, heads=12, kv=12, ffn=96),
            TrainingWorkload(global_batch=8, seq_len=48),
            36,
            4,
            EnumerateOptions(),
        ),
        (
            _model(layers=6, kv=2),
            TrainingWorkload(global_batch=32, seq_len=128),
            32,
            8,
            EnumerateOptions(uneven_pipeline=False, max_micro_batch=4),
        ),
        (
            _model(experts=8, moe_ffn=32),
            TrainingWorkload(global_batch=16, seq_len=64),
            16,
            8,
            EnumerateOptions(zero_stages=(1, 3), recompute=("none", "full")),
        ),
    ],
)
def test_enumeration_equals_brute_force(model, workload, chips, domain, opts) -> None:
    system = None if domain is None else _system(domain)
    table, summary = enumerate_layouts(model, workload, chips, system=system, options=opts)
    expected, fact_first = _reference(model, workload, chips, domain=domain, opts=opts)
    assert _rows(table) == expected
    assert summary.valid == len(expected) > 0
    assert {k: v for k, v in summary.rejected_factorisations.items() if v} == fact_first
    # every candidate is either valid or charged to exactly one rule
    assert summary.valid + sum(summary.rejected_layouts.values()) == summary.candidates


@settings(max_examples=40, deadline=None)
@given(
    chips=st.integers(1, 48),
    layers=st.sampled_from([1, 2, 3, 4, 6, 8, 12]),
    heads_kv=st.sampled_from([(1, 1), (4, 1), (4, 2), (6, 3), (8, 8), (12, 4)]),
    seq=st.sampled_from([1, 8, 12, 64]),
    gb=st.integers(1, 24),
    experts=st.sampled_from([0, 4, 6]),
    uneven=st.booleans(),
)
def test_enumeration_matches_reference_on_random_cases(
    chips, layers, heads_kv, seq, gb, experts, uneven
) -> None:
    heads, kv = heads_kv
    model = _model(layers=layers, heads=heads, kv=kv, ffn=24 * heads, experts=experts, moe_ffn=12 * heads)
    workload = TrainingWorkload(global_batch=gb, seq_len=seq)
    opts = EnumerateOptions(uneven_pipeline=uneven)
    table, summary = enumerate_layouts(model, workload, chips, system=_system(4), options=opts)
    expected, fact_first = _reference(model, workload, chips, domain=4, opts=opts)
    assert _rows(table) == expected
    assert (
        sum(summary.rejected_factorisations.values()) + sum(1 for _ in {r[:4] for r in expected})
        == summary.factorisations
    )
    assert {k: v for k, v in summary.rejected_factorisations.items() if v} == fact_first


def test_every_layout_uses_all_chips_and_sp_follows_tp() -> None:
    table, _ = enumerate_layouts(_model(), TrainingWorkload(global_batch=16, seq_len=64), 16)
    assert ((table.dp * table.tp * table.pp * table.cp) == 16).all()
    assert ((table.sequence_parallel == 1) == (table.tp > 1)).all()


def test_too_many_chips_for_the_model_is_explained() -> None:
    # 7 sequences (dp | 7 and dp | 16: dp = 1), 2 heads (tp <= 2), 2 layers (pp <= 2), seq_len 2
    # (cp = 2 would need seq_len % 4 == 0): at most 1*2*2*1 = 4 of the 16 chips can be used.
    model = _model(layers=2, heads=2, kv=2, ffn=16)
    table, summary = enumerate_layouts(model, TrainingWorkload(global_batch=7, seq_len=2), 16)
    assert len(table) == 0
    assert summary.allowed == {"dp": (1,), "tp": (1, 2), "pp": (1, 2), "cp": (1,)}
    text = "\n".join(summary.explain())
    assert "at most 4 chips, fewer than 16" in text
    assert "global_batch=7 is not divisible by dp" in text


def test_no_product_equal_to_chips_is_explained() -> None:
    # Every axis allows {1, 2} (batch 4, 4 heads, 2 layers, seq_len 64 with cp=3 breaking 2*cp | 64),
    # and 6 chips need a factor 3 that no axis allows.
    model = _model(layers=2, heads=4, kv=4, ffn=16)
    table, summary = enumerate_layouts(model, TrainingWorkload(global_batch=4, seq_len=64), 6)
    assert len(table) == 0
    assert summary.allowed == {"dp": (1, 2), "tp": (1, 2), "pp": (1, 2), "cp": (1, 2)}
    assert "no combination of them multiplies to 6" in "\n".join(summary.explain())


@pytest.mark.parametrize(
    ("chips", "workload", "field"),
    [
        (0, TrainingWorkload(global_batch=8, seq_len=8), "chips"),
        (-4, TrainingWorkload(global_batch=8, seq_len=8), "chips"),
        (2.5, TrainingWorkload(global_batch=8, seq_len=8), "chips"),
        (8, TrainingWorkload(global_batch=0, seq_len=8), "global_batch"),
        (8, TrainingWorkload(global_batch=8, seq_len=0), "seq_len"),
    ],
)
def test_bad_input_names_the_field(chips, workload, field) -> None:
    with pytest.raises(InputError) as exc:
        enumerate_layouts(_model(), workload, chips)
    assert exc.value.field == field


def test_bad_options_are_refused() -> None:
    w = TrainingWorkload(global_batch=8, seq_len=8)
    with pytest.raises(InputError):
        enumerate_layouts(_model(), w, 8, options=EnumerateOptions(zero_stages=(4,)))
    with pytest.raises(InputError):
        enumerate_layouts(_model(), w, 8, options=EnumerateOptions(recompute=("some",)))


@pytest.mark.parametrize(
    ("model", "workload", "chips"),
    [
        (_model(layers=6, kv=2), TrainingWorkload(global_batch=16, seq_len=64), 16),
        (_model(experts=4, moe_ffn=32), TrainingWorkload(global_batch=8, seq_len=32), 8),
        (_model(layers=3, heads=6, kv=6, ffn=48), TrainingWorkload(global_batch=6, seq_len=24), 12),
    ],
)
@pytest.mark.parametrize("context_parallel", ["ring", "all-to-all"])
def test_enumeration_equals_the_estimators_validity_rules(model, workload, chips, context_parallel) -> None:
    """Every layout of the candidate grid that `parallel.rules.valid_mask` (the estimator's own
    rules, written independently) accepts is enumerated, and nothing else, up to the one documented
    redundancy (zero > 0 with a single data-parallel rank); for all-to-all context parallelism
    (DeepSpeed-Ulysses) too, whose head rules both add."""
    from twofold.parallel.layout import Layout, LayoutTable
    from twofold.parallel.rules import valid_mask

    grid = []
    facts = [(t, p, c) for t, p, c in itertools.product(_divs(chips), repeat=3) if chips % (t * p * c) == 0]
    eps = _divs(model.num_experts) if model.is_moe else [1, 2]
    mbs = [2**k for k in range(workload.global_batch.bit_length())]
    # vp over the search's axis (divisors of num_layers) and every etp dividing chips, so that the
    # rules, not the grid, decide which expert tensor-parallel sizes are valid.
    vps = _divs(model.num_layers)
    for (tp, pp, cp), vp, ep, etp, zero, mb, rc in itertools.product(
        facts, vps, eps, _divs(chips), range(4), mbs, RECOMPUTE_MODES
    ):
        dp = chips // (tp * pp * cp)
        grid.append(
            Layout(
                dp=dp,
                tp=tp,
                pp=pp,
                vp=vp,
                cp=cp,
                ep=ep,
                zero=zero,
                micro_batch=mb,
                recompute=rc,
                sequence_parallel=tp > 1,
                etp=etp,
            )
        )
    ok = valid_mask(model, LayoutTable.from_layouts(grid), workload, chips, context_parallel=context_parallel)
    expected = {
        lay
        for lay, good in zip(grid, ok.tolist(), strict=True)
        if good and not (lay.zero and lay.dp * lay.cp == 1)
    }
    table, _ = enumerate_layouts(
        model,
        workload,
        chips,
        options=EnumerateOptions(tp_within_fastest_domain=False),
        context_parallel=context_parallel,
    )
    got = {table.row(i) for i in range(len(table))}
    assert got == expected and got
