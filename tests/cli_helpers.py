"""Running the `twofold` entry point in-process, shared by the CLI tests of several folders.

Import it as the tests import helpers from another folder: put `tests/` on `sys.path` first
(`sys.path.insert(0, str(Path(__file__).resolve().parents[1]))`)."""

from __future__ import annotations

import pytest

from twofold.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `twofold *args` (typer may end a success with SystemExit(0))."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err
