"""The typer application every verb registers on, its one JSON writer and its console.

Shared flags and their parsers are in `cli._options`, shared rendering in `cli._render`."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import typer

__all__ = ["app", "console", "emit_json"]

app = typer.Typer(
    name="twofold",
    help="Predict, measure and compare deep-learning training and inference across AI accelerators.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _clean(obj: Any) -> Any:
    """JSON-safe copy: tuples to lists, non-finite floats to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and callable(obj.item):  # NumPy scalars
        return _clean(obj.item())
    return obj


def emit_json(data: Any) -> None:
    """Print one JSON document to stdout, nothing else."""
    sys.stdout.write(json.dumps(_clean(data), indent=2) + "\n")


def console():  # noqa: ANN201 - rich is imported lazily
    from rich.console import Console

    return Console()
