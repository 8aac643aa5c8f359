"""`compare --max-vp/--max-cp`: every chip's search stays within the bounds a team will run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from twofold.compare.compare import compare
from twofold.search.enumerate import EnumerateOptions
from twofold.search.plan import DEFAULT_TIE_TOLERANCE

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import run_cli  # noqa: E402


def test_bounds_hold_on_every_chip() -> None:
    bounded = compare("llama3.1-8b", ["h100", "trn2"], chips=16, options=EnumerateOptions(max_vp=1, max_cp=1))
    for row in bounded.rows:
        assert row.layout is not None
        assert row.layout.vp == 1 and row.layout.cp == 1, row.chip
    # A bound only removes layouts: the bounded pick is never faster than the unbounded one beyond
    # the tie tolerance (within it, the unbounded search may prefer a simpler, slightly slower one).
    free = compare("llama3.1-8b", ["h100", "trn2"], chips=16)
    for a, b in zip(bounded.rows, free.rows, strict=True):
        limit = b.metrics["tokens_per_s_per_chip"] * (1 + DEFAULT_TIE_TOLERANCE)
        assert a.metrics["tokens_per_s_per_chip"] <= limit


def test_cli_bounds(capsys: pytest.CaptureFixture[str]) -> None:
    args = ("compare", "llama3.1-8b", "--on", "h100", "--chips", "16", "--json")
    code, out, _ = run_cli(capsys, *args, "--max-cp", "1", "--max-vp", "1")
    assert code == 0
    layout = json.loads(out)["rows"][0]["layout"]
    assert layout["cp"] == 1 and layout["vp"] == 1
    code, _, err = run_cli(capsys, *args, "--max-cp", "0")
    assert code == 2 and "max_cp=0" in err


def test_siblings_share_their_family_error() -> None:
    # H100 and H200 (one family, one stack): the ratio's range is the leave-one-chip-out spread
    # (estimate/uncertainty.yaml, inherited level before widening), narrower than two independent
    # intervals in quadrature; A100 against H100 (two families) keeps the quadrature.
    import math

    from twofold.estimate.uncertainty import uncertainty_data

    entry = uncertainty_data()["training"]["inherited"]
    result = compare("llama3.1-8b", ["h100", "h200", "a100"], chips=8)
    h200, a100 = result.row("h200"), result.row("a100")
    ratio = h200.ratio_to_reference["throughput_per_chip"]
    low, high = h200.ratio_range["throughput_per_chip"]
    assert (low, high) == pytest.approx((ratio * entry["own_ratio_low"], ratio * entry["own_ratio_high"]))
    mine, ref = a100.uncertainty, result.row("h100").uncertainty
    a_low, a_high = a100.ratio_range["throughput_per_chip"]
    assert math.log(a_high / a_low) / 2 == pytest.approx(
        math.hypot(mine.log_half_width, ref.log_half_width), rel=1e-9
    )
    assert math.log(high / low) < math.log(a_high / a_low)
