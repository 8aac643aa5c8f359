"""`twofold plan --deadline`: the cheapest chip, count, layout and price kind that trains a budget by
a deadline (`search.deadline`), and how `compare` prints its deadline table."""

from __future__ import annotations

from typing import Any

from twofold.cli._app import console, emit_json
from twofold.cli._options import parse_budget
from twofold.cli._render import finetune_label, layout_cell
from twofold.errors import InputError, NoAnswer
from twofold.units import SECONDS_PER_HOUR

__all__ = ["deadline_targets", "plan_by_deadline", "render_deadline_column", "token_budget"]


def token_budget(tokens: str | None, samples: str | None, seq_len: int) -> float:
    """The budget of a deadline: `--tokens`, or `--samples` sequences x `--seq-len` tokens. A
    deadline without one is refused: the 20 x params default is a pretraining budget, and a
    fine-tuning run priced at it would be off by orders of magnitude."""

    if tokens is not None and samples is not None:
        raise InputError("samples", samples, "give one budget: --tokens or --samples, not both")
    if tokens is not None:
        return parse_budget(tokens, "tokens")
    if samples is not None:
        return parse_budget(samples, "samples") * seq_len
    raise InputError("tokens", None, "--deadline needs a budget: --tokens N or --samples N (sequences)")


def deadline_targets(names: list[str], stack: str | None, options: Any) -> list[Any]:
    """`search.deadline.DeadlineTarget`s of `--on` names (`chip` or `chip@system`, as compare).
    A chip named alone also brings its priced one-chip instances (`search.one_chip_instances`),
    each its own target `chip@system` right after it, unless `--on` names that system itself."""
    # lazy: start-up time
    from twofold.compare.plans import split_chip_system, target
    from twofold.search.deadline import DeadlineTarget, one_chip_instances

    out = []
    for name in names:
        t = target(name)
        out.append(DeadlineTarget(label=t.label, system=t.system, chip=t.chip, stack=stack, options=options))
    labels = [t.label for t in out]
    if len(set(labels)) != len(labels):
        raise InputError("on", ",".join(names), "names a chip twice")
    named = {(t.chip.id, t.system.id) for t in out}
    expanded = []
    for name, tgt in zip(names, out, strict=True):
        expanded.append(tgt)
        if split_chip_system(name)[1] is not None:
            continue
        for system in one_chip_instances(tgt.chip):
            if (tgt.chip.id, system.id) not in named:
                expanded.append(
                    DeadlineTarget(
                        label=f"{tgt.chip.id}@{system.id}",
                        system=system,
                        chip=tgt.chip,
                        stack=stack,
                        options=options,
                    )
                )
    return expanded


def plan_by_deadline(
    *,
    model: str,
    names: list[str],
    workload: Any,
    tokens: float,
    deadline: str,
    price_kind: str | None,
    prices: dict[str, float],
    min_quality: str | None,
    max_chips: int | None,
    stack: str | None,
    options: Any,
    plan_kwargs: dict[str, Any],
    as_json: bool,
) -> None:
    """Run `search.plan_deadline` and print it; no option meeting the deadline exits 1 (NoAnswer)."""
    from twofold.search.deadline import parse_deadline, plan_deadline  # lazy: start-up time

    deadline_s = parse_deadline(deadline)
    result = plan_deadline(
        model,
        deadline_targets(names, stack, options),
        workload,
        tokens=tokens,
        deadline_s=deadline_s,
        price_kinds=None if price_kind is None else (price_kind,),
        prices=prices,
        min_quality=min_quality,
        max_chips=max_chips,
        **plan_kwargs,
    )
    d = {"mode": "deadline", **result.to_dict()}
    if as_json:
        emit_json(d)
    else:
        _render(d)
    if d["best"] is None:
        raise NoAnswer(_missed(d))


def _hours(seconds: float) -> str:
    hours = seconds / SECONDS_PER_HOUR
    return f"{hours:.3g}" if hours < 100 else f"{hours:,.0f}"


def _usd(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.2f}" if x < 1000 else f"{x:,.0f}"


def _missed(d: dict[str, Any]) -> str:
    fast = d["fastest"]
    where = "no priced option" if fast is None else f"the fastest is {_option_line(fast)}"
    return f"no option meets the deadline of {_hours(d['deadline_s'])} h; {where}"


