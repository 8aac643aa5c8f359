"""`twofold compare`, `twofold claim`, `twofold report`: chips side by side, vendor claims, HTML."""

from __future__ import annotations

import math
from typing import Any

import typer

from twofold.cli._app import (
    BASE_PRECISION_OPTION,
    DEFAULT_GLOBAL_BATCH,
    DEFAULT_SEQ_LEN,
    FINETUNE_OPTION,
    GLOBAL_BATCH_HELP,
    LORA_RANK_OPTION,
    LORA_TARGETS_OPTION,
    STACK_HELP,
    app,
    check_stack,
    console,
    emit_json,
    finetune_of,
)

__all__ = ["claim", "compare", "parse_tokens", "price_cell", "price_line", "report"]

_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12, "p": 1e15}
_PRICE_HELP = "USD per chip-hour for a chip, CHIP=USD (repeat or comma-separate); overrides the catalog."
_POWER_HELP = "Maximum (TDP) power of a chip in watts, CHIP=W (repeat or comma-separate)."
_IDLE_HELP = (
    "Idle power as a fraction of TDP for every chip (default: catalog idle, else 0.2, an assumption)."
)
# List options as module-level singletons (a call in an argument default is flagged by B008).
_PRICE_OPTION = typer.Option(None, "--price", help=_PRICE_HELP)
_PRICE_KIND_HELP = (
    "Which published price: on-demand, capacity-block (AWS EC2 Capacity Blocks), spot, committed-1y "
    "or committed-3y; a chip "
    "without one is unknown (never priced at another kind). --price wins."
)
_PRICE_KIND_OPTION = typer.Option("on-demand", "--price-kind", help=_PRICE_KIND_HELP)
_MIN_QUALITY_HELP = (
    "Use only catalog prices of this grade or better (A vendor-derived, B reputable secondary, C single "
    "third-party value); a weaker price is unknown, never replaced by another."
)
_MIN_QUALITY_OPTION = typer.Option(None, "--min-quality", help=_MIN_QUALITY_HELP)
_POWER_OPTION = typer.Option(None, "--power", help=_POWER_HELP)
_DEFAULT_SEQ_LEN = DEFAULT_SEQ_LEN
_SHAPE_OPTION = typer.Option(
    None, "--input-shape", help="MODEL.onnx: shape of a dynamic input, NAME=8x3x224x224 (repeatable)."
)


def parse_tokens(text: str | None) -> float | None:
    """A token count: a number (2e12) or one with a suffix k, M, B/G, T, P (2T)."""
    return None if text is None else _parse_budget(text, "tokens")


def _parse_budget(text: str, field: str) -> float:
    """A count of `field` (tokens, samples): a number or one with a suffix k, M, B/G, T, P."""
    from twofold.errors import InputError

    raw = text.strip().lower().replace("_", "").replace(",", "")
    scale = _SUFFIX.get(raw[-1:], 1.0) if raw else 1.0
    number = raw[:-1] if raw[-1:] in _SUFFIX else raw
    try:
        value = float(number) * scale
    except ValueError:
        raise InputError(field, text, f"must be a number of {field}, e.g. 2e12 or 2T") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(field, text, f"must be a positive number of {field}")
    return value


def _overrides(
    prices: list[str] | None, powers: list[str] | None
) -> tuple[dict[str, float], dict[str, float]]:
    from twofold.economics.prices import parse_chip_values

    return parse_chip_values(prices or [], "price", "USD per chip-hour"), parse_chip_values(
        powers or [], "power", "W"
    )


def _check_price_kind(kind: str) -> None:
    """Fail on a bad --price-kind before any model is loaded or planned."""
    from twofold.economics.prices import PRICE_KINDS
    from twofold.errors import InputError

    if kind not in PRICE_KINDS:
        raise InputError("price_kind", kind, f"must be one of {', '.join(PRICE_KINDS)}")


def _check_min_quality(value: str | None) -> str | None:
    """Fail on a bad --min-quality before any model is loaded or planned."""
    from twofold.economics.prices import check_min_quality

    return check_min_quality(value)


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


