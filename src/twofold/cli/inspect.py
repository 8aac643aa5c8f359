"""`twofold inspect MODEL.onnx`: the operators, FLOPs and parameters twofold reads from a model file
(or a `torch:module:factory` spec: `frontends.load_model`)."""

from __future__ import annotations

from typing import Any

import typer

from twofold.cli._app import app, console, emit_json
from twofold.errors import InputError

__all__ = ["inspect"]


@app.command("inspect")
def inspect(
    model: str = typer.Argument(..., help="Path to an ONNX file, or torch:module:factory."),
    input_shape: list[str] = typer.Option(  # noqa: B008 - typer's way to declare a repeatable option
        [], "--input-shape", help="Shape of a dynamic input, NAME=1x3x224x224 (repeatable)."
    ),
    precision: str = typer.Option("bf16", "--precision", help="Number format tensors are priced in."),
    top: int = typer.Option(15, "--top", help="How many operators to list (most FLOPs first)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Import an ONNX model (PyTorch, TensorFlow/Keras via tf2onnx, JAX via jax2onnx): op counts,
    FLOPs, parameters, and the operators twofold does not recognise."""
    from twofold.frontends import load_model, parse_input_shapes  # lazy: start-up time
    from twofold.workload.registry import model_spec_kind  # lazy: start-up time

    if top < 0:
        raise InputError("top", top, "must be a non-negative integer")
    if model_spec_kind(model) == "catalog":
        raise InputError(
            "model", model, "inspect reads an imported model: MODEL.onnx or torch:module:factory"
        )
    imported = load_model(model, input_shapes=parse_input_shapes(input_shape), precision=precision)
    d = imported.to_dict()
    if as_json:
        emit_json(d)
        return
    _render(d, top)


def _render(d: dict[str, Any], top: int) -> None:
    from rich.table import Table

    out = console()
    seq = f", seq_len={d['seq_len']}" if d["seq_len"] else ""
    out.print(
        f"[bold]{d['name']}[/bold] ({d['source']}): {d['param_count']:,} parameters, "
        f"batch={d['batch']}{seq}, {d['precision']}"
    )
    out.print(
        f"forward {d['forward_flops']:.4g} FLOPs, backward {d['backward_flops']:.4g} FLOPs ({d['backward']})"
    )
    table = Table(title="Operators by kind")
    for col in ("phase", "kind", "ops", "GFLOPs", "MB moved"):
        table.add_column(col, justify="right")
    for phase in ("forward", "backward"):
        for kind, row in d[f"{phase}_by_kind"].items():
            table.add_row(
                phase, kind, str(row["ops"]), f"{row['flops'] / 1e9:,.3f}", f"{row['bytes'] / 1e6:,.2f}"
            )
    out.print(table)
    if top:
        ops = sorted(d["ops"], key=lambda o: o["flops"] * o["count"], reverse=True)[:top]
        listing = Table(title=f"Top {len(ops)} operators by FLOPs")
        for col in ("name", "kind", "phase", "count", "GFLOPs", "dims"):
            listing.add_column(col)
        for op in ops:
            dims = " ".join(f"{k}={v}" for k, v in op["dims"].items())
            listing.add_row(
                op["name"], op["kind"], op["phase"], str(op["count"]), f"{op['flops'] / 1e9:,.3f}", dims
            )
        out.print(listing)
    if d["unsupported"]:
        listed = ", ".join(f"{k} x{v}" for k, v in d["unsupported"].items())
        out.print(f"[yellow]unsupported (priced as zero-FLOP memory ops):[/yellow] {listed}")
    else:
        out.print("every operator recognised")
