"""Report tables: best chip per model and scale, ratios to the first chip, gaps shown as gaps."""

from __future__ import annotations

import statistics
from pathlib import Path

from _sweep_reference import TINY_SPEC, reference_result

from twofold.sweep import SweepStore, parse_spec, run_sweep
from twofold.sweep.report import compare_by_scale, ratio_summary, render_html
from twofold.sweep.spec import Scenario

SPEC = parse_spec({**TINY_SPEC, "axes": {**TINY_SPEC["axes"], "chip_counts": [1, 2, 4]}})


def _figure(scenario: Scenario) -> float | None:
    best = reference_result(scenario)["best"]
    return None if best is None else best["tokens_per_s_per_chip"]


def test_tables_match_the_reference_plans_and_mark_what_is_missing(tmp_path: Path) -> None:
    run_sweep(SPEC, tmp_path / "s.db", workers=1)
    with SweepStore(tmp_path / "s.db") as store:
        rows = store.results()
    missing = next(r for r in rows if (r.scenario.chip, r.scenario.chips) == ("trn2", 4))
    rows = [r for r in rows if r is not missing]  # as if the sweep had been interrupted

    table = compare_by_scale(SPEC, rows)
    assert [dict(r.scale)["chips"] for r in table] == [1, 2, 4]
    expected: dict[int, dict[str, float | None]] = {}
    for s in SPEC.scenarios():
        expected.setdefault(s.chips, {})[s.chip] = _figure(s)
    expected[4]["trn2"] = None  # the row left out above
    for row in table:
        figures = expected[dict(row.scale)["chips"]]
        assert {label: value for label, value, _ in row.values} == figures
        known = {k: v for k, v in figures.items() if v is not None}
        assert row.best == max(known, key=known.get)
    assert dict((label, why) for label, _, why in table[2].values)["trn2"] == "not run yet"

    (trn2,) = ratio_summary(table)
    ratios = [expected[n]["trn2"] / expected[n]["h100"] for n in (1, 2)]  # h100 is the first chip
    assert (trn2["hardware"], trn2["reference"], trn2["count"]) == ("trn2", "h100", 2)
    assert trn2["median"] == statistics.median(ratios)
    assert trn2["at_least_2x"] == sum(r >= 2 for r in ratios)

    page = render_html(SPEC, rows, version="test")
    assert "5 of 6 scenarios stored" in page and "not run yet" in page
