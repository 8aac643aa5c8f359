"""`twofold compare` on the command line: one JSON document, and a table that says "unknown"."""

from __future__ import annotations

import json
import math

import pytest

from twofold.cli import main
from twofold.cli._options import parse_tokens
from twofold.errors import InputError

ARGS = ["compare", "llama3.1-8b", "--on", "trn2,h100", "--chips", "16", "--global-batch", "256"]
# trn2's only on-demand price is grade C (prices_power.yaml); --min-quality B makes it unknown.
UNPRICED_TRN2 = ["--min-quality", "B"]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def test_compare_json_rows(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        [*ARGS, *UNPRICED_TRN2, "--tokens", "1T", "--grid-gco2-per-kwh", "400", "--json"], capsys
    )
    assert code == 0
    d = json.loads(out)
    assert d["tokens"] == 1e12 and d["reference"] == "trn2"
    rows = {r["chip"]: r for r in d["rows"]}
    assert set(rows) == {"trn2", "h100"}
    h100 = rows["h100"]
    for key in (
        "layout",
        "step_time_s",
        "tokens_per_s_per_chip",
        "mfu",
        "memory_per_chip_gib",
        "time_to_train_s",
        "usd_per_million_tokens",
        "energy_kwh",
        "perf_per_watt_tokens_per_j",
        "perf_per_dollar_tokens_per_usd",
        "ratio_to_reference",
        "factors",
    ):
        assert key in h100
    # CO2 = kWh x 400 g/kWh (hand formula) and time = tokens / (tokens/s per chip x chips).
    assert h100["co2_kg"] == pytest.approx(h100["energy_kwh"] * 0.4)
    assert h100["time_to_train_s"] == pytest.approx(1e12 / (h100["tokens_per_s_per_chip"] * 16))
    f = h100["factors"]["throughput_per_chip"]
    assert math.prod(f.values()) == pytest.approx(h100["ratio_to_reference"]["throughput_per_chip"], rel=1e-9)
    assert rows["trn2"]["usd_per_million_tokens"] is None and rows["trn2"]["energy_kwh"] is None


def test_compare_table_prints_unknown_not_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run([*ARGS, *UNPRICED_TRN2], capsys)
    assert code == 0
    trn2_line = next(line for line in out.splitlines() if line.strip("│┃ ").startswith("trn2 "))
    assert trn2_line.count("unknown") == 4  # $/M tokens, MWh, tokens/J, tokens/$
    assert "price unknown" in out and "power unknown" in out
    assert "grade C, weaker than --min-quality B" in out


