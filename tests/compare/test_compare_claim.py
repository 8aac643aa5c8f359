"""`claim`: parsing (expected readings written by hand from the text) and evaluation on chips made
true or false by construction (a chip against a copy of itself with doubled compute and HBM)."""

from __future__ import annotations

import json
import math

import pytest
from _compare_fixtures import doubled_target

from twofold.cli import main
from twofold.compare import target
from twofold.compare.claim import (
    CLAIM_WORKLOADS,
    Claim,
    ClaimWorkload,
    evaluate_claim,
    evaluate_ratio,
    parse_claim,
)
from twofold.compare.infer_claim import inference_factors
from twofold.errors import InputError
from twofold.estimate.uncertainty import longest_validated_seq_len

# Compute-bound: one node (NVLink only) and 64 chips, 4M-token steps, a dense 8B model.
COMPUTE_BOUND = (
    ClaimWorkload(label="8b x8", model="llama3.1-8b", kind="dense", seq_len=4096, global_batch=1024, chips=8),
    ClaimWorkload(
        label="8b 32k x8", model="llama3.1-8b", kind="dense", seq_len=32768, global_batch=128, chips=8
    ),
)


@pytest.mark.parametrize(
    ("text", "a", "b", "multiplier", "metric"),
    [
        ("trn2 is 4x trn1", "trn2", "trn1", 4.0, "throughput"),
        (
            "Trainium2 delivers up to 4x faster training than first-generation Trainium",
            "trn2",
            "trn1",
            4.0,
            "throughput",
        ),
        ("trn3 has 2x perf/W of trn2", "trn3", "trn2", 2.0, "perf-per-watt"),
        ("trn2 has 30% better price-performance than h100", "trn2", "h100", 1.3, "perf-per-dollar"),
        ("TPU v6e is 67% more energy efficient than TPU v5e", "tpu-v6e", "tpu-v5e", 1.67, "perf-per-watt"),
        ("trainium 3 is 2 times trainium 2", "trn3", "trn2", 2.0, "throughput"),
        ("h100 is 30% cheaper than a100", "h100", "a100", 1 / 0.7, "perf-per-dollar"),
        ("trn3 gives 4x faster responses than trn2", "trn3", "trn2", 4.0, "latency"),
    ],
)
def test_parse_claim_forms(text: str, a: str, b: str, multiplier: float, metric: str) -> None:
    claim = parse_claim(text)
    assert (claim.chip_a, claim.chip_b, claim.metric) == (a, b, metric)
    assert claim.multiplier == pytest.approx(multiplier)


def test_metric_flag_overrides_text() -> None:
    assert parse_claim("trn2 is 4x trn1", metric="perf-per-dollar").metric == "perf-per-dollar"
    with pytest.raises(InputError, match="metric"):
        parse_claim("trn2 is 4x trn1", metric="speed")


@pytest.mark.parametrize(
    "text", ["trn2 is fast", "4x faster", "trn2 is much faster than trn1", "", "foo is 2x bar"]
)
def test_unparseable_claims_name_the_text_and_the_form(text: str) -> None:
    with pytest.raises(InputError) as info:
        parse_claim(text)
    assert info.value.field == "claim" and info.value.value == text
    assert "expected" in str(info.value) or "multiplier" in str(info.value)


@pytest.mark.parametrize("text", ["h100 is -2x a100", "h100 is 0x a100", "h100 is -30% faster than a100"])
def test_non_positive_multipliers_are_refused(text: str) -> None:
    with pytest.raises(InputError, match="positive"):
        parse_claim(text)


def test_true_claim_by_construction_holds() -> None:
    fast, base = doubled_target("h100", links=False), target("h100")
    claim = Claim(
        text="h100-2x is 2x h100", chip_a=fast.label, chip_b="h100", multiplier=2.0, metric="throughput"
    )
    result = evaluate_ratio(claim, fast, base, workloads=COMPUTE_BOUND)
    assert result.evaluated == 2 and result.holds_for == 2
    assert all(r.holds and r.ratio >= 1.8 and r.dominant_cause == "peak_compute" for r in result.rows)
    # The point estimates hold; the what-if chip has no rows of its own (specifications only), so its
    # 80% range (`compare.ranges`) is far wider than 2x vs 1.8x: no verdict at this evidence.
    for r in result.rows:
        assert r.ratio_range[0] < r.ratio < r.ratio_range[1]
        assert r.verdict == "cannot tell at this evidence"
        # Past the longest validated row of its family (the shipped intervals' seq_len_max_by_family)
        # h100's own evidence drops a level too.
        long = r.workload.seq_len > longest_validated_seq_len("NVIDIA Hopper")
        assert r.thin_evidence.startswith("h100-2x: specifications only")
        assert ("h100: measured family, extrapolated" in r.thin_evidence) == long
    assert result.overall == "cannot tell at this evidence"
    assert result.verdict.startswith("cannot tell at this evidence on 2 of 2 workloads")


