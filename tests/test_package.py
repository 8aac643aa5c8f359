"""Package-level contracts: the public surface is sorted and resolvable, and the core stays light."""

from __future__ import annotations

import subprocess
import sys

import twofold

HEAVY = ("torch", "ray", "onnx", "matplotlib")


def test_all_is_sorted_and_resolves() -> None:
    assert twofold.__all__ == sorted(twofold.__all__)
    for name in twofold.__all__:
        assert getattr(twofold, name) is not None, name


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print('\\n'.join(sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {line.split(".")[0] for line in out.splitlines()}


def test_import_twofold_imports_no_heavy_dependency() -> None:
    loaded = _modules_after("import twofold")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_cli_help_imports_no_heavy_dependency() -> None:
    code = "import twofold.cli as c\ntry:\n    c.main(['--help'])\nexcept SystemExit:\n    pass"
    loaded = _modules_after(code)
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_cli_estimate_imports_no_heavy_dependency() -> None:
    code = (
        "import twofold.cli as c\n"
        "try:\n"
        "    c.main(['estimate', '--model', 'llama3.1-8b', '--chip', 'h100', '--chips', '8', '--json'])\n"
        "except SystemExit:\n"
        "    pass"
    )
    loaded = _modules_after(code)
    assert "twofold" in loaded
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