def _option_line(o: dict[str, Any]) -> str:
    """ "tpu-v5e x 8 (tpu-v5e-pod), spot grade A $0.245/chip-h: $2.48 (80%: 1.85-3.78), 1.27 h"."""
    p = o["price"]
    lo, hi = o["time_range_s"]
    if p["usd_per_chip_hour"] is None:
        price = "no price"
    else:
        price = f"{p['kind']} grade {p['quality'] or '?'} ${p['usd_per_chip_hour']:g}/chip-h"
    if o["cost_usd"] is not None:
        low, high = o["cost_range_usd"]
        price += f": ${_usd(o['cost_usd'])} (80%: {_usd(low)}-{_usd(high)})"
    billed = "" if o["billed_chips"] == o["chips"] else f", billed {o['billed_chips']} chips"
    return (
        f"{o['label']} x {o['chips']} ({o['system']}{billed}), {price}, {_hours(o['time_s'])} h "
        f"(80%: {_hours(lo)}-{_hours(hi)} h)"
    )


def _row_cells(t: dict[str, Any]) -> list[str]:
    o = t["best"] or t["fastest"]
    if o is None:
        return [t["label"], "-", "-", "does not fit", "-", "-", "-", t["status"]]
    p = o["price"]
    priced = p["usd_per_chip_hour"] is not None
    lo, hi = o["time_range_s"]
    cost = "-"
    if o["cost_usd"] is not None:
        cost = f"{_usd(o['cost_usd'])} ({_usd(o['cost_range_usd'][0])}-{_usd(o['cost_range_usd'][1])})"
    status = t["status"] if t["status"] != "meets" or o["meets_at_slow_end"] else "meets (80%: may miss)"
    return [
        t["label"],
        str(o["chips"]),
        str(o["billed_chips"]) if priced else "-",
        layout_cell(o["layout"]),
        f"{p['kind']} {p['quality'] or '?'} ${p['usd_per_chip_hour']:.3g}" if priced else "no price",
        f"{_hours(o['time_s'])} ({_hours(lo)}-{_hours(hi)})",
        cost,
        status,
    ]


def _render(d: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    if not out.is_terminal:
        out.width = 160
    w = d["workload"]
    title = (
        f"{d['model']}{finetune_label(w)}: {d['tokens']:.3g} tokens by {_hours(d['deadline_s'])} h "
        f"({w['global_batch']} x {w['seq_len']} tokens/step, {w['precision']}), cheapest per chip"
    )
    table = Table(title=title)
    for col in ("chip", "chips", "billed", "layout", "price/chip-h", "hours (80%)", "$ total (80%)", ""):
        table.add_column(col, justify="left" if col in ("chip", "layout", "price/chip-h", "") else "right")
    for t in d["targets"]:
        table.add_row(*_row_cells(t))
    out.print(table)
    if d["best"] is not None:
        line = f"cheapest that meets {_hours(d['deadline_s'])} h: {_option_line(d['best'])}"
        out.print(line, highlight=False, soft_wrap=True)
    else:
        out.print(f"[yellow]{_missed(d)}[/yellow]", highlight=False, soft_wrap=True)
    grade = f" of grade {d['min_quality']} or better" if d["min_quality"] else ""
    lines = [
        "per chip: its cheapest option that meets the deadline, else its fastest",
        f"chips tried: 1, one node, then node x 2^k up to {d['max_chips']:,}; "
        f"price kinds: {', '.join(d['price_kinds'])}{grade}",
        "billed: whole instances of the quoted size (docs/search.md); hours and $: 80% range from the "
        "throughput interval of the shipped rows",
        *d["notes"],
    ]
    for line in lines:
        out.print(line, highlight=False, soft_wrap=True)
    for t in d["targets"]:
        for n in t["notes"]:
            out.print(f"[yellow]{t['label']}: {n}[/yellow]", highlight=False, soft_wrap=True)


def render_deadline_column(d: dict[str, Any]) -> None:
    """compare --deadline: one line per chip, its cheapest option that meets the deadline."""
    out = console()
    if not out.is_terminal:
        out.width = 160
    hours = _hours(d["deadline_s"])
    out.print(f"cheapest option per chip that trains {d['tokens']:.3g} tokens by {hours} h:", highlight=False)
    for r in d["rows"]:
        t = r.get("deadline")
        if t is None:
            continue
        if t["best"] is not None:
            line = _option_line(t["best"])
        elif t["fastest"] is not None:
            line = f"{r['chip']}: {t['status']}; fastest {_option_line(t['fastest'])}"
        else:
            line = f"{r['chip']}: {t['status']}"
        out.print(f"  {line}", highlight=False, soft_wrap=True)
