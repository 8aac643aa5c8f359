"""`twofold chips` and `twofold systems`: the hardware catalog, with ids, aliases and sources."""

from __future__ import annotations

from typing import Any

import typer

from twofold.cli._app import app, console, emit_json

__all__ = ["chips", "systems"]

_DASH = "-"  # printed for a figure no source publishes


def _num(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return _DASH
    return f"{value:,.{digits}f}" if isinstance(value, float) and digits else f"{value:,}"


def _fp8(record: dict[str, Any]) -> str:
    """The FP8 rate, or the MXFP8 one marked `mx` where only microscaling FP8 is published (Trn3)."""
    if record["fp8_dense_tflops"] is None and record["mxfp8_dense_tflops"] is not None:
        return _num(record["mxfp8_dense_tflops"]) + " mx"
    return _num(record["fp8_dense_tflops"])


@app.command("chips")
def chips(
    chip_id: str | None = typer.Argument(None, help="Chip id or alias; omit to list every chip."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """List the catalogued chips, or show one chip's figures with their sources and disagreements."""
    # lazy: start-up time
    from twofold.hardware.catalog import chip_to_dict, get_chip, list_chips, system_to_dict, systems_for_chip

    if chip_id is None:
        records = [chip_to_dict(c) for c in list_chips()]
        if as_json:
            emit_json(records)
        else:
            _render_chip_table(records)
        return
    chip = get_chip(chip_id)
    record = chip_to_dict(chip)
    found = systems_for_chip(chip) if chip.default_system else ()
    record["systems"] = [system_to_dict(s) for s in found]
    if as_json:
        emit_json([record])
    else:
        _render_chip_detail(record)


@app.command("systems")
def systems(
    system_id: str | None = typer.Argument(None, help="System id or alias; omit to list every system."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """List the catalogued systems (instances, servers, pods), or show one system's topology levels."""
    from twofold.hardware.catalog import get_system, list_systems, system_to_dict  # lazy: start-up time

    found = list_systems() if system_id is None else (get_system(system_id),)
    records = [system_to_dict(s) for s in found]
    if as_json:
        emit_json(records)
    elif system_id is None:
        _render_system_table(records)
    else:
        _render_system_detail(records[0])


def _render_chip_table(records: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title="twofold chips (dense peaks per chip; '-' = not published)")
    for column in ("id", "name", "BF16 TF", "FP8 TF", "HBM GiB", "HBM TB/s", "TDP W", "default system"):
        table.add_column(column, justify="right" if column[0].isupper() else "left")
    for r in records:
        table.add_row(
            r["id"],
            r["name"],
            _num(r["bf16_dense_tflops"]),
            _fp8(r),
            _num(r["hbm_capacity_gib"]),
            _num(r["hbm_bandwidth_tb_s"], 3),
            _num(r["tdp_w"]),
            r["default_system"],
        )
    console().print(table)


def _render_chip_detail(r: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    out.print(f"[bold]{r['id']}[/bold]  {r['name']} ({r['vendor']}, {r['family']}, {r['architecture']})")
    out.print(f"aliases: {', '.join(r['aliases']) or _DASH}   default system: {r['default_system'] or _DASH}")
    table = Table(show_lines=False)
    for column in ("field", "value", "sources", "note / other sources"):
        table.add_column(column)
    for name, fig in r["figures"].items():
        others = "; ".join(
            f"{a['value']} ({', '.join(a['sources'])}){': ' + a['note'] if a['note'] else ''}"
            for a in fig["alternatives"]
        )
        note = fig["note"] + (f" [confidence: {fig['confidence']}]" if fig["confidence"] != "high" else "")
        value = str(fig["value"]) if name == "year" and fig["value"] is not None else _num(fig["value"])
        table.add_row(name, value, ", ".join(fig["sources"]), "\n".join(x for x in (note, others) if x))
    out.print(table)
    for note in r["notes"]:
        out.print(f"note: {note}")
    out.print("[bold]sources[/bold]")
    for s in r["sources"]:
        out.print(f"  {s['key']}: {s['title']} {s['url']} {s['date']}".rstrip())
    if r["systems"]:
        out.print("[bold]systems[/bold]: " + ", ".join(s["id"] for s in r["systems"]))


def _render_system_table(records: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title="twofold systems (bandwidth: GB/s per chip, one direction; USD per chip-hour)")
    kinds = ("on-demand", "capacity-block", "spot")
    for column in ("id", "chip", "node", "levels", *(f"$ {k}" for k in kinds)):
        table.add_column(column)
    for r in records:
        levels = " > ".join(
            f"{lv['name']} {lv['domain_chips'] or 'inf'} @{_num(lv['bandwidth_gb_s_per_chip'])}"
            for lv in r["levels"]
        )
        table.add_row(
            r["id"],
            r["chip_id"],
            str(r["node_chips"]),
            levels or _DASH,
            *(_num(r["prices"][k]["usd_per_chip_hour"], 3) for k in kinds),
        )
    console().print(table)


def _render_system_detail(r: dict[str, Any]) -> None:
    from rich.table import Table

    from twofold.hardware.catalog import get_system  # lazy: start-up time

    system = get_system(r["id"])
    out = console()
    out.print(
        f"[bold]{r['id']}[/bold]  {r['name']}  (chip {r['chip_id']}, {r['node_chips']} per node, "
        f"max {r['max_chips'] or 'unbounded'})"
    )
    for kind, quote in r["prices"].items():
        described = system.price(kind).describe()  # the catalog quote's own one-line form
        out.print(f"price, {kind}: {_num(quote['usd_per_chip_hour'], 3)} USD/chip-h ({described})")
    table = Table()
    for column in ("level", "kind", "domain chips", "GB/s/chip (1 dir)", "latency us", "torus", "note"):
        table.add_column(column)
    for lv in r["levels"]:
        table.add_row(
            lv["name"],
            lv["kind"],
            str(lv["domain_chips"] or "unbounded"),
            _num(lv["bandwidth_gb_s_per_chip"], 2),
            _num(lv["latency_us"], 1),
            "x".join(map(str, lv["torus_dims"])) or _DASH,
            lv["note"],
        )
    out.print(table)
    for note in r["notes"]:
        out.print(f"note: {note}")
    out.print("[bold]sources[/bold]")
    for s in r["sources"]:
        out.print(f"  {s['key']}: {s['title']} {s['url']} {s['date']}".rstrip())
