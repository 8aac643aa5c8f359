"""`twofold stacks`: the software stacks, their mechanisms and the sources behind each."""

from __future__ import annotations

from typing import Any

import typer

from twofold.cli._app import app, console, emit_json

__all__ = ["stacks"]

_SHOWN = ("attention_kernel", "runtime", "fsdp_flavour", "fp8_recipe", "tp_comm_overlap", "ep_comm_overlap")


def _record(stack: Any) -> dict[str, Any]:
    from twofold.estimate.uncertainty import uncertainty_data  # lazy: start-up time

    rows = ((uncertainty_data().get("rows") or {}).get("training") or {}).get("stack") or {}
    return {**stack.to_dict(), "published_rows": int(rows.get(stack.calibration_id, 0))}


@app.command("stacks")
def stacks(
    stack_id: str | None = typer.Argument(
        None, help="Stack id or a stack YAML file; omit to list every stack (and what `auto` picks)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """List the software stacks (kernels, runtime, sharding, overlaps), or show one with its sources."""
    # lazy: start-up time
    from twofold.cost.stack import AUTO, auto_table, get_stack, list_stacks, user_stacks

    if stack_id is None or stack_id == AUTO:
        records = [_record(get_stack(s)) for s in list_stacks() if s != AUTO]
        records += [{**_record(get_stack(s)), "user": True} for s in user_stacks()]
        auto = dict(auto_table())
        if as_json:
            emit_json({"stacks": records, "auto": auto})
        else:
            _render_table(records, auto)
        return
    record = _record(get_stack(stack_id))
    if as_json:
        emit_json(record)
    else:
        _render_detail(record)


def _value(mechanism: dict[str, Any]) -> str:
    value = mechanism["value"]
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list) and value and all(isinstance(x, float) for x in value):
        # model_state_bytes: weights, gradients, optimizer bytes per parameter
        text = " + ".join(f"{x:g}" for x in value) + " bytes (weights + gradients + optimizer)"
    else:
        text = str(value)
    extra = mechanism.get("by_family") or {}
    if extra:
        text += " (" + ", ".join(f"{k}: {v}" for k, v in extra.items()) + ")"
    for era in mechanism.get("history") or ():
        text += f"; through {era['through']}: {era['value']}"
    return text


def _render_table(records: list[dict[str, Any]], auto: dict[str, str]) -> None:
    from rich.table import Table

    table = Table(title="software stacks (`twofold stacks ID` for the sources)")
    table.add_column("id")
    for name in _SHOWN:
        table.add_column(name.replace("_", " "))
    table.add_column("rows", justify="right")
    for r in records:
        m = r["mechanisms"]
        rows = "yours" if r.get("user") else str(r["published_rows"])
        table.add_row(r["id"], *(_value(m[n]) for n in _SHOWN), rows)
    out = console()
    out.print(table)
    out.print(
        "auto (the default) = the chip vendor's reference stack: "
        + ", ".join(f"{family} -> {stack}" for family, stack in auto.items())
    )
    out.print(
        "rows: published training rows of that stack in the shipped data (the evidence behind its fit); "
        "yours: a stack `twofold calibrate` wrote to ~/.twofold/stacks"
    )


def _render_detail(r: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    out.print(f"[bold]{r['id']}[/]: {r['name']}")
    out.print(r["summary"])
    table = Table(title=f"mechanisms ({r['path']})")
    for col in ("mechanism", "value", "source"):
        table.add_column(col)
    for name, m in r["mechanisms"].items():
        eras = "".join(f" Through {e['through']}: {e['source']}" for e in m.get("history") or ())
        table.add_row(name, _value(m), m["source"] + eras)
    out.print(table)
    out.print(f"published training rows of this stack in the shipped data: {r['published_rows']}")
