"""HTML report: self-contained (nothing fetched), key figures present, atomic write, and a headless
Chromium screenshot that is not blank (skipped where /usr/bin/chromium is absent)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html import escape
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from twofold.cli import main  # noqa: E402
from twofold.compare import target  # noqa: E402
from twofold.compare.claim import ClaimWorkload, evaluate_claim  # noqa: E402
from twofold.errors import InputError  # noqa: E402
from twofold.parallel.layout import TrainingWorkload  # noqa: E402
from twofold.report import compare_report, render_html, write_atomic, write_report  # noqa: E402
from twofold.report.html import fmt  # noqa: E402
from twofold.workload.registry import get_model  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
WORKLOAD = TrainingWorkload(global_batch=256, seq_len=4096, precision="bf16")
ONE = (
    ClaimWorkload(label="8b x8", model="llama3.1-8b", kind="dense", seq_len=4096, global_batch=256, chips=8),
)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, object]:
    claim = evaluate_claim("trn2 is 4x trn1", workloads=ONE)
    data = compare_report(
        get_model("llama3.1-8b"),
        # trn2's only on-demand price is grade C: min_quality B keeps it unknown in the page.
        [target("trn2", min_quality="B"), target("h100", min_quality="B")],
        chips=8,
        workload=WORKLOAD,
        claim=claim,
        reference="h100",
    )
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_report(str(path), data)
    return path, path.read_text(encoding="utf-8"), data


def test_self_contained(page: tuple[Path, str, object]) -> None:
    _, html, _ = page
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?https?:|@font-face", html, re.I)
    # Four figures inline: breakdown, scaling, cost Pareto, claim distribution.
    assert html.count('src="data:image/png;base64,') == 4


def test_key_figures_and_unknowns_in_page(page: tuple[Path, str, object]) -> None:
    _, html, data = page
    h100 = data.compare.row("h100")
    assert f"{h100.metrics['tokens_per_s_per_chip']:,.0f}" in html
    assert f"{h100.metrics['usd_per_million_tokens']:.3f}" in html
    ratio = data.compare.row("trn2").ratio_to_reference["throughput_per_chip"]
    assert f"{ratio:.3f}" in html
    assert "trn2 is 4x trn1" in html and escape(data.claim.verdict) in html
    assert html.count(fmt(None)) >= 4  # trn2: $/M tokens, $ total, kWh, tokens/J, tokens/$ ...
    assert "Price unknown, not placed: trn2" in html


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    write_atomic(out, "old")
    with pytest.raises(TypeError):
        write_atomic(out, 12345)  # type: ignore[arg-type]  # fails mid-write
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]
    with pytest.raises(InputError, match="does not exist"):
        write_atomic(tmp_path / "missing" / "r.html", "x")


def test_missing_matplotlib_says_what_to_install(monkeypatch: pytest.MonkeyPatch, page: tuple) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import now raises ImportError
    with pytest.raises(InputError, match=r"twofold\[report\]"):
        render_html(page[2])


def test_cli_report_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.html"
    with pytest.raises(SystemExit) as info:
        main(
            [
                "report",
                "--model",
                "llama3.1-8b",
                "--on",
                "h100,a100",
                "--chips",
                "8",
                "--global-batch",
                "256",
                "--out",
                str(out),
                "--json",
            ]
        )
    assert info.value.code in (0, None)
    assert json.loads(capsys.readouterr().out)["out"] == str(out)
    assert out.read_text().count("data:image/png;base64,") == 3  # no claim section
    # The price kind reaches the page: capacity-block quotes, and a bad kind fails before planning.
    block = tmp_path / "block.html"
    args = ["report", "--model", "llama3.1-8b", "--on", "h100,a100", "--chips", "8", "--global-batch", "256"]
    with pytest.raises(SystemExit) as info:
        main([*args, "--price-kind", "capacity-block", "--out", str(block)])
    assert info.value.code in (0, None) and "capacity-block" in block.read_text()
    with pytest.raises(SystemExit) as info:
        main([*args, "--price-kind", "reserved", "--out", str(tmp_path / "never.html")])
    assert info.value.code == 2 and not (tmp_path / "never.html").exists()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_headless_chromium_screenshot_is_not_blank(page: tuple[Path, str, object], tmp_path: Path) -> None:
    import matplotlib.image as mpimg
    import numpy as np

    path = page[0]
    png = tmp_path / "shot.png"
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={png}",
        "--window-size=1200,2000",
        path.resolve().as_uri(),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    image = mpimg.imread(png)
    assert image.shape[0] >= 1000 and image.shape[1] >= 1000
    pixels = image.reshape(-1, image.shape[-1])
    assert len(np.unique(pixels[:: max(1, len(pixels) // 200_000)], axis=0)) > 10  # text and plots, not blank
    assert shutil.which(str(CHROMIUM))