def _workload(global_batch: int, seq_len: int, precision: str, finetune: Any = None) -> Any:
    from twofold.errors import InputError
    from twofold.hardware.types import PRECISIONS
    from twofold.parallel.layout import TrainingWorkload

    for name, value in (("global_batch", global_batch), ("seq_len", seq_len)):
        if value < 1:
            raise InputError(name, value, "must be a positive integer")
    if precision not in PRECISIONS:
        raise InputError("precision", precision, f"must be one of {', '.join(PRECISIONS)}")
    return TrainingWorkload(
        global_batch=global_batch, seq_len=seq_len, precision=precision, finetune=finetune
    )


def _chip_list(on: str) -> list[str]:
    from twofold.errors import InputError

    names = [n.strip() for n in on.split(",") if n.strip()]
    if not names:
        raise InputError("on", on, "must list chips, e.g. trn2,h100,tpu-v5p")
    return names


def _check_out(path: str) -> None:
    """Fail on a bad output path (`twofold.outputs`) before minutes of planning, not after."""
    from twofold.outputs import check_output_path

    check_output_path(path)


def _model_name(positional: str | None, option: str | None) -> str:
    from twofold.errors import InputError

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
    input_shape: list[str] | None = _SHAPE_OPTION,
    reference: str | None = typer.Option(
        None, "--reference", help="Chip the ratios divide by (default: first)."
    ),
    global_batch: int = typer.Option(DEFAULT_GLOBAL_BATCH, "--global-batch", help=GLOBAL_BATCH_HELP),
    seq_len: int = typer.Option(_DEFAULT_SEQ_LEN, "--seq-len", help="Tokens per sequence."),
    precision: str = typer.Option("bf16", "--precision", help="bf16, fp8, ..."),
    price: list[str] | None = _PRICE_OPTION,
    price_kind: str = _PRICE_KIND_OPTION,
    min_quality: str | None = _MIN_QUALITY_OPTION,
    power: list[str] | None = _POWER_OPTION,
    idle_fraction: float | None = typer.Option(None, "--idle-fraction", help=_IDLE_HELP),
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
    from twofold.compare.compare import compare as run_compare
    from twofold.errors import InputError

    if same_cost and same_power:
        raise InputError("same_cost", True, "choose one of --same-cost and --same-power")
    mode = "same-cost" if same_cost else "same-power" if same_power else "chips"
    prices, powers = _overrides(price, power)
    _check_price_kind(price_kind)
    min_quality = _check_min_quality(min_quality)
    name = _model_name(model_arg, model)
    the_finetune = finetune_of(finetune, lora_rank, lora_targets, base_precision)
    deadline_s = None
    if deadline is not None:
        from twofold.search.deadline import parse_deadline

        deadline_s = parse_deadline(deadline)
        if infer:
            raise InputError("deadline", deadline, "is a training budget; compare --infer serves the model")
        if tokens is None:
            raise InputError("tokens", None, "--deadline needs a token budget: --tokens N")
    if infer:  # serving capacity at a request rate, per chip (cli._capacity.compare_capacity)
        from twofold.cli._capacity import compare_capacity

        if the_finetune is not None:
            raise InputError("finetune", finetune, "is a training flag; compare --infer serves the model")
        if request_rate is None:
            raise InputError("request_rate", None, "compare --infer needs --request-rate (requests/s)")
        return compare_capacity(
            model=name, chips=_chip_list(on), reference=reference, input_tokens=input_tokens,
            output_tokens=output_tokens, precision=precision, request_rate=request_rate,
            p99_ttft_ms=p99_ttft_ms, p99_itl_ms=p99_itl_ms, prices=prices, price_kind=price_kind,
            min_quality=min_quality, as_json=as_json, neuron_cores=neuron_cores, lnc=lnc,
        )  # fmt: skip
    if neuron_cores is not None or lnc is not None:
        name = "neuron_cores" if neuron_cores is not None else "lnc"
        value = neuron_cores if neuron_cores is not None else lnc
        raise InputError(name, value, "applies to compare --infer")
    the_model, workload, budget = _resolve_model(
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
        _chip_list(on),
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
        options=_search_bounds(max_vp=max_vp, max_cp=max_cp),
        deadline_s=deadline_s,
        **budget,
    )
    if as_json:
        emit_json(result.to_dict())
        return
    render_compare(result.to_dict())
    if deadline_s is not None:
        from twofold.cli._deadline import render_deadline_column

        render_deadline_column(result.to_dict())


