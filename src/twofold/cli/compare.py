"""`twofold compare`: chips side by side on one workload, ratios to a reference split into causes."""

from __future__ import annotations

from typing import Any

import typer

from twofold.cli._app import app, emit_json
from twofold.cli._options import (
    BASE_PRECISION_OPTION,
    DEFAULT_GLOBAL_BATCH,
    DEFAULT_SEQ_LEN,
    FINETUNE_OPTION,
    GLOBAL_BATCH_HELP,
    IDLE_HELP,
    LORA_RANK_OPTION,
    LORA_TARGETS_OPTION,
    MIN_QUALITY_OPTION,
    POWER_OPTION,
    PRICE_KIND_OPTION,
    PRICE_OPTION,
    SHAPE_OPTION,
    STACK_HELP,
    check_min_quality,
    check_price_kind,
    check_stack,
    chip_list,
    chip_overrides,
    finetune_of,
    resolve_model,
    search_bounds,
)
from twofold.cli._render import layout_cell, num, price_line, wide_console
from twofold.cli._uncertainty import range_cell
from twofold.errors import InputError

__all__ = ["compare", "render_compare"]


def _model_name(positional: str | None, option: str | None) -> str:

    if positional and option and positional != option:
        raise InputError("model", f"{positional} / --model {option}", "give the model once")
    name = positional or option
    if not name:
        raise InputError("model", None, "name a model: twofold compare llama3.1-70b --on trn2,h100")
    return name


