"""`twofold plan --deadline` end to end (real catalog, real estimator, a tiny model).

References: `search.deadline.plan_deadline` called directly on the same targets (the CLI adds
parsing and printing, never figures of its own); the hand conversion tokens = samples x seq_len;
the catalog's own prices (l4 has none, so it is listed as "no price"); and the exit-code rule of
`twofold.errors` (0 answered, 1 no answer, 2 bad input naming the field).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from twofold.compare.plans import target
from twofold.parallel.layout import TrainingWorkload
from twofold.search.deadline import DeadlineTarget, plan_deadline
from twofold.workload.finetune import Finetune

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import run_cli  # noqa: E402

BASE = ["plan", "--model", "llama-tiny", "--global-batch", "16", "--seq-len", "256", "--chips", "16"]


def _api(names: list[str], tokens: float, deadline_s: float, finetune: Finetune | None = None):
    targets = [DeadlineTarget(label=t.label, system=t.system, chip=t.chip) for t in map(target, names)]
    workload = TrainingWorkload(global_batch=16, seq_len=256, finetune=finetune)
    return plan_deadline("llama-tiny", targets, workload, tokens=tokens, deadline_s=deadline_s, max_chips=16)


def test_json_is_the_api_result_and_an_unpriced_chip_is_listed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys, *BASE, "--on", "h100,l4", "--tokens", "1e9", "--deadline", "3d", "--json"
    )
    assert code == 0, err
    d = json.loads(out)
    # h100 named alone brings its priced one-chip instances (catalog: p5.4xlarge, Lambda 1x H100)
    expanded = ["h100", "h100@p5.4xlarge", "h100@lambda-1x-h100", "l4"]
    assert [t["label"] for t in d["targets"]] == expanded
    api = _api(expanded, 1e9, 3 * 86400.0)
    assert d["mode"] == "deadline" and d["deadline_s"] == 3 * 86400.0 and d["tokens"] == 1e9
    assert d["best"]["label"] == api.best.label and d["best"]["chips"] == api.best.chips
    assert d["best"]["price"]["kind"] == api.best.price.kind
    assert d["best"]["cost_usd"] == pytest.approx(api.best.cost_usd)
    statuses = {t["label"]: t["status"] for t in d["targets"]}
    assert statuses["l4"] == "no price" and statuses["h100"] == "meets"
    assert "finetune" not in d["workload"]


def test_a_one_chip_instance_bills_one_chip_where_the_node_bills_sixteen(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Catalog: trn1.2xlarge (1 chip, $1.34375/h) and trn1.32xlarge (16 chips, $21.50/h): the
    same one-chip run costs 16x more on the 16-chip instance. A named system brings no others."""
    args = [
        *BASE,
        "--tokens",
        "1e7",
        "--deadline",
        "30d",
        "--chips",
        "1",
        "--price-kind",
        "on-demand",
        "--json",
    ]
    code, out, err = run_cli(capsys, *args, "--on", "trn1")
    assert code == 0, err
    by_label = {t["label"]: t["best"] for t in json.loads(out)["targets"]}
    small, node = by_label["trn1@trn1.2xlarge"], by_label["trn1"]
    assert (small["chips"], small["billed_chips"], node["chips"], node["billed_chips"]) == (1, 1, 1, 16)
    assert small["price"]["usd_per_chip_hour"] == 1.34375 and small["price"]["quality"] == "A"
    assert node["cost_usd"] / small["cost_usd"] == pytest.approx(16 * 21.5 / 16 / 1.34375, rel=1e-3)
    code, out, err = run_cli(capsys, *args, "--on", "trn1@trn1.32xlarge")
    assert code == 0, err
    assert [t["label"] for t in json.loads(out)["targets"]] == ["trn1"]  # its standard system, alone


def test_samples_are_sequences_of_seq_len_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, *BASE, "--on", "h100", "--samples", "4000", "--deadline", "3d", "--json")
    assert code == 0, err
    assert json.loads(out)["tokens"] == 4000 * 256


def test_finetune_combines_with_the_deadline(capsys: pytest.CaptureFixture[str]) -> None:
    # h100 in its standard system only (named, so its one-chip instances are not added)
    args = [*BASE, "--on", "h100@hgx-h100", "--tokens", "1e9", "--deadline", "3d", "--json"]
    code, out, err = run_cli(capsys, *args, "--finetune", "lora", "--lora-rank", "8")
    assert code == 0, err
    d = json.loads(out)
    assert d["workload"]["finetune"]["method"] == "lora" and d["workload"]["finetune"]["rank"] == 8
    api = _api(["h100"], 1e9, 3 * 86400.0, Finetune(method="lora", rank=8))
    full = _api(["h100"], 1e9, 3 * 86400.0)
    assert d["best"]["tokens_per_s_per_chip"] == pytest.approx(api.best.tokens_per_s_per_chip)
    assert api.best.tokens_per_s_per_chip != pytest.approx(full.best.tokens_per_s_per_chip)


def test_a_missed_deadline_exits_1_with_the_fastest_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, *BASE, "--on", "h100", "--tokens", "1e13", "--deadline", "1h")
    fastest = _api(["h100"], 1e13, 3600.0).fastest
    assert code == 1
    assert f"no option meets the deadline of 1 h; the fastest is h100 x {fastest.chips} " in " ".join(
        out.split()
    )
    assert err.startswith("no answer: no option meets the deadline")


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (["--on", "h100", "--tokens", "1e9", "--deadline", "48"], "deadline"),
        (["--on", "h100", "--tokens", "1e9", "--deadline", "soon"], "deadline"),
        (["--on", "h100", "--deadline", "48h"], "tokens"),
        (["--on", "h100", "--tokens", "1e9", "--samples", "5", "--deadline", "48h"], "samples"),
        (["--on", "h100", "--tokens", "1e9"], "on"),
        (["--on", "h100", "--tokens", "1e9", "--deadline", "48h", "--objective", "time"], "objective"),
        (["--on", "h100", "--chip", "a100", "--tokens", "1e9", "--deadline", "48h"], "on"),
        (["--on", "h100", "--tokens", "1e9", "--deadline", "48h", "--price-kind", "reserved"], "price_kind"),
        (["--on", "h100", "--tokens", "1e9", "--deadline", "48h", "--power", "h100=700"], "power"),
        ([], "chip"),
    ],
)
def test_bad_input_exits_2_naming_the_field(
    extra: list[str], field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, *BASE, *extra)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {field}="), err