def _search_bounds(**bounds: int | None) -> Any:
    """`EnumerateOptions` with the given bounds (None when none is given), validated."""
    from twofold.errors import InputError
    from twofold.search.enumerate import EnumerateOptions

    for name, value in bounds.items():
        if value is not None and value < 1:
            raise InputError(name, value, "must be a positive integer")
    given: dict[str, Any] = {k: v for k, v in bounds.items() if v is not None}
    return EnumerateOptions(**given) if given else None


def _resolve_model(
    name: str,
    input_shape: list[str] | None,
    samples: str | None,
    tokens: str | None,
    *,
    global_batch: int,
    seq_len: int,
    precision: str,
    finetune: Any = None,
) -> tuple[Any, Any, dict[str, Any]]:
    """(model, workload, budget) of `compare` / `report`: a catalog id or config.json by name, an
    ONNX file imported (data parallel and ZeRO/FSDP layouts, `compare.plans`) at its own sequence
    length; `--input-shape` and `--samples` only for ONNX models. `finetune` (`--finetune`): a
    LoRA/QLoRA workload, catalog models only."""
    from twofold.errors import InputError

    budget: dict[str, Any] = {"tokens": parse_tokens(tokens)}
    if name.endswith(".onnx"):
        from twofold.cli._imported import _check_seq_len, _import

        if finetune is not None:
            raise InputError("finetune", finetune.method, "an ONNX model is compared with full training only")
        imported = _import(name, input_shape or [], precision)
        _check_seq_len(imported, seq_len, _DEFAULT_SEQ_LEN)
        if samples is not None:
            budget["samples"] = _parse_budget(samples, "samples")
        return imported, _workload(global_batch, imported.seq_len or 1, precision), budget
    if input_shape:
        raise InputError("input_shape", ",".join(input_shape), "applies to an ONNX model (MODEL.onnx) only")
    if samples is not None:
        raise InputError("samples", samples, f"applies to an ONNX model without tokens; {name} counts tokens")
    return name, _workload(global_batch, seq_len, precision, finetune), budget


def _console() -> Any:
    """Rich console; 160 columns when not a terminal, so piped tables keep one line per row."""
    out = console()
    if not out.is_terminal:
        out.width = 160
    return out


def _num(value: float | None, spec: str) -> str:
    return "unknown" if value is None else format(value, spec)


def _layout(lay: dict[str, Any] | None) -> str:
    if lay is None:
        return "does not fit"
    parts = [f"{k}{lay[k]}" for k in ("dp", "tp", "pp", "vp", "cp", "ep") if lay[k] != 1 or k == "dp"]
    return (
        " ".join(parts)
        + f" z{lay['zero']} mb{lay['micro_batch']}"
        + (f" rc:{lay['recompute']}" if lay["recompute"] != "none" else "")
    )