def test_compare_shows_every_book_price_with_its_grade(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 16: trn2, h100, tpu-v5p each get a cited on-demand price with its grade (prices_power.yaml:
    trn2 $2.235 C, p5 $6.88 A from the SkyPilot AWS catalog, v5p $4.20 A from the SkyPilot GCP one)."""
    argv = ["compare", "llama3.1-8b", "--on", "trn2,h100,tpu-v5p", "--chips", "16", "--global-batch", "256"]
    code, out, _ = _run(argv, capsys)
    assert code == 0
    assert "price trn2: on-demand $2.235/chip-h grade C" in out
    assert "price h100: on-demand $6.88/chip-h grade A" in out
    assert "price tpu-v5p: on-demand $4.2/chip-h grade A" in out
    code, out, _ = _run([*argv, "--json"], capsys)
    prices = {r["chip"]: r["price"] for r in json.loads(out)["rows"]}
    assert {c: (p["usd_per_chip_hour"], p["quality"]) for c, p in prices.items()} == {
        "trn2": (2.235, "C"),
        "h100": (6.88, "A"),
        "tpu-v5p": (4.2, "A"),
    }
    assert all(p["sources"] and p["provider"] for p in prices.values())


def test_compare_user_price_fills_the_cell(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run([*ARGS, "--price", "trn2=2.5", "--power", "trn2=500", "--json"], capsys)
    trn2 = next(r for r in json.loads(out)["rows"] if r["chip"] == "trn2")
    assert trn2["price"]["source"] == "user" and trn2["usd_per_million_tokens"] is not None
    assert trn2["power"]["tdp_w"] == 500.0 and trn2["energy_kwh"] is not None


@pytest.mark.parametrize(
    "extra", [["--same-cost", "--same-power"], ["--price", "trn2"], ["--tokens", "lots"], ["--on", ","]]
)
def test_compare_bad_flags_exit_2(extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run([*ARGS, *extra], capsys)
    assert code == 2 and err.startswith("error: ")


def test_parse_tokens() -> None:
    assert parse_tokens("2T") == 2e12 and parse_tokens("1.5e9") == 1.5e9 and parse_tokens("300B") == 3e11
    with pytest.raises(InputError):
        parse_tokens("0")


def test_compare_capacity_block_prices(capsys: pytest.CaptureFixture[str]) -> None:
    # Capacity Blocks for ML (AWS pricing mirror, 2024-12): p5.48xlarge $39.33/h / 8 H100,
    # trn1.32xlarge $15.49/h / 16 in ap-southeast-4; none published for Trainium2.
    argv = ["compare", "llama3.1-8b", "--on", "h100,trn1,trn2", "--chips", "16", "--global-batch", "256"]
    code, out, _ = _run([*argv, "--price-kind", "capacity-block", "--json"], capsys)
    assert code == 0
    d = json.loads(out)
    assert d["price_kind"] == "capacity-block"
    rows = {r["chip"]: r for r in d["rows"]}
    h100, trn1, trn2 = rows["h100"]["price"], rows["trn1"]["price"], rows["trn2"]["price"]
    assert h100["kind"] == "capacity-block" and h100["usd_per_chip_hour"] == pytest.approx(39.33 / 8)
    assert (h100["region"], h100["as_of"], h100["valid_until"]) == ("us-east-1", "2024-12", "2025-01-01")
    assert trn1["usd_per_chip_hour"] == pytest.approx(15.49 / 16) and trn1["region"] == "ap-southeast-4"
    # $ per million tokens = price per chip-second / tokens per chip-second x 1e6 (hand formula).
    thr = rows["h100"]["tokens_per_s_per_chip"]
    assert rows["h100"]["usd_per_million_tokens"] == pytest.approx(39.33 / 8 / 3600 / thr * 1e6)
    # Trn2 has a spot price but no capacity block: unknown, not the spot price, and said so.
    assert trn2["usd_per_chip_hour"] is None and trn2["kind"] == "capacity-block"
    assert rows["trn2"]["usd_per_million_tokens"] is None
    assert rows["trn2"]["ratio_to_reference"]["perf_per_dollar"] is None
    assert any("no other kind" in n for n in rows["trn2"]["notes"])
    f = rows["trn1"]["factors"]["perf_per_dollar"]
    assert f["price"] == pytest.approx((39.33 / 8) / (15.49 / 16))
    assert math.prod(f.values()) == pytest.approx(
        rows["trn1"]["ratio_to_reference"]["perf_per_dollar"], rel=1e-9
    )
    code, out, _ = _run([*argv, "--price-kind", "capacity-block"], capsys)
    line = "price h100: capacity-block $4.91625/chip-h grade B (aws, p5.48xlarge, us-east-1, as of 2024-12"
    assert line in out
    assert "price trn2: capacity-block unknown" in out


def test_compare_spot_and_same_cost_use_the_chosen_kind(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["compare", "llama3.1-8b", "--on", "trn1,h100", "--chips", "16", "--global-batch", "256"]
    code, out, _ = _run([*argv, "--same-cost", "--price-kind", "capacity-block", "--json"], capsys)
    assert code == 0
    h100 = next(r for r in json.loads(out)["rows"] if r["chip"] == "h100")
    # Budget: the reference trn1's capacity-block $/h over the H100's ($15.49/16 vs $39.33/8).
    f = h100["factors"]["system_throughput"]
    assert f["budget"] == pytest.approx((15.49 / 16) / (39.33 / 8))
    assert math.prod(f.values()) == pytest.approx(h100["ratio_to_reference"]["system_throughput"], rel=1e-9)
    # Spot: only trn2 has one; trn1 as reference has none, so --same-cost has no budget (exit 2).
    code, _, err = _run([*argv, "--same-cost", "--price-kind", "spot"], capsys)
    assert code == 2 and "spot price unknown" in err
    # --price still wins under any kind.
    code, out, _ = _run([*argv, "--price-kind", "spot", "--price", "trn1=1", "--json"], capsys)
    trn1 = next(r for r in json.loads(out)["rows"] if r["chip"] == "trn1")
    assert trn1["price"]["source"] == "user" and trn1["price_usd_per_chip_hour"] == 1.0


def test_compare_bad_price_kind_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run([*ARGS, "--price-kind", "reserved"], capsys)
    assert code == 2 and "price_kind" in err


def _table_cells(out: str, chip: str) -> list[str]:
    """The cells of a chip's first line in the compare table (rich box characters as separators)."""
    line = next(row for row in out.splitlines() if row.startswith("│") and row.split("│")[1].strip() == chip)
    return [cell.strip() for cell in line.split("│")[1:-1]]


def test_same_cost_ratio_column_is_the_system_ratio_labelled(capsys: pytest.CaptureFixture[str]) -> None:
    """Reference: the system ratio derived by hand from the JSON rows, (tok/s/chip x chips) of trn2
    over h100's, which is the factor table's total; the column used to print the per-chip ratio."""
    args = [
        "compare",
        "llama3.1-8b",
        "--on",
        "h100,trn2",
        "--chips",
        "8",
        "--same-cost",
        "--price",
        "trn2=3.0",
    ]
    code, out, _ = _run([*args, "--json"], capsys)
    assert code == 0
    rows = {r["chip"]: r for r in json.loads(out)["rows"]}
    system = {c: r["tokens_per_s_per_chip"] * r["chips"] for c, r in rows.items()}
    by_hand = system["trn2"] / system["h100"]
    per_chip = rows["trn2"]["tokens_per_s_per_chip"] / rows["h100"]["tokens_per_s_per_chip"]
    assert rows["trn2"]["chips"] > rows["h100"]["chips"]  # $3/chip-h buys more trn2 than H100s
    assert f"{by_hand:.2f}" != f"{per_chip:.2f}"  # the two readings differ: the test can tell them apart

    code, out, _ = _run(args, capsys)
    assert code == 0
    header = " ".join(out.split("system throughput vs")[0].split())
    assert "x h100 system" in header
    assert _table_cells(out, "trn2")[-1] == f"{by_hand:.2f}"


def test_same_cost_without_a_price_says_it_cannot_size(capsys: pytest.CaptureFixture[str]) -> None:
    # No TPU7x (Ironwood) price of any kind in the price book (prices_power.yaml: a gap).
    args = ["compare", "llama3.1-8b", "--on", "h100,tpu-v7", "--chips", "8", "--same-cost"]
    code, out, _ = _run(args, capsys)
    assert code == 0
    assert _table_cells(out, "tpu-v7")[-1] == "cannot size"
    assert "cannot size at same-cost: price of tpu-v7 is unknown" in out


def test_chip_at_system_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 16: a Trn2 UltraServer next to a GB200 NVL72 and a p5; a chip alone keeps its standard
    system (catalog: trn2 -> trn2.48xlarge, gb200 -> gb200-nvl72)."""
    argv = ["compare", "llama3.1-8b", "--on", "trn2@trn2-ultraserver,gb200@gb200-nvl72,h100@p5,trn2"]
    code, out, _ = _run([*argv, "--chips", "64", "--global-batch", "256", "--json"], capsys)
    assert code == 0
    rows = {r["chip"]: r["system"] for r in json.loads(out)["rows"]}
    assert rows == {
        "trn2@trn2-ultraserver": "trn2-ultraserver",
        "gb200": "gb200-nvl72",  # its standard system: no suffix
        "h100@p5.48xlarge": "p5.48xlarge",  # an alias resolves to the system id
        "trn2": "trn2.48xlarge",
    }


@pytest.mark.parametrize(
    ("on", "words"),
    [
        ("trn2@p5", ["p5", "trn2", "holds h100"]),
        ("h100@nosuch", ["nosuch", "unknown system"]),
        ("@p5", ["@p5"]),
    ],
)
def test_bad_chip_system_pair_exits_2(on: str, words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["compare", "llama3.1-8b", "--on", on], capsys)
    assert code == 2 and out == ""
    assert all(w in err for w in words), err


def test_other_clouds_side_by_side_with_their_grades(capsys: pytest.CaptureFixture[str]) -> None:
    """prices_power.yaml: Lambda 8x H100 SXM $31.92/h / 8 = $3.99 (grade B, SkyPilot Lambda catalog)
    next to AWS p5 $6.88 (grade A); each row keeps its own provider and grade."""
    on = "h100,h100@lambda-8x-h100"
    argv = ["compare", "llama3.1-8b", "--on", on, "--chips", "8", "--global-batch", "256"]
    code, out, _ = _run([*argv, "--json"], capsys)
    assert code == 0
    prices = {r["chip"]: r["price"] for r in json.loads(out)["rows"]}
    lam, aws = prices["h100@lambda-8x-h100"], prices["h100"]
    assert (lam["usd_per_chip_hour"], lam["quality"], lam["provider"]) == (3.99, "B", "lambda")
    assert (aws["usd_per_chip_hour"], aws["quality"], aws["provider"]) == (6.88, "A", "aws")
    code, out, _ = _run([*argv, "--min-quality", "A", "--json"], capsys)
    prices = {r["chip"]: r["price"] for r in json.loads(out)["rows"]}
    assert prices["h100@lambda-8x-h100"]["usd_per_chip_hour"] is None  # B excluded, not replaced by A
    assert prices["h100"]["usd_per_chip_hour"] == 6.88
