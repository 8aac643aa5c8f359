"""`twofold plan` / `twofold estimate` flags for layouts people can run: --mem-headroom,
--tie-tolerance, --tp/--pp/--cp/--ep/--vp, --max-vp/--max-cp; bad values exit 2.

Reference: the API (`plan_training`, `estimate_training`) with the same arguments, and the fit
rule written out (memory per chip <= capacity * (1 - headroom))."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import run_cli  # noqa: E402
from twofold.hardware.catalog import get_chip  # noqa: E402

PLAN = ("plan", "--model", "llama3.1-8b", "--chip", "h100", "--chips", "16", "--global-batch", "32")
ESTIMATE = ("estimate", "--model", "llama3.1-8b", "--chip", "h100", "--chips", "8", "--global-batch", "32")


def test_plan_json_states_the_headroom_and_keeps_every_layout_under_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_cli(capsys, *PLAN, "--mem-headroom", "0.5", "--top", "20", "--json")
    assert code == 0
    d = json.loads(out)
    capacity = get_chip("h100").hbm_capacity_gib
    assert d["mem_headroom"] == 0.5 and d["hbm_capacity_gib"] == capacity
    assert d["usable_memory_gib"] == pytest.approx(capacity * 0.5)
    for row in [*d["top"], *d["pareto"], d["best"]]:
        assert row["memory_per_chip_gib"] <= d["usable_memory_gib"]
    assert d["tie_tolerance"] == 0.03 and d["ties"] >= 1


def test_plan_text_says_usable_memory_and_ties(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, *PLAN, "--top", "3")
    assert code == 0
    assert "GiB usable per chip (80 GiB, 5% headroom)" in " ".join(out.split())
    code, out, _ = run_cli(capsys, *PLAN, "--top", "3", "--tie-tolerance", "0.5", "--json")
    ties = json.loads(out)["ties"]
    assert ties > 1
    code, out, _ = run_cli(capsys, *PLAN, "--top", "3", "--tie-tolerance", "0.5")
    assert f"{ties} layouts within 50% of the best; picked the simplest" in " ".join(out.split())


def test_plan_bounds(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys, *PLAN, "--max-vp", "1", "--max-cp", "1", "--tp", "2", "--top", "50", "--json"
    )
    assert code == 0
    rows = json.loads(out)["top"]
    assert rows and all(r["layout"]["vp"] == 1 and r["layout"]["cp"] == 1 for r in rows)
    assert all(r["layout"]["tp"] == 2 for r in rows)
    code, out, _ = run_cli(capsys, *PLAN, "--pp", "2", "--vp", "2", "--top", "50", "--json")
    assert code == 0
    assert {(r["layout"]["pp"], r["layout"]["vp"]) for r in json.loads(out)["top"]} == {(2, 2)}


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (("--mem-headroom", "1"), "mem_headroom"),
        (("--mem-headroom", "-0.1"), "mem_headroom"),
        (("--tie-tolerance", "1.5"), "tie_tolerance"),
        (("--tie-tolerance", "-1"), "tie_tolerance"),
        (("--max-vp", "0"), "max_vp"),
        (("--max-cp", "-2"), "max_cp"),
        (("--tp", "3"), "tp"),
        (("--vp", "5"), "vp"),
        (("--ep", "2"), "ep"),
    ],
)
def test_plan_bad_values_exit_2(capsys: pytest.CaptureFixture[str], flags, words) -> None:
    code, out, err = run_cli(capsys, *PLAN, *flags)
    assert code == 2
    assert words in out + err


def test_estimate_headroom_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, *ESTIMATE, "--json")
    assert code == 0
    d = json.loads(out)
    assert d["mem_headroom"] == 0.05
    assert d["usable_memory_gib"] == pytest.approx(d["hbm_capacity_gib"] * 0.95)
    assert d["fits"] is (d["memory_per_chip_gib"] <= d["usable_memory_gib"])
    # A headroom that leaves less than the layout needs: it no longer fits, and the note says why.
    squeeze = 1.0 - 0.9 * d["memory_per_chip_gib"] / d["hbm_capacity_gib"]
    code, out, _ = run_cli(capsys, *ESTIMATE, "--mem-headroom", f"{squeeze:.6f}", "--json")
    assert code == 0
    tight = json.loads(out)
    assert tight["fits"] is False
    assert any("GiB usable" in n for n in tight["notes"])
    code, out, _ = run_cli(capsys, *ESTIMATE)
    assert code == 0 and "GiB usable (80 GiB, 5% headroom)" in " ".join(out.split())
    code, out, err = run_cli(capsys, *ESTIMATE, "--mem-headroom", "1.2")
    assert code == 2 and "mem_headroom" in out + err


def test_serving_takes_the_headroom_too(capsys: pytest.CaptureFixture[str]) -> None:
    """`--infer`: the largest batch that fits shrinks as the headroom grows."""
    infer = ("estimate", "--infer", "--model", "llama3.1-8b", "--chip", "h100", "--batch", "8", "--json")
    code, out, _ = run_cli(capsys, *infer, "--mem-headroom", "0")
    assert code == 0
    plain = json.loads(out)
    code, out, _ = run_cli(capsys, *infer, "--mem-headroom", "0.3")
    assert code == 0
    kept = json.loads(out)
    assert kept["mem_headroom"] == 0.3
    assert kept["usable_memory_gib"] == pytest.approx(kept["hbm_capacity_gib"] * 0.7)
    assert 0 < kept["max_batch"] < plain["max_batch"]
    code, out, err = run_cli(capsys, "plan", "--infer", "--model", "llama3.1-8b", "--chip", "h100",
                             "--chips", "1", "--mem-headroom", "2")  # fmt: skip
    assert code == 2 and "mem_headroom" in out + err
