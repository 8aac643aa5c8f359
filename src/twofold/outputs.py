"""One rule for every file twofold writes: `--out` of report and sweep, `--report`, `--plot`.

The rule: a file is written only into a directory that already exists. twofold never creates a
missing directory for a path the user gave, so a mistyped path fails at once instead of growing a
tree somewhere unexpected (the one exception is twofold's own default store folder,
`~/.twofold`, which `sweep.store` creates). Checked up front, before any planning:

- the path is not an existing directory;
- its directory exists and a file can be created in it (probed with a temporary file, which also
  catches read-only and special file systems such as /proc and /sys, where even root cannot);
- its suffix is one the writer supports, where the writer has a list (`--plot`).

Every breach is an `InputError` naming the field and the path (exit 2). Writers then go through a
temporary file in the same directory and a rename (`report.html.write_atomic`), so a failure
leaves nothing half-written.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from twofold.errors import InputError

__all__ = ["check_output_path"]


def check_output_path(path: str | Path, *, field: str = "out", suffixes: Sequence[str] = ()) -> Path:
    """The expanded path, after the checks of the module docstring; `InputError` on a breach."""
    target = Path(path).expanduser()
    if suffixes and target.suffix.lower() not in suffixes:
        raise InputError(field, str(path), f"must end in one of {', '.join(suffixes)}")
    if target.is_dir():
        raise InputError(field, str(path), "is a directory; give a file path inside it")
    directory = target.parent
    if not directory.is_dir():
        raise InputError(
            field, str(path), f"directory {directory} does not exist (twofold does not create directories)"
        )
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise InputError(field, str(path), f"cannot write in {directory}: {exc.strerror}") from None
    return target
