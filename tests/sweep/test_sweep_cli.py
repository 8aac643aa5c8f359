"""`twofold sweep` end to end: JSON on stdout only, bad specs exit 2 before any work, HTML report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from _sweep_reference import TINY_SPEC, reference_result

from twofold.cli import main
from twofold.sweep import parse_spec


def _run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _write(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def test_json_output_holds_every_result_and_the_best_chip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_file = _write(tmp_path / "tiny.yaml", TINY_SPEC)
    db = tmp_path / "s.db"
    assert _run(["sweep", str(spec_file), "--workers", "2", "--out", str(db), "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)  # stdout is one JSON document: the progress bar went to stderr
    assert (doc["total"], doc["planned"], doc["complete"]) == (8, 8, True)

    references = {s: reference_result(s) for s in parse_spec(TINY_SPEC).scenarios()}
    for row in doc["results"]:
        scenario = next(s for s in references if s.to_dict() == row["scenario"])
        assert row["best"] == references[scenario]["best"]
    # Best chip per scale, from the reference plans' throughput per chip.
    for scale in doc["best_by_scale"]:
        figures = {
            s.chip: r["best"]["tokens_per_s_per_chip"]
            for s, r in references.items()
            if s.chips == scale["chips"] and r["best"] is not None
        }
        assert scale["best"] == (max(figures, key=figures.get) if figures else None)

    assert _run(["sweep", str(spec_file), "--out", str(db), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["skipped"], again["planned"]) == (8, 0)
    assert again["results"] == doc["results"]


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        ({"chip_count": [8]}, "axes.chip_count=[8]: unknown axis"),
        ({"chips": ["h100", "trn2", "h1000"]}, "axes.chips[2]='h1000': unknown chip; did you mean:"),
        ({"chip_counts": []}, "axes.chip_counts=[]: is empty"),
    ],
)
def test_malformed_spec_exits_2_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], axes: dict, message: str
) -> None:
    spec_file = _write(tmp_path / "bad.yaml", {**TINY_SPEC, "axes": {**TINY_SPEC["axes"], **axes}})
    db = tmp_path / "s.db"
    assert _run(["sweep", str(spec_file), "--out", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}")
    assert not db.exists()  # nothing started: not even the store was created


def test_bad_options_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec_file = _write(tmp_path / "tiny.yaml", TINY_SPEC)
    assert _run(["sweep", str(spec_file), "--workers", "0", "--out", str(tmp_path / "s.db")]) == 2
    assert "workers=0" in capsys.readouterr().err
    assert _run(["sweep", str(spec_file), "--report", str(tmp_path), "--out", str(tmp_path / "s.db")]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_unreachable_ray_address_exits_2_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Ray itself retries an unreachable cluster for minutes; twofold checks the port first (the error
    # is that check's, not Ray's). A port nothing listens on: bound and closed here, so refused.
    pytest.importorskip("ray")
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec_file = _write(tmp_path / "tiny.yaml", TINY_SPEC)
    assert _run(["sweep", str(spec_file), "--ray", f"127.0.0.1:{port}", "--out", str(tmp_path / "s.db")]) == 2
    assert f"nothing answers at 127.0.0.1:{port}" in capsys.readouterr().err
    assert not (tmp_path / "s.db").exists()


def test_html_report_is_self_contained_and_marks_the_best_chip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = {**TINY_SPEC, "axes": {**TINY_SPEC["axes"], "chip_counts": [4]}}
    spec_file = _write(tmp_path / "small.yaml", small)
    report = tmp_path / "out" / "sweep.html"
    report.parent.mkdir()  # output directories are never created (twofold.outputs)
    assert (
        _run(
            [
                "sweep",
                str(spec_file),
                "--workers",
                "1",
                "--out",
                str(tmp_path / "s.db"),
                "--report",
                str(report),
            ]
        )
        == 0
    )
    text = report.read_text()
    # No external assets or scripts: the only sources are inline images (data: URIs).
    assert not re.search(r"(src|href)\s*=\s*(?!['\"]?data:)|<script|https?://", text)
    figures = {
        s.chip: reference_result(s)["best"]["tokens_per_s_per_chip"] for s in parse_spec(small).scenarios()
    }
    best = max(figures, key=figures.get)
    cells = re.findall(r"<td( class='best')?>([\d,.]+)</td>", text)
    highlighted = [value for cls, value in cells if cls]
    assert highlighted == [f"{figures[best]:,.0f}"]
    assert f"<td class='l'>{best}</td></tr>" in text


def test_after_ctrl_c_scenarios_that_never_ran_say_not_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reference: the store itself. A scale whose scenarios the store does not hold was never
    planned, so its verdict is "not run", never "none fits" (every llama-tiny scenario fits)."""
    import twofold.cli.sweep as cli_sweep
    from twofold.sweep import SweepStore

    def interrupt_after_three(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli_sweep, "_run_with_progress", lambda run: run(interrupt_after_three))
    spec_file = _write(tmp_path / "tiny.yaml", TINY_SPEC)
    db = tmp_path / "s.db"
    assert _run(["sweep", str(spec_file), "--workers", "1", "--out", str(db)]) == 130
    out = capsys.readouterr().out
    with SweepStore(db) as store:
        stored = {(r.scenario.chip, r.scenario.chips) for r in store.results()}
    assert len(stored) == 3
    counts = TINY_SPEC["axes"]["chip_counts"]
    unrun_scales = [n for n in counts if not any((c, n) in stored for c in ("h100", "trn2"))]
    assert unrun_scales  # the interruption left whole scales unplanned
    assert "none fits" not in out
    rows = [" ".join(line.split()) for line in out.splitlines() if line.strip().startswith("llama-tiny")]
    lines = {int(row.split()[1]): row for row in rows}
    for n in counts:
        ran = {c for c in ("h100", "trn2") if (c, n) in stored}
        if not ran:
            assert lines[n].endswith("not run not run not run"), lines[n]
        elif len(ran) == 1:
            assert "not run" in lines[n] and lines[n].endswith("(of those run)"), lines[n]
        else:
            assert "not run" not in lines[n], lines[n]
    assert "not run: the scenario never ran" in out
