"""Rendering pieces the verbs share: cells, price notes, layouts, and the training estimate's tables.

Each takes the `to_dict()` of a result (the same document `--json` prints) and formats it for the
terminal; nothing here computes a figure. Verb modules import this module and `cli._options`, never
each other.
"""

from __future__ import annotations

from typing import Any

from twofold.cli._app import console
from twofold.cli._uncertainty import range_note

__all__ = [
    "finetune_label",
    "layout_cell",
    "num",
    "price_cell",
    "price_line",
    "print_imported_facts",
    "print_memory_and_notes",
    "print_provenance",
    "render_training_estimate",
    "wide_console",
    "with_usable_memory",
]


def wide_console() -> Any:
    """Rich console; 160 columns when not a terminal, so piped tables keep one line per row."""
    out = console()
    if not out.is_terminal:
        out.width = 160
    return out


def num(value: float | None, spec: str) -> str:
    """`value` formatted by `spec`, or "unknown"."""
    return "unknown" if value is None else format(value, spec)


def layout_cell(lay: dict[str, Any] | None) -> str:
    """A training layout in one cell, "dp8 tp2 z1 mb1 rc:full"; "does not fit" without one."""
    if lay is None:
        return "does not fit"
    parts = [f"{k}{lay[k]}" for k in ("dp", "tp", "pp", "vp", "cp", "ep") if lay[k] != 1 or k == "dp"]
    return (
        " ".join(parts)
        + f" z{lay['zero']} mb{lay['micro_batch']}"
        + (f" rc:{lay['recompute']}" if lay["recompute"] != "none" else "")
    )


def finetune_label(workload: dict[str, Any]) -> str:
    """`, lora r=16 attention-mlp, base nf4` for a fine-tuning run's workload; empty for full training."""
    ft = workload.get("finetune")
    if not ft:
        return ""
    return f", {ft['method']} r={ft['rank']} {ft['targets']}, base {ft['base_precision']}"


def price_cell(usd: float | None, p: dict[str, Any] | None, spec: str = ".2f") -> str:
    """A dollar figure with its price's grade ("1.94 (C)", "2.10 (user)"), or "no price (<kind>)"
    when that kind of price is unknown (`price_line` gives the quote in full)."""
    kind = (p or {}).get("kind", "on-demand")
    if usd is None:
        return f"no price ({kind})"
    grade = (p or {}).get("quality")
    return format(usd, spec) + (f" ({grade})" if grade else "")


def price_line(chip: str, p: dict[str, Any]) -> str:
    """One table note per row: the price used, its kind, quote, region, date and source keys."""
    kind = p.get("kind", "on-demand")
    if p["usd_per_chip_hour"] is None:
        return f"price {chip}: {kind} unknown ({p['note']})"
    if p["source"] == "user":
        return f"price {chip}: ${p['usd_per_chip_hour']:g}/chip-h (grade user), {p['note']}"
    where = ", ".join(
        x
        for x in (
            p.get("provider", ""),
            p.get("instance", ""),
            p.get("region") or "region not recorded",
            f"as of {p['as_of']}" if p.get("as_of") else "date not recorded",
            f"valid until {p['valid_until']}" if p.get("valid_until") else "",
            "source: " + ", ".join(p.get("sources") or []),
        )
        if x
    )
    grade = p.get("quality") or "?"
    return f"price {chip}: {kind} ${p['usd_per_chip_hour']:g}/chip-h grade {grade} ({where})"


def with_usable_memory(d: dict[str, Any], mem_headroom: float) -> dict[str, Any]:
    """An estimate's dict plus the fit rule it was held to: `mem_headroom` and
    `usable_memory_gib` = capacity x (1 - mem_headroom) (`parallel.memory.DEFAULT_MEM_HEADROOM`)."""
    usable = d["hbm_capacity_gib"] * (1.0 - mem_headroom)
    return d | {"mem_headroom": mem_headroom, "usable_memory_gib": usable}


