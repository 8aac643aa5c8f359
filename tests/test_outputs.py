"""One rule for output paths (`twofold.outputs`): refuse, never create, never half-write.

Reference: the rule itself, checked on the file system after each call (a property: a refused
path leaves the directory exactly as it was). Before, `report --out DIR` and an `--out` under
/proc or /sys raised IsADirectoryError / FileNotFoundError tracebacks, `validate --plot p.txt`
raised matplotlib's ValueError, and `sweep --out /missing/s.db` created the folder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "sweep"))
from _sweep_reference import TINY_SPEC  # noqa: E402

from cli_helpers import run_cli  # noqa: E402
from twofold.errors import InputError  # noqa: E402
from twofold.outputs import check_output_path  # noqa: E402
from twofold.report.html import write_atomic  # noqa: E402
from twofold.sweep import SweepStore  # noqa: E402

# A directory no process can create a file in, even as root (a pseudo file system).
_SPECIAL = next((d for d in ("/proc", "/sys") if os.path.isdir(d)), None)


def _one_error_line(err: str, field: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}="), err
    assert "Traceback" not in err


def test_the_rule(tmp_path: Path) -> None:
    assert check_output_path(tmp_path / "r.html") == tmp_path / "r.html"
    with pytest.raises(InputError, match="is a directory"):
        check_output_path(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "r.html")
    with pytest.raises(InputError, match=r"plot='p.txt': must end in one of \.png"):
        check_output_path("p.txt", field="plot", suffixes=(".png", ".pdf"))
    assert sorted(tmp_path.iterdir()) == []  # the write probe leaves nothing behind


@pytest.mark.skipif(_SPECIAL is None, reason="no /proc or /sys on this system")
def test_a_special_file_system_is_refused_up_front() -> None:
    with pytest.raises(InputError, match="cannot write in"):
        check_output_path(f"{_SPECIAL}/twofold-report.html")
    with pytest.raises(InputError, match="cannot write in"):
        write_atomic(f"{_SPECIAL}/twofold-report.html", "x")


def test_report_out_an_existing_directory_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("report", "--model", "llama3.1-8b", "--on", "h100", "--out", str(tmp_path))
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and out == ""
    _one_error_line(err, "out")
    assert "is a directory" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(_SPECIAL is None, reason="no /proc or /sys on this system")
def test_report_out_on_a_special_file_system_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    path = f"{_SPECIAL}/r.html"
    code, _, err = run_cli(capsys, "report", "--model", "llama3.1-8b", "--on", "h100", "--out", path)
    assert code == 2
    _one_error_line(err, "out")


def test_validate_plot_with_an_unsupported_suffix_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("validate", "--source", "MaxText TPU v4", "--plot", str(tmp_path / "p.txt"))
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and out == ""
    _one_error_line(err, "plot")
    assert ".png" in err
    assert list(tmp_path.iterdir()) == []


def test_sweep_out_in_a_missing_directory_is_refused_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(TINY_SPEC))
    code, out, err = run_cli(capsys, "sweep", str(spec), "--out", str(tmp_path / "missing" / "s.db"))
    assert code == 2 and out == ""
    _one_error_line(err, "out")
    assert "does not exist" in err
    assert not (tmp_path / "missing").exists()
    with pytest.raises(InputError, match="does not exist"):
        SweepStore(tmp_path / "missing" / "s.db")


def test_sweep_and_report_share_the_rule(tmp_path: Path) -> None:
    """The same missing directory is refused by both writers with the same rule."""
    missing = tmp_path / "missing"
    messages = []
    for write in (lambda: SweepStore(missing / "s.db"), lambda: write_atomic(missing / "r.html", "x")):
        with pytest.raises(InputError) as info:
            write()
        messages.append(info.value.rule)
    assert messages[0] == messages[1]
    assert not missing.exists()
