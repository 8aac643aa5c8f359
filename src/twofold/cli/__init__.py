"""The `twofold` command line: thin verbs that parse flags, call the API and render.

Each verb lives in its own module in this package and registers itself on `app`. Core code never
imports this package. Every verb takes `--json`, and then prints exactly one JSON document.
User mistakes (`InputError`) become a one-line message on stderr and exit code 2; a valid
question without an answer (`NoAnswer`) prints `no answer: <reason>` on stderr and exits 1.
"""

from __future__ import annotations

import sys

from twofold.cli._app import app

# Verb modules register their commands on `app` when imported.
from twofold.cli import chips as _chips  # noqa: E402,F401  isort: skip
from twofold.cli import inspect as _inspect  # noqa: E402,F401  isort: skip
from twofold.cli import models as _models  # noqa: E402,F401  isort: skip
from twofold.cli import measure as _measure  # noqa: E402,F401  isort: skip
from twofold.cli import plan as _plan  # noqa: E402,F401  isort: skip
from twofold.cli import estimate as _estimate  # noqa: E402,F401  isort: skip
from twofold.cli import validate as _validate  # noqa: E402,F401  isort: skip
from twofold.cli import compare as _compare  # noqa: E402,F401  isort: skip
from twofold.cli import claim as _claim  # noqa: E402,F401  isort: skip
from twofold.cli import report as _report  # noqa: E402,F401  isort: skip
from twofold.cli import sweep as _sweep  # noqa: E402,F401  isort: skip
from twofold.cli import stacks as _stacks  # noqa: E402,F401  isort: skip
from twofold.cli import calibrate as _calibrate  # noqa: E402,F401  isort: skip

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from twofold.errors import InputError, NoAnswer  # lazy: start-up time

    try:
        # Standalone mode: click reports usage errors itself (exit 2) and handles --help/Ctrl-C.
        app(args=argv, prog_name="twofold")
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except NoAnswer as exc:
        print(f"no answer: {exc}", file=sys.stderr)
        sys.exit(1)
