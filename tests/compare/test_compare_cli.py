"""`twofold compare` on the command line: one JSON document, and a table that says "unknown"."""

from __future__ import annotations

import json
import math

import pytest

from twofold.cli import main
from twofold.cli.compare import parse_tokens
from twofold.errors import InputError

ARGS = ["compare", "llama3.1-8b", "--on", "trn2,h100", "--chips", "16", "--global-batch", "256"]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def test_compare_json_rows(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run([*ARGS, "--tokens", "1T", "--grid-gco2-per-kwh", "400", "--json"], capsys)
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
    code, out, _ = _run(ARGS, capsys)
    assert code == 0
    trn2_line = next(line for line in out.splitlines() if line.strip("│┃ ").startswith("trn2 "))
    assert trn2_line.count("unknown") == 4  # $/M tokens, MWh, tokens/J, tokens/$
    assert "price unknown" in out and "power unknown" in out


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