def test_false_claim_by_construction_does_not_hold() -> None:
    fast, base = doubled_target("h100", links=False), target("h100")
    claim = Claim(
        text="h100-2x is 3x h100", chip_a=fast.label, chip_b="h100", multiplier=3.0, metric="throughput"
    )
    result = evaluate_ratio(claim, fast, base, workloads=COMPUTE_BOUND)
    assert result.holds_for == 0 and all(r.holds is False for r in result.rows)
    assert result.summary["max"] <= 2.0 + 1e-9  # doubling everything on the chip cannot give more than 2x
    # The range decides: entirely below 2.7x does not hold, straddling it cannot tell; never holds.
    for r in result.rows:
        low, high = r.ratio_range
        assert r.verdict == ("does not hold" if high < 2.7 else "cannot tell at this evidence")
    assert result.overall in ("does not hold", "cannot tell at this evidence")
    assert result.verdict.startswith(("does not hold", "cannot tell"))


def test_verdicts_from_hand_built_ranges() -> None:
    """Three verdicts: the 80% range entirely at or above the threshold, entirely below, or across it."""
    from twofold.compare.claim import ClaimRow, overall_verdict
    from twofold.compare.ranges import range_verdict

    assert range_verdict(1.9, 2.4, 1.8) == "holds"
    assert range_verdict(1.8, 2.4, 1.8) == "holds"  # at the threshold counts
    assert range_verdict(1.2, 1.7, 1.8) == "does not hold"
    assert range_verdict(1.5, 2.2, 1.8) == "cannot tell at this evidence"

    def row(verdict: str) -> ClaimRow:
        w = COMPUTE_BOUND[0]
        return ClaimRow(
            workload=w, ratio=2.0, holds=True, factors=None, dominant_cause=None, secondary_cause=None,
            layout_a=None, layout_b=None, ratio_range=(1.0, 3.0), verdict=verdict,
        )  # fmt: skip

    assert overall_verdict([row("holds"), row("holds")]) == "holds"
    assert overall_verdict([row("does not hold")]) == "does not hold"
    assert overall_verdict([row("holds"), row("does not hold")]) == "holds on some workloads"
    assert (
        overall_verdict([row("holds"), row("cannot tell at this evidence")]) == "cannot tell at this evidence"
    )


def test_ratio_range_combines_two_chips_in_quadrature() -> None:
    """Hand computation: log range = log r + (c_A - c_B) +- sqrt(h_A^2 + h_B^2)."""
    from twofold.compare.ranges import ratio_range
    from twofold.estimate.uncertainty import Evidence, Uncertainty

    ev = Evidence(rows_chip=1, rows_family=1, rows_stack=None, basis="measured family")
    a = Uncertainty(coverage=0.8, intervals={}, evidence=ev, log_interval=(-0.3, 0.5))  # c 0.1, h 0.4
    b = Uncertainty(coverage=0.8, intervals={}, evidence=ev, log_interval=(-0.2, 0.4))  # c 0.1, h 0.3
    low, high = ratio_range(2.0, a, b)
    assert low == pytest.approx(2.0 * math.exp(-0.5)) and high == pytest.approx(2.0 * math.exp(0.5))


def test_price_kind_reprices_perf_per_dollar_only() -> None:
    # Hand derivation: perf/$ ratio = throughput ratio x (price of b / price of a), and the throughput
    # ratio does not depend on prices, so switching the price kind scales every row by the ratio of
    # the two kinds' price ratios, read from the catalog's published quotes.
    text = "h100 is 2x cheaper than trn1"
    on_demand = evaluate_claim(text, workloads=COMPUTE_BOUND[:1])
    block = evaluate_claim(text, workloads=COMPUTE_BOUND[:1], price_kind="capacity-block")
    od = {n: target(n).price.usd_per_chip_hour for n in ("h100", "trn1")}
    cb = {n: target(n, price_kind="capacity-block").price.usd_per_chip_hour for n in ("h100", "trn1")}
    assert None not in (*od.values(), *cb.values()) and cb != od
    expected = (cb["trn1"] / cb["h100"]) / (od["trn1"] / od["h100"])
    assert block.rows[0].ratio == pytest.approx(on_demand.rows[0].ratio * expected, rel=1e-9)
    # A kind without a published price for a chip leaves the claim unchecked, naming the kind.
    spot = evaluate_claim(text, workloads=COMPUTE_BOUND[:1], price_kind="spot")
    assert spot.rows[0].ratio is None and "no published spot price" in spot.rows[0].note


def test_claim_cli_refuses_an_unknown_price_kind(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["claim", "trn2 is 4x trn1", "--price-kind", "reserved"])
    assert done.value.code == 2
    assert "price_kind='reserved'" in capsys.readouterr().err