def render_training_estimate(d: dict[str, Any]) -> None:
    """One training step (`estimate`, catalog or imported model): the headline, provenance, where the
    step time goes, memory per chip and the notes."""
    from rich.table import Table

    out = console()
    lay, w = d["layout"], d["workload"]
    shape = " ".join(f"{k}={lay[k]}" for k in ("dp", "tp", "pp", "vp", "cp", "ep", "zero", "micro_batch"))
    out.print(
        f"[bold]{d['model']}[/] on {d['chips']} x {d['chip']} ({d['system']}), {shape}, "
        f"recompute={lay['recompute']}; global_batch={w['global_batch']}, "
        f"seq_len={w['seq_len']}, {w['precision']}{finetune_label(w)}"
    )
    fits = "[green]fits[/]" if d["fits"] else "[red]does not fit[/]"
    # Imported models without tokens (a CNN) report samples: tokens_per_s_per_chip is null there.
    rate = (
        f"{d['tokens_per_s_per_chip']:,.0f} tokens/s/chip"
        + range_note(d.get("uncertainty"), "tokens_per_s_per_chip")
        if d["tokens_per_s_per_chip"] is not None
        else f"{d['samples_per_s_per_chip']:,.1f} samples/s/chip"
    )
    out.print(
        f"step {d['step_time_s']:.3f} s, {rate}, "
        f"MFU {d['mfu']:.1%}, "
        f"{d['microbatches']} micro-batches (bubble {d['bubble_fraction']:.1%}), "
        f"{d['memory_per_chip_gib']:.1f} of {_usable(d)} per chip: {fits}"
    )
    print_provenance(out, d.get("provenance") or {})
    table = Table(title="where the step time goes")
    for col in ("term", "seconds", "share"):
        table.add_column(col, justify="left" if col == "term" else "right")
    step = d["step_time_s"] or 1.0
    for key, value in d["breakdown"].items():
        table.add_row(key.removesuffix("_s"), f"{value:.4f}", f"{value / step:.1%}")
    for key, value in d["hidden_comm"].items():
        if value > 0:
            table.add_row(f"({key.removesuffix('_s')} hidden)", f"{value:.4f}", "overlapped")
    out.print(table)
    print_memory_and_notes(out, d)
    print_imported_facts(out, d)


def print_imported_facts(out: Any, d: dict[str, Any]) -> None:
    """What only an imported model's estimate or plan has (`estimate.imported`): its samples per
    second where the step line gave tokens, and the operators it did not recognise."""
    if "unsupported_ops" not in d:  # a catalog model
        return
    if "samples_per_s_per_chip" in d and d.get("tokens_per_s_per_chip") is not None:  # else in the step line
        out.print(f"{d['samples_per_s_per_chip']:,.1f} samples/s/chip")
    if d["unsupported_ops"]:
        listed = ", ".join(f"{k} x{v}" for k, v in d["unsupported_ops"].items())
        out.print(f"[yellow]unsupported (priced as zero-FLOP memory ops):[/yellow] {listed}")
    else:
        out.print("every operator recognised")


def _usable(d: dict[str, Any]) -> str:
    """The usable memory, "76 GiB usable (80 GiB, 5% headroom)", or the capacity without one."""
    if d.get("usable_memory_gib") is None:
        return f"{d['hbm_capacity_gib']:g} GiB"
    capacity, headroom = d["hbm_capacity_gib"], d["mem_headroom"]
    return f"{d['usable_memory_gib']:.3g} GiB usable ({capacity:g} GiB, {headroom:.0%} headroom)"


def print_provenance(out: Any, p: dict[str, Any]) -> None:
    """One line on the stack and calibration behind an estimate, and its assumptions."""
    if not p:
        return
    f = p["factors"]
    chosen = " (auto: the vendor's reference stack)" if p["stack_chosen_by"].startswith("auto") else ""
    out.print(
        f"stack {p['stack']}{chosen}: attention {f['attention_kernel']} ({f['attention_kernel_basis']}), "
        f"GEMM factor {f['gemm_efficiency_factor']:.3g} ({f['gemm_efficiency_factor_basis']}); "
        f"calibration: {p['calibration']}"
    )
    for text in p.get("assumed", []):
        out.print(f"assumed: {text}")


def print_memory_and_notes(out: Any, d: dict[str, Any]) -> None:
    """The memory table and the notes of an estimate's `to_dict` (training or serving)."""
    from rich.table import Table

    mem = Table(title="memory per chip (most loaded pipeline stage)")
    mem.add_column("part")
    mem.add_column("GiB", justify="right")
    for key, value in d["memory"].items():
        mem.add_row(key.removesuffix("_gib"), f"{value:.2f}")
    out.print(mem)
    for note in d["notes"]:
        out.print(f"note: {note}")
