"""Sweep reports with plots: self-contained, the key figures in the page, inline images when
matplotlib is there and a note (not an error) when it is not; reports from a store alone.
The figures are checked against each scenario planned directly in the test (`_sweep_reference`)."""

from __future__ import annotations

import re
import statistics
import sys
from pathlib import Path

import pytest
import yaml
from _sweep_reference import TINY_SPEC, reference_result

from twofold.cli import main
from twofold.sweep import SweepStore, parse_spec, run_sweep
from twofold.sweep.report import compare_by_scale, render_html, spec_from_rows

SPEC = parse_spec({**TINY_SPEC, "axes": {**TINY_SPEC["axes"], "chip_counts": [1, 2, 4]}})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sweep") / "s.db"
    run_sweep(SPEC, path, workers=1)
    return path


def _rows(store: Path) -> list:
    with SweepStore(store) as opened:
        return opened.results()


def _expected() -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for s in SPEC.scenarios():
        best = reference_result(s)["best"]
        assert best is not None  # llama-tiny fits everywhere: every cell has a figure
        out.setdefault(s.chips, {})[s.chip] = best["tokens_per_s_per_chip"]
    return out


def _self_contained(page: str) -> None:
    assert not re.search(r"(src|href)\s*=\s*(?!['\"]?data:)|https?://", page)  # inline images only
    assert "<script" not in page and "<link" not in page and "@import" not in page


def _key_figures(page: str) -> None:
    expected = _expected()
    for chips, figures in expected.items():
        best = max(figures, key=figures.get)
        assert f"<td class='best'>{figures[best]:,.0f}</td>" in page, (chips, best)
    median = statistics.median(expected[n]["trn2"] / expected[n]["h100"] for n in expected)
    assert f"<td>{median:,.3g}</td>" in page


def test_report_has_inline_plots_when_matplotlib_is_there(store: Path) -> None:
    pytest.importorskip("matplotlib")
    page = render_html(SPEC, _rows(store), version="test")
    _self_contained(page)
    _key_figures(page)
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 2  # the ratio distribution and one model's bars
    assert all(len(b64) > 1000 for b64 in images)


def test_report_without_matplotlib_keeps_its_tables(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import now raises ImportError
    page = render_html(SPEC, _rows(store), version="test")
    _self_contained(page)
    _key_figures(page)
    assert "data:image" not in page and "pip install 'twofold[report]'" in page


def test_specs_rebuilt_from_the_store_give_the_same_tables(store: Path) -> None:
    rows = _rows(store)
    (rebuilt,) = spec_from_rows(rows)
    assert set(rebuilt.scenarios()) == set(SPEC.scenarios())
    assert [r.to_dict() for r in compare_by_scale(rebuilt, rows)] == [
        r.to_dict() for r in compare_by_scale(SPEC, rows)
    ]


def test_cli_report_on_a_store(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(
        yaml.safe_dump({**TINY_SPEC, "axes": {**TINY_SPEC["axes"], "chip_counts": [1, 2, 4]}})
    )
    for extra in ([], ["--spec", str(spec_file)]):
        out = tmp_path / "r.html"
        with pytest.raises(SystemExit) as info:
            main(["report", "--sweep", str(store), "--out", str(out), *extra])
        assert info.value.code == 0
        page = out.read_text()
        _self_contained(page)
        _key_figures(page)
        out.unlink()
    with pytest.raises(SystemExit) as info:
        main(["report", "--sweep", str(tmp_path / "none.db"), "--out", str(tmp_path / "r.html")])
    assert info.value.code == 2 and "error: sweep=" in capsys.readouterr().err
