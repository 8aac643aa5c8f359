"""`twofold chips` and `twofold systems`: JSON documents with the catalog's keys, readable tables, and a
one-line error (exit 2, no traceback) for an unknown id."""

from __future__ import annotations

import json

import pytest

from twofold.cli import main
from twofold.hardware import list_chips, list_systems

REQUIRED_CHIP_KEYS = {
    "id",
    "aliases",
    "vendor",
    "name",
    "family",
    "architecture",
    "bf16_dense_tflops",
    "fp8_dense_tflops",
    "hbm_capacity_gib",
    "hbm_bandwidth_tb_s",
    "tdp_w",
    "default_system",
    "sources",
    "figures",
}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_chips_json_lists_every_chip_with_sources(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["chips", "--json"], capsys)
    assert code == 0 and err == ""
    records = json.loads(out)
    assert [r["id"] for r in records] == [c.id for c in list_chips()]
    for record in records:
        assert REQUIRED_CHIP_KEYS <= set(record), record["id"]
        assert record["sources"] and all({"key", "title", "url", "date"} <= set(s) for s in record["sources"])
    h100 = next(r for r in records if r["id"] == "h100")
    assert h100["bf16_dense_tflops"] == 989 and "h100-sxm" in h100["aliases"]
    assert h100["figures"]["clock_ghz"]["alternatives"][0]["value"] == 1.98


def test_chips_json_for_one_chip_by_alias_includes_its_systems(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["chips", "Trainium2", "--json"], capsys)
    assert code == 0
    (record,) = json.loads(out)
    assert record["id"] == "trn2"
    assert [s["id"] for s in record["systems"]][:1] == ["trn2.48xlarge"]
    assert {"trn2.48xlarge", "trn2-ultraserver"} <= {s["id"] for s in record["systems"]}
    assert record["figures"]["hbm_bandwidth_tb_s"]["alternatives"][0]["value"] == 3.0


def test_chips_table_and_detail_render(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["chips"], capsys)
    assert code == 0 and "trn2" in out and "tpu-v5p" in out
    code, out, _ = run(["chips", "h100"], capsys)
    assert code == 0 and "mleng-accel" in out and "sources" in out


@pytest.mark.parametrize("argv", [["chips", "h10"], ["chips", "h10", "--json"], ["systems", "hgx-h10"]])
def test_unknown_id_exits_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(argv, capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "did you mean" in err and "h100" in err


def test_systems_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["systems", "--json"], capsys)
    assert code == 0 and [r["id"] for r in json.loads(out)] == [s.id for s in list_systems()]
    code, out, _ = run(["systems", "trn2u", "--json"], capsys)
    (record,) = json.loads(out)
    assert record["id"] == "trn2-ultraserver" and record["chip_id"] == "trn2"
    assert [lv["torus_dims"] for lv in record["levels"]] == [[4, 4], [4], []]
    assert record["levels"][-1]["domain_chips"] is None


def test_systems_table_and_detail_render(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["systems"], capsys)
    assert code == 0 and "hgx-h100" in out
    code, out, _ = run(["systems", "tpu-v5p-pod"], capsys)
    assert code == 0 and "ici" in out and "16x16x24" in out


def test_systems_show_every_published_price_kind(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    # Each kind's column / line carries the catalog's own quote (read through the Python API, the
    # reference), and an unpublished kind prints its reason, not another kind's price.
    monkeypatch.setenv("COLUMNS", "250")
    system = next(s for s in list_systems() if s.id == "trn1.32xlarge")
    block = system.price("capacity-block").usd_per_chip_hour
    assert block is not None and system.price("spot").usd_per_chip_hour is None
    code, out, _ = run(["systems"], capsys)
    row = next(line for line in out.splitlines() if "trn1.32xlarge" in line)
    assert code == 0 and f"{block:.3f}".rstrip("0") in row
    code, out, _ = run(["systems", "trn1.32xlarge"], capsys)
    assert code == 0 and "price, capacity-block:" in out and system.price("spot").note[:30] in out