@app.command("compare")
def compare(
    model_arg: str | None = typer.Argument(
        None, metavar="MODEL", help="Catalog model id, config.json or MODEL.onnx."
    ),
    model: str | None = typer.Option(None, "--model", help="The model (instead of the argument)."),
    on: str = typer.Option(..., "--on", help="Chips to compare, comma-separated: trn2,h100,tpu-v5p."),
    chips: int = typer.Option(64, "--chips", help="Chips per system (the reference's count with --same-*)."),
    same_cost: bool = typer.Option(False, "--same-cost", help="Other chips get what the same $/h buys."),
    same_power: bool = typer.Option(False, "--same-power", help="Other chips get the same total TDP."),
    tokens: str | None = typer.Option(None, "--tokens", help="Token budget (2e12, 2T); default 20 x params."),
    samples: str | None = typer.Option(
        None, "--samples", help="Sample budget of an ONNX model without tokens (1.2M); no default."
    ),
    deadline: str | None = typer.Option(
        None,
        "--deadline",
        help="With --tokens: also each chip's cheapest count that trains them by then (48h, 3d), "
        "at --price-kind, up to --chips chips.",
    ),
    input_shape: list[str] | None = SHAPE_OPTION,
    reference: str | None = typer.Option(
        None, "--reference", help="Chip the ratios divide by (default: first)."
    ),
    global_batch: int = typer.Option(DEFAULT_GLOBAL_BATCH, "--global-batch", help=GLOBAL_BATCH_HELP),
    seq_len: int = typer.Option(DEFAULT_SEQ_LEN, "--seq-len", help="Tokens per sequence."),
    precision: str = typer.Option("bf16", "--precision", help="bf16, fp8, ..."),
    price: list[str] | None = PRICE_OPTION,
    price_kind: str = PRICE_KIND_OPTION,
    min_quality: str | None = MIN_QUALITY_OPTION,
    power: list[str] | None = POWER_OPTION,
    idle_fraction: float | None = typer.Option(None, "--idle-fraction", help=IDLE_HELP),
    grid: float | None = typer.Option(None, "--grid-gco2-per-kwh", help="Grid carbon intensity for CO2."),
    stack: str = typer.Option("auto", "--stack", help=STACK_HELP),
    max_vp: int | None = typer.Option(None, "--max-vp", help="Search virtual stages per rank up to this."),
    max_cp: int | None = typer.Option(None, "--max-cp", help="Search context-parallel degrees up to this."),
    infer: bool = typer.Option(False, "--infer", help="Compare serving capacity at --request-rate."),
    request_rate: float | None = typer.Option(None, "--request-rate", help="--infer: requests/s to serve."),
    p99_ttft_ms: float | None = typer.Option(None, "--p99-ttft-ms", help="--infer: p99 TTFT target."),
    p99_itl_ms: float | None = typer.Option(None, "--p99-itl-ms", help="--infer: p99 ITL target."),
    input_tokens: int = typer.Option(1024, "--input-tokens", help="--infer: prompt tokens per request."),
    output_tokens: int = typer.Option(256, "--output-tokens", help="--infer: output tokens per request."),
    neuron_cores: int | None = typer.Option(
        None, "--neuron-cores", help="--infer: the most logical NeuronCores a Neuron chip's replica takes."
    ),
    lnc: int | None = typer.Option(None, "--lnc", help="--infer: logical NeuronCore config (trn2: 2)."),
    finetune: str = FINETUNE_OPTION,
    lora_rank: int = LORA_RANK_OPTION,
    lora_targets: str = LORA_TARGETS_OPTION,
    base_precision: str | None = BASE_PRECISION_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Each chip at its best layout on the same workload; ratios to a reference split into causes."""
    from twofold.compare.compare import compare as run_compare  # lazy: start-up time

    if same_cost and same_power:
        raise InputError("same_cost", True, "choose one of --same-cost and --same-power")
    mode = "same-cost" if same_cost else "same-power" if same_power else "chips"
    prices, powers = chip_overrides(price, power)
    check_price_kind(price_kind)
    min_quality = check_min_quality(min_quality)
    name = _model_name(model_arg, model)
    the_finetune = finetune_of(finetune, lora_rank, lora_targets, base_precision)
    deadline_s = None
    if deadline is not None:
        from twofold.search.deadline import parse_deadline  # lazy: start-up time

        deadline_s = parse_deadline(deadline)
        if infer:
            raise InputError("deadline", deadline, "is a training budget; compare --infer serves the model")
        if tokens is None:
            raise InputError("tokens", None, "--deadline needs a token budget: --tokens N")
    if infer:  # serving capacity at a request rate, per chip (cli._capacity.compare_capacity)
        from twofold.cli._capacity import compare_capacity  # lazy: start-up time

        if the_finetune is not None:
            raise InputError("finetune", finetune, "is a training flag; compare --infer serves the model")
        if request_rate is None:
            raise InputError("request_rate", None, "compare --infer needs --request-rate (requests/s)")
        return compare_capacity(
            model=name, chips=chip_list(on), reference=reference, input_tokens=input_tokens,
            output_tokens=output_tokens, precision=precision, request_rate=request_rate,
            p99_ttft_ms=p99_ttft_ms, p99_itl_ms=p99_itl_ms, prices=prices, price_kind=price_kind,
            min_quality=min_quality, as_json=as_json, neuron_cores=neuron_cores, lnc=lnc,
        )  # fmt: skip
    if neuron_cores is not None or lnc is not None:
        name = "neuron_cores" if neuron_cores is not None else "lnc"
        value = neuron_cores if neuron_cores is not None else lnc
        raise InputError(name, value, "applies to compare --infer")
    the_model, workload, budget = resolve_model(
        name,
        input_shape,
        samples,
        tokens,
        global_batch=global_batch,
        seq_len=seq_len,
        precision=precision,
        finetune=the_finetune,
    )
    result = run_compare(
        the_model,
        chip_list(on),
        prices=prices,
        powers=powers,
        idle_fraction=idle_fraction,
        price_kind=price_kind,
        min_quality=min_quality,
        chips=chips,
        mode=mode,
        reference=reference,
        workload=workload,
        grid_gco2_per_kwh=grid,
        stack=check_stack(stack),
        options=search_bounds(max_vp=max_vp, max_cp=max_cp),
        deadline_s=deadline_s,
        **budget,
    )
    if as_json:
        emit_json(result.to_dict())
        return
    render_compare(result.to_dict())
    if deadline_s is not None:
        from twofold.cli._deadline import render_deadline_column  # lazy: start-up time

        render_deadline_column(result.to_dict())


def _ratio_cell(r: dict[str, Any], metric: str) -> str:
    """ "0.51 (0.23-1.12)": a ratio to the reference and its 80% range."""
    ratio = r["ratio_to_reference"].get(metric)
    bounds = (r.get("ratio_range") or {}).get(metric)
    if ratio is None or bounds is None or bounds[0] == bounds[1]:
        return num(ratio, ".2f")
    return f"{ratio:.2f} ({bounds[0]:.2f}-{bounds[1]:.2f})"


def _ratio_column(d: dict[str, Any]) -> tuple[str, str]:
    """(metric, header) of the ratio column. At equal chips the ratio is per chip; at the same cost
    or power the question is the system's throughput for the same spend or power, so the column is
    that ratio (the factor table's total), labelled "system"; the per-chip figures stay in tok/s/chip
    and in the JSON's `ratio_to_reference`."""
    ref = d["reference"]
    if d["mode"] == "chips":
        return "throughput_per_chip", f"x {ref}"
    return "system_throughput", f"x {ref} system"


def _unsized(r: dict[str, Any]) -> bool:
    """True for a row that could not be sized to the budget (no price, or no TDP); its note says
    which ("cannot size at same-cost: price of tpu-v5p is unknown; ...")."""
    return any(note.startswith("cannot size at") for note in r["notes"])


def render_compare(d: dict[str, Any]) -> None:
    """The compare table, the factor table of the throughput ratio, and the notes."""
    from rich.table import Table

    out = wide_console()
    w = d["workload"]
    unit = d.get("unit", "tokens")
    short = "tok" if unit == "tokens" else "smp"
    count = f" ({d['chips']} chips)" if d["mode"] == "chips" else f" (reference: {d['chips']} chips)"
    budget = d.get(unit)
    per_step = (
        f"{w['global_batch']} x {w['seq_len']} tokens/step"
        if unit == "tokens"
        else f"{w['global_batch']} samples/step"
    )
    title = f"{d['model']}: {per_step}, {w['precision']}, {d['mode']}{count}, " + (
        f"{budget:.3g} {unit} to train" if budget is not None else f"no {unit[:-1]} budget"
    )
    table = Table(title=title)
    for col in (
        "chip",
        "chips",
        "layout",
        "step s",
        f"{short}/s/chip",
        f"{short}/s/chip 80%",
        "MFU",
        "GiB/chip",
        "days",
        f"$/M {short}",
        "MWh",
        f"{short}/J",
        f"{short}/$",
        _ratio_column(d)[1],
    ):
        table.add_column(col, justify="left" if col in ("chip", "layout") else "right")
    for r in d["rows"]:
        kwh = r.get("energy_kwh")
        table.add_row(
            r["chip"],
            str(r["chips"]),
            layout_cell(r["layout"]),
            num(r.get("step_time_s"), ".3g"),
            num(r.get(f"{unit}_per_s_per_chip"), ",.0f"),
            range_cell(r.get("uncertainty"), f"{unit}_per_s_per_chip"),
            num(r.get("mfu"), ".1%"),
            num(r.get("memory_per_chip_gib"), ".1f"),
            num(r.get("time_to_train_days"), ",.1f"),
            num(r.get(f"usd_per_million_{unit}"), ".3f"),
            num(None if kwh is None else kwh / 1000, ",.1f"),
            num(r.get(f"perf_per_watt_{unit}_per_j"), ".3g"),
            num(r.get(f"perf_per_dollar_{unit}_per_usd"), ",.0f"),
            "cannot size" if _unsized(r) else _ratio_cell(r, _ratio_column(d)[0]),
        )
    out.print(table)
    # lazy: start-up time
    from twofold.compare.ranges import merge_thin

    thin = merge_thin(
        part for r in d["rows"] if r.get("thin_evidence") for part in r["thin_evidence"].split("; ")
    )
    out.print(
        "80%: interval from the held-out error of the shipped rows; ratio ranges combine the two chips' "
        "intervals in quadrature (independent errors, twofold.compare.ranges)"
        + (f"; thin evidence: {'; '.join(thin)}" if thin else "")
    )
    stacks = [
        f"{r['chip']} {r['stack']}" + (" (auto)" if r.get("stack_chosen_by") == "auto" else "")
        for r in d["rows"]
        if r.get("stack")
    ]
    if stacks:
        out.print("software stack: " + ", ".join(stacks) + " (`twofold stacks`; --stack picks another)")
    metric = "system_throughput" if d["mode"] != "chips" else "throughput_per_chip"
    names = next((list(f[metric]) for r in d["rows"] if (f := r["factors"]).get(metric)), [])
    if names:
        ft = Table(title=f"{metric.replace('_', ' ')} vs {d['reference']} = product of factors")
        ft.add_column("chip")
        for n in [*names, "total", "main cause"]:
            ft.add_column(n.replace("_", " "), justify="right")
        for r in d["rows"]:
            f = r["factors"].get(metric) or {}
            ft.add_row(
                r["chip"],
                *(num(f.get(n), ".3f") for n in names),
                num(r["ratio_to_reference"].get(metric), ".3f"),
                r["dominant_cause"].get(metric) or "",
            )
        out.print(ft)
    for r in d["rows"]:
        out.print(price_line(r["chip"], r["price"]), markup=False, highlight=False)
    for r in d["rows"]:
        for n in r["notes"]:
            out.print(f"[yellow]{r['chip']}: {n}[/yellow]")
    for n in d["notes"]:
        out.print(n)
