"""`--price`, `--price-kind` and `--min-quality` on every serving verb, and `--neuron-cores` on plan.

Reference: the definition of $ per million output tokens, price per chip-hour / 3600 / output
tokens per second per chip * 1e6 (worked out from each estimate's own throughput below), and the
catalog's quotes (h100 has no spot price; trn2's on-demand quote is grade C, its spot quote grade A).
A kind or grade without a quote is unknown, never filled from another."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from twofold.compare.infer_claim import inference_ratio
from twofold.compare.plans import target

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import run_cli  # noqa: E402

EST = ("estimate", "--model", "llama3.1-8b", "--infer", "--input-tokens", "256", "--output-tokens", "32")
PLAN = ("plan", "--model", "llama3.1-8b", "--infer", "--input-tokens", "256", "--output-tokens", "32")


def _usd(price_per_chip_hour: float, tokens_per_s_per_chip: float) -> float:
    return price_per_chip_hour / 3600.0 / tokens_per_s_per_chip * 1e6


@pytest.mark.parametrize(
    ("chip", "flags", "usd_per_chip_hour", "quality"),
    [
        ("h100", (), 6.88, "A"),  # catalog on-demand
        ("h100", ("--price", "h100=2"), 2.0, "user"),
        ("h100", ("--price-kind", "spot"), None, None),  # no spot quote: unknown
        ("trn2", ("--price-kind", "spot"), 1.44125, "A"),
        ("trn2", ("--min-quality", "B"), None, None),  # the on-demand quote is grade C: excluded
    ],
)
def test_estimate_infer_prices(capsys, chip: str, flags: tuple, usd_per_chip_hour, quality) -> None:
    code, out, err = run_cli(capsys, *EST, "--chip", chip, *flags, "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["price"]["usd_per_chip_hour"] == usd_per_chip_hour and d["price"]["quality"] == quality
    if usd_per_chip_hour is None:
        assert d["usd_per_million_output_tokens"] is None
        assert any(n.startswith("no price (") for n in d["notes"])
    else:
        expected = _usd(usd_per_chip_hour, d["output_tokens_per_s_per_chip"])
        assert d["usd_per_million_output_tokens"] == pytest.approx(expected, rel=1e-12)


def test_estimate_infer_text_says_no_price_of_the_kind(capsys) -> None:
    code, out, err = run_cli(capsys, *EST, "--chip", "h100", "--price-kind", "spot")
    assert code == 0, err
    assert "no price (spot)" in out


def test_plan_infer_rows_carry_dollars(capsys) -> None:
    code, out, err = run_cli(capsys, *PLAN, "--chip", "h100", "--chips", "2", "--top", "3", "--json")
    assert code == 0, err
    d = json.loads(out)
    for row in d["top"]:
        expected = _usd(6.88, row["output_tokens_per_s_per_chip"])
        assert row["usd_per_million_output_tokens"] == pytest.approx(expected, rel=1e-12)
    assert d["best"]["price"]["quality"] == "A"
    code, out, err = run_cli(capsys, *PLAN, "--chip", "h100", "--chips", "2", "--top", "3")
    assert code == 0, err
    assert "$/M out" in out and "(A)" in out and "price h100: on-demand $6.88/chip-h grade A" in out
    code, out, err = run_cli(capsys, *PLAN, "--chip", "h100", "--chips", "2", "--price-kind", "spot")
    assert code == 0, err
    assert "no price (spot)" in out


def test_plan_infer_cost_objective_needs_the_kind_asked(capsys) -> None:
    code, _, err = run_cli(capsys, *PLAN, "--chip", "h100", "--chips", "2", "--objective", "cost",
                           "--price-kind", "spot")  # fmt: skip
    assert code == 2 and "no price (spot)" in err


def test_plan_infer_neuron_cores(capsys) -> None:
    """trn2 at LNC=2: 8 physical NeuronCores a chip = 4 logical; 8 logical cores = 2 chips."""
    code, out, err = run_cli(capsys, *PLAN, "--chip", "trn2", "--neuron-cores", "8", "--top", "1", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["chips"] == 2 and d["neuron_cores"] == "8 logical NeuronCores at LNC=2"


@pytest.mark.parametrize(
    ("verb", "flags", "field"),
    [
        (EST, ("--chip", "h100", "--price-kind", "cheap"), "price_kind"),
        (EST, ("--chip", "h100", "--min-quality", "D"), "min_quality"),
        (EST, ("--chip", "h100", "--price", "h100"), "price"),
        (PLAN, ("--chip", "h100", "--chips", "2", "--price-kind", "cheap"), "price_kind"),
        (PLAN, ("--chip", "h100", "--chips", "2", "--min-quality", "Z"), "min_quality"),
        (PLAN, ("--chip", "trn2", "--neuron-cores", "6"), "neuron_cores"),  # not whole chips
        (PLAN, ("--chip", "trn2", "--chips", "4", "--neuron-cores", "8"), "chips"),  # disagree
        (PLAN, ("--chip", "h100", "--neuron-cores", "8"), "neuron_cores"),  # no NeuronCores
        (PLAN, ("--chip", "h100"), "chips"),  # neither
        (("plan", "--model", "llama3.1-8b", "--chip", "trn2", "--chips", "4"), ("--lnc", "2"), "lnc"),
    ],
)
def test_bad_price_and_core_flags_exit_2(capsys, verb: tuple, flags: tuple, field: str) -> None:
    code, _, err = run_cli(capsys, *verb, *flags)
    assert code == 2 and field in err


def test_serving_claim_rows_price_each_chip_at_the_kind_asked() -> None:
    """A claim's serving row: each chip's $/M output tokens at its own price of the kind asked."""
    a, b = target("trn2", price_kind="spot"), target("h100", price_kind="spot")
    r = inference_ratio(a, b, model="llama3.1-8b", chips=1, input_tokens=256, output_tokens=32,
                        metric="throughput", cache={})  # fmt: skip
    assert r.ratio is not None and r.usd_per_million_output_tokens["h100"] is None
    assert r.usd_per_million_output_tokens["trn2"] is not None
    r = inference_ratio(a, b, model="llama3.1-8b", chips=1, input_tokens=256, output_tokens=32,
                        metric="perf-per-dollar", cache={})  # fmt: skip
    assert r.ratio is None and r.note == "not evaluated: price unknown"