def test_unpublished_power_makes_perf_per_watt_uncheckable() -> None:
    result = evaluate_claim("trn2 has 2x perf/W of trn1", workloads=COMPUTE_BOUND[:1])
    assert result.evaluated == 0 and result.summary is None
    row = result.rows[0]
    assert row.ratio is None and row.holds is None and "power unknown" in row.note
    assert result.verdict.startswith("cannot be checked")


def test_catalog_workload_set_covers_the_space() -> None:
    kinds = {w.kind for w in CLAIM_WORKLOADS}
    seqs = {w.seq_len for w in CLAIM_WORKLOADS}
    assert kinds == {"dense", "moe"} and min(seqs) <= 4096 < max(seqs)
    assert len({w.chips for w in CLAIM_WORKLOADS}) >= 2 and len(CLAIM_WORKLOADS) <= 16
    assert {w.phase for w in CLAIM_WORKLOADS} == {"training", "inference"}


SERVE = (
    ClaimWorkload(
        label="serve 8b",
        model="llama3.1-8b",
        kind="dense",
        seq_len=1280,
        global_batch=0,
        chips=8,
        phase="inference",
        input_tokens=1024,
        output_tokens=256,
    ),
)


def test_inference_factors_multiply_back_and_doubling_helps(plain_alpha_beta: None) -> None:
    fast, base = doubled_target("h100", links=True, serving=True), target("h100")
    for metric in ("throughput", "latency", "perf-per-dollar"):
        claim = Claim(text="x", chip_a=fast.label, chip_b="h100", multiplier=1.5, metric=metric)
        result = evaluate_ratio(claim, fast, base, workloads=SERVE)
        row = result.rows[0]
        assert row.ratio is not None and row.holds, metric
        assert math.prod(row.factors.values()) == pytest.approx(row.ratio, rel=1e-9)
    # A twice-as-fast chip with the same memory serves the same batch twice as fast: the phases
    # each halve, so the request time ratio (latency) is 2 (hand derivation).
    claim = Claim(text="x", chip_a=fast.label, chip_b="h100", multiplier=2.0, metric="latency")
    row = evaluate_ratio(claim, fast, base, workloads=SERVE).rows[0]
    assert row.ratio == pytest.approx(2.0, rel=1e-6)


def test_inference_factors_by_hand() -> None:
    # A: 2 replicas x 4 sequences on 8 chips (1 per chip), TTFT 1 s, 9 x 0.1 s decode;
    # B: 1 x 4 on 8 chips (0.5 per chip), TTFT 2 s, 9 x 0.3 s. thr = s * M / E.
    a = {"layout": {"dp": 2}, "workload": {"batch": 4, "output_tokens": 10}, "ttft_s": 1.0, "tpot_s": 0.1}
    b = {"layout": {"dp": 1}, "workload": {"batch": 4, "output_tokens": 10}, "ttft_s": 2.0, "tpot_s": 0.3}
    f = inference_factors(a, b, chips=8)
    thr_a, thr_b = 1.0 * 10 / (1.0 + 0.9), 0.5 * 10 / (2.0 + 2.7)
    assert math.prod(f.values()) == pytest.approx(thr_a / thr_b)
    assert f["batch_per_chip"] == pytest.approx(2.0)
    assert f["decode"] == pytest.approx((2.0 + 2.7) / (2.0 + 0.9))


def test_cli_claim_json(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["claim", "trn2 has 2x perf/W of trn1", "--json"])
    assert info.value.code in (0, None)
    d = json.loads(capsys.readouterr().out)
    assert d["claim"]["chip_a"] == "trn2" and d["summary"] is None and d["evaluated"] == 0


def test_cli_claim_bad_text_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["claim", "trn2 rocks"])
    assert info.value.code == 2
    assert "error: claim=" in capsys.readouterr().err


def test_claim_names_a_chip_in_a_system() -> None:
    from twofold.compare.claim_parse import parse_claim

    claim = parse_claim("trn2@trn2-ultraserver is 2x h100")
    assert (claim.chip_a, claim.chip_b) == ("trn2@trn2-ultraserver", "h100")


def test_thin_evidence_of_many_workloads_names_each_chip_once() -> None:
    from twofold.compare.ranges import merge_thin

    longest = 8192  # as each part states it (the family's own longest row)

    def wider(length: int) -> str:
        return f", extrapolated (one level wider): seq_len {2 * length} > {length}, the longest validated row"

    parts = [
        "trn2: inherited from AWS Trainium",
        f"trn2: inherited from AWS Trainium{wider(longest)}",
        f"h100: measured family{wider(longest)}",
        f"tpu-v6e: measured family{wider(4 * longest)}",
    ]
    assert merge_thin(parts) == [
        f"trn2: inherited from AWS Trainium, one level wider past seq_len {longest} (extrapolated)",
        f"h100: measured family, one level wider past seq_len {longest} (extrapolated)",
        f"tpu-v6e: measured family, one level wider past seq_len {4 * longest} (extrapolated)",
    ]
    assert merge_thin(["trn2: inherited from AWS Trainium"] * 2) == ["trn2: inherited from AWS Trainium"]