def _ratio_cell(r: dict[str, Any], metric: str) -> str:
    """ "0.51 (0.23-1.12)": a ratio to the reference and its 80% range."""
    ratio = r["ratio_to_reference"].get(metric)
    bounds = (r.get("ratio_range") or {}).get(metric)
    if ratio is None or bounds is None or bounds[0] == bounds[1]:
        return _num(ratio, ".2f")
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

    from twofold.cli._uncertainty import range_cell

    out = _console()
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
            _layout(r["layout"]),
            _num(r.get("step_time_s"), ".3g"),
            _num(r.get(f"{unit}_per_s_per_chip"), ",.0f"),
            range_cell(r.get("uncertainty"), f"{unit}_per_s_per_chip"),
            _num(r.get("mfu"), ".1%"),
            _num(r.get("memory_per_chip_gib"), ".1f"),
            _num(r.get("time_to_train_days"), ",.1f"),
            _num(r.get(f"usd_per_million_{unit}"), ".3f"),
            _num(None if kwh is None else kwh / 1000, ",.1f"),
            _num(r.get(f"perf_per_watt_{unit}_per_j"), ".3g"),
            _num(r.get(f"perf_per_dollar_{unit}_per_usd"), ",.0f"),
            "cannot size" if _unsized(r) else _ratio_cell(r, _ratio_column(d)[0]),
        )
    out.print(table)
    thin = list(
        dict.fromkeys(
            part for r in d["rows"] if r.get("thin_evidence") for part in r["thin_evidence"].split("; ")
        )
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
                *(_num(f.get(n), ".3f") for n in names),
                _num(r["ratio_to_reference"].get(metric), ".3f"),
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


@app.command("claim")
def claim(
    text: str = typer.Argument(..., help='The claim, e.g. "trn2 is 4x trn1".'),
    metric: str | None = typer.Option(
        None, "--metric", help="throughput, perf-per-dollar, perf-per-watt, latency."
    ),
    tolerance: float = typer.Option(
        0.1, "--tolerance", help="Holds when the ratio >= (1 - tolerance) x claim."
    ),
    price: list[str] | None = _PRICE_OPTION,
    price_kind: str = _PRICE_KIND_OPTION,
    min_quality: str | None = _MIN_QUALITY_OPTION,
    power: list[str] | None = _POWER_OPTION,
    idle_fraction: float | None = typer.Option(None, "--idle-fraction", help=_IDLE_HELP),
    report_path: str | None = typer.Option(None, "--report", help="Also write an HTML report here."),
    workers: int | None = typer.Option(
        None, "--workers", help="Plan on N local processes (default: 1, in this process)."
    ),
    ray: str | None = typer.Option(
        None, "--ray", help="Plan on Ray: 'auto' (local or RAY_ADDRESS) or an address."
    ),
    out: str | None = typer.Option(
        None, "--out", help="Keep the plans in this sweep store (default: a temporary one)."
    ),
    finetune: str = FINETUNE_OPTION,
    lora_rank: int = LORA_RANK_OPTION,
    lora_targets: str = LORA_TARGETS_OPTION,
    base_precision: str | None = BASE_PRECISION_OPTION,
    tokens: str | None = typer.Option(None, "--tokens", help="With --deadline: tokens to train (1e9, 2B)."),
    deadline: str | None = typer.Option(
        None, "--deadline", help="Cost claims: the cheapest bills to train --tokens by then (48h, 3d)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Check a vendor claim across the catalog's training workloads: where it holds, and why.
    With --finetune lora/qlora, the training workloads are fine-tuning runs (serving ones left out).
    With --deadline and --tokens, a cost claim compares each chip's cheapest run that trains the
    tokens by the deadline (serving workloads left out; other metrics exit 2)."""
    from twofold.compare.claim import evaluate_claim
    from twofold.errors import InputError

    budget = None if tokens is None else _parse_budget(tokens, "tokens")
    if deadline is not None and (workers is not None or ray is not None or out is not None):
        raise InputError(
            "deadline", deadline, "is planned in this process: leave --workers, --ray and --out unset"
        )

    _check_price_kind(price_kind)
    min_quality = _check_min_quality(min_quality)
    the_finetune = finetune_of(finetune, lora_rank, lora_targets, base_precision)
    if workers is not None and workers < 1:
        raise InputError("workers", workers, "must be a positive integer")
    if workers is not None and ray is not None:
        raise InputError("workers", workers, "sizes the local pool; with --ray the cluster's CPUs decide")
    if ray is not None and not ray.strip():
        raise InputError("ray", ray, "must be 'auto' or a cluster address")
    if ray is not None:
        from twofold.sweep.ray_runner import require_ray

        require_ray(ray)
    if out is not None:
        from twofold.sweep.store import SweepStore

        SweepStore(out).close()  # a bad --out fails before any planning
    if report_path is not None:
        from twofold.report.plots import require_matplotlib

        require_matplotlib()
        _check_out(report_path)
    prices, powers = _overrides(price, power)
    # Always on the sweep engine (in this process unless --workers or --ray): one code path.
    result = evaluate_claim(
        text,
        metric=metric,
        prices=prices,
        powers=powers,
        idle_fraction=idle_fraction,
        price_kind=price_kind,
        min_quality=min_quality,
        tolerance=tolerance,
        workers=workers if workers is not None or ray is not None else 1,
        ray_address=ray,
        store=out,
        finetune=the_finetune,
        tokens=budget,
        deadline_s=deadline,
    )
    if report_path is not None:
        from twofold.report import ReportData, write_report

        write_report(
            report_path, ReportData(title=f"twofold: claim \u201c{result.claim.text}\u201d", claim=result)
        )
    if as_json:
        emit_json(result.to_dict())
        return
    _render_claim(result.to_dict(), report_path)


def _serving_usd(r: dict[str, Any]) -> str:
    """A serving row's "$/M out (on-demand): trn2 1.94, h100 no price": each chip's $ per million
    output tokens at its price of the claim's kind."""
    usd = r.get("usd_per_million_output_tokens")
    if not usd:
        return ""
    cells = ", ".join(f"{chip} {'no price' if v is None else format(v, '.2f')}" for chip, v in usd.items())
    return f"$/M out ({r.get('price_kind') or 'on-demand'}): {cells}"


def _render_claim(d: dict[str, Any], report_path: str | None) -> None:
    from rich.table import Table

    out = _console()
    c = d["claim"]
    if d["evaluated"] == 0 and len({r["note"] for r in d["rows"]}) == 1:
        out.print(d["verdict"])  # one reason for every workload (an unpublished figure): no table
        for n in d["notes"]:
            out.print(n)
        return
    table = Table(
        title=f"{c['chip_a']} vs {c['chip_b']}, {c['metric']}: claimed {c['multiplier']:.3g}x, "
        f"holds at >= {d['threshold']:.3g}x"
    )
    for col in ("workload", "kind", "ratio", "80% range", "verdict", "main cause", "next cause", "note"):
        table.add_column(col, justify="right" if col in ("ratio", "80% range") else "left")
    for r in d["rows"]:
        bounds = r.get("ratio_range")
        verdict = r.get("verdict") or ("unknown" if r["holds"] is None else "yes" if r["holds"] else "no")
        table.add_row(
            r["workload"]["label"],
            r["workload"]["kind"],
            _num(r["ratio"], ".2f"),
            "-" if bounds is None else f"{bounds[0]:.2f}-{bounds[1]:.2f}",
            verdict.replace(" at this evidence", ""),
            r["dominant_cause"] or "",
            r["secondary_cause"] or "",
            "; ".join(x for x in (r["note"], _serving_usd(r)) if x),
        )
    out.print(table)
    out.print(d["verdict"])
    for n in d["notes"]:
        out.print(n)
    run = d.get("run")
    if run is not None and (run["store"] is not None or run["executor"] != "local:1"):
        where = f", {run['skipped']} already in {run['store']}" if run["store"] else ""
        out.print(f"plans: {run['planned']} planned on {run['executor']}{where}; {run['elapsed_s']:.1f} s")
    if report_path:
        out.print(f"report written to {report_path}")


@app.command("report")
def report(
    model: str | None = typer.Option(
        None, "--model", help="Catalog model id, config.json or MODEL.onnx (with --input-shape)."
    ),
    input_shape: list[str] | None = _SHAPE_OPTION,
    samples: str | None = typer.Option(
        None, "--samples", help="Sample budget of an ONNX model without tokens (1.2M); no default."
    ),
    on: str | None = typer.Option(None, "--on", help="Chips, comma-separated."),
    out: str = typer.Option(..., "--out", help="HTML file to write (atomically)."),
    sweep_db: str | None = typer.Option(
        None, "--sweep", help="Report a sweep store's results instead (see docs/sweep.md)."
    ),
    spec_path: str | None = typer.Option(
        None, "--spec", help="With --sweep: only this spec's results (default: all of this version)."
    ),
    chips: int = typer.Option(64, "--chips", help="Chips per system for the side-by-side table."),
    claim_text: str | None = typer.Option(None, "--claim", help="Also check this claim."),
    tokens: str | None = typer.Option(None, "--tokens", help="Token budget (2e12, 2T)."),
    reference: str | None = typer.Option(None, "--reference", help="Chip the ratios divide by."),
    global_batch: int = typer.Option(DEFAULT_GLOBAL_BATCH, "--global-batch", help=GLOBAL_BATCH_HELP),
    seq_len: int = typer.Option(_DEFAULT_SEQ_LEN, "--seq-len", help="Tokens per sequence."),
    precision: str = typer.Option("bf16", "--precision", help="bf16, fp8, ..."),
    price: list[str] | None = _PRICE_OPTION,
    price_kind: str = _PRICE_KIND_OPTION,
    min_quality: str | None = _MIN_QUALITY_OPTION,
    power: list[str] | None = _POWER_OPTION,
    idle_fraction: float | None = typer.Option(None, "--idle-fraction", help=_IDLE_HELP),
    stack: str = typer.Option("auto", "--stack", help=STACK_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document (the path written)."),
) -> None:
    """Write one self-contained HTML report: table, factors, breakdown, scaling, cost Pareto, claim;
    or, with --sweep DB, a sweep's stored results as tables and plots."""
    from twofold.errors import InputError

    if sweep_db is not None:
        path = _sweep_report(sweep_db, spec_path, out)
        if as_json:
            emit_json({"out": path})
        else:
            console().print(f"report written to {path}")
        return
    if spec_path is not None:
        raise InputError("spec", spec_path, "selects a sweep's results; give it with --sweep DB")
    if model is None or on is None:
        raise InputError("model" if model is None else "on", None, "is required (or give --sweep DB)")
    from twofold.compare.claim import evaluate_claim
    from twofold.compare.plans import target
    from twofold.report import compare_report, write_report
    from twofold.report.plots import require_matplotlib
    from twofold.workload.registry import get_model

    _check_price_kind(price_kind)
    min_quality = _check_min_quality(min_quality)
    require_matplotlib()  # fail before minutes of planning, not after
    _check_out(out)
    prices, powers = _overrides(price, power)
    the_model, workload, budget = _resolve_model(
        model, input_shape, samples, tokens, global_batch=global_batch, seq_len=seq_len, precision=precision
    )
    if isinstance(the_model, str):
        the_model = get_model(the_model)
    economics: dict[str, Any] = {
        "prices": prices,
        "powers": powers,
        "idle_fraction": idle_fraction,
        "price_kind": price_kind,
        "min_quality": min_quality,
    }
    targets = [target(n, **economics, stack=check_stack(stack)) for n in _chip_list(on)]
    claim_result = None
    if claim_text is not None:
        claim_result = evaluate_claim(claim_text, **economics, stack=check_stack(stack))
    data = compare_report(
        the_model,
        targets,
        chips=chips,
        workload=workload,
        claim=claim_result,
        reference=reference,
        **budget,
    )
    path = write_report(out, data)
    if as_json:
        emit_json({"out": path})
        return
    console().print(f"report written to {path}")


def _sweep_report(db: str, spec_path: str | None, out: str) -> str:
    """A sweep store's results as one HTML page: one spec's (`--spec`), else every row of this
    twofold version, regrouped into specs by `sweep.report.spec_from_rows`."""
    from pathlib import Path

    from twofold import __version__
    from twofold.errors import InputError
    from twofold.sweep import SweepStore, load_spec, scenario_key
    from twofold.sweep.report import render_html, spec_from_rows

    if not Path(db).expanduser().is_file():
        raise InputError("sweep", db, "no such sweep store (twofold sweep --out writes one)")
    _check_out(out)
    with SweepStore(db) as store:
        if spec_path is not None:
            spec = load_spec(spec_path)
            specs = [(spec, store.results(scenario_key(s, __version__) for s in spec.scenarios()))]
        else:
            rows = [r for r in store.results() if r.version == __version__]
            specs = [(s, rows) for s in spec_from_rows(rows, name=Path(db).name)]
    if not any(rows for _, rows in specs):
        raise InputError("sweep", db, f"holds no results of twofold {__version__} for this report")
    pages = [render_html(spec, rows, version=__version__) for spec, rows in specs]
    # Several specs (modes, objectives) in one store: their bodies one after the other in one page.
    body = "".join(p[p.index("<body>") + len("<body>") : p.rindex("</body>")] for p in pages)
    page = pages[0][: pages[0].index("<body>") + len("<body>")] + body + "</body></html>\n"
    from twofold.report import write_atomic

    return str(write_atomic(Path(out).expanduser(), page))
