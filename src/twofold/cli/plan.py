"""`twofold plan`: search every valid parallel layout and show the best ones."""

from __future__ import annotations

from typing import Any

import typer

from twofold.checks import one_of, positive_ints
from twofold.cli._app import app, console, emit_json
from twofold.cli._options import (
    BASE_PRECISION_OPTION,
    DEFAULT_GLOBAL_BATCH,
    DEFAULT_SEQ_LEN,
    FINETUNE_OPTION,
    GLOBAL_BATCH_HELP,
    LORA_RANK_OPTION,
    LORA_TARGETS_OPTION,
    SERVING_DEFAULTS,
    STACK_HELP,
    check_stack,
    chip_list,
    finetune_of,
    load_cli_model,
    parse_tokens,
    refuse_serving_flags,
)
from twofold.cli._options import (
    headroom as headroom_of,
)
from twofold.cli._render import finetune_label, print_imported_facts
from twofold.cli._uncertainty import evidence_text, short_range, with_plan_uncertainty
from twofold.errors import InputError, NoAnswer

__all__ = ["plan"]

_OBJECTIVE_HELP = (
    "What to rank by: throughput (tokens/s/chip), cost ($/M tokens), energy (J/token), "
    "time (to train --tokens); with --infer: throughput, latency, cost."
)
_PRICE_HELP = (
    "--objective cost or --infer: USD per chip-hour, CHIP=USD (repeat or comma-separate); overrides the "
    "catalog."
)
_POWER_HELP = "--objective energy: maximum (TDP) power in watts, CHIP=W (repeat or comma-separate)."
_HEADROOM_HELP = "Fraction of each chip's memory kept free: fit within capacity x (1 - this); default 0.05."
_ON_HELP = "--deadline: chips to choose from, comma-separated (chip or chip@system): trn2,h100,tpu-v5e."
_DEADLINE_HELP = (
    "Pick the cheapest chip, count, layout and price kind that trains --tokens by this time: 90m, 48h, 3d "
    "(--objective cost; docs/search.md)."
)
_TIE_HELP = "Relative gap within which layouts tie on the objective; ties go to the simplest; default 0.03."


@app.command("plan")
def plan(
    model: str = typer.Option(..., "--model", help="Catalog model id or path to a config.json."),
    chip: str | None = typer.Option(None, "--chip", help="Chip id or alias (implies its standard system)."),
    system: str | None = typer.Option(None, "--system", help="Another catalog system for the chip."),
    chips: int | None = typer.Option(
        None,
        "--chips",
        help="Number of chips (with --deadline: the most; --infer --request-rate: the most a replica takes).",
    ),
    on: str | None = typer.Option(None, "--on", help=_ON_HELP),
    deadline: str | None = typer.Option(None, "--deadline", help=_DEADLINE_HELP),
    samples: str | None = typer.Option(
        None, "--samples", help="--deadline: budget in sequences (x --seq-len tokens), instead of --tokens."
    ),
    global_batch: int = typer.Option(DEFAULT_GLOBAL_BATCH, "--global-batch", help=GLOBAL_BATCH_HELP),
    seq_len: int = typer.Option(DEFAULT_SEQ_LEN, "--seq-len", help="Tokens per sequence."),
    allow_long_context: bool = typer.Option(
        False, "--allow-long-context", help="Allow --seq-len past the model's max_position_embeddings."
    ),
    precision: str = typer.Option("bf16", "--precision", help="fp32, bf16, fp8, mxfp8, fp4."),
    objective: str | None = typer.Option(None, "--objective", help=_OBJECTIVE_HELP),
    price: list[str] = typer.Option([], "--price", help=_PRICE_HELP),  # noqa: B008 - repeatable
    price_kind: str | None = typer.Option(
        None,
        "--price-kind",
        help="--objective cost or --infer: on-demand (default), capacity-block, spot, committed-1y or "
        "committed-3y (a chip without one is unknown, never priced at another kind); with --deadline: "
        "only this kind (default: on-demand, capacity-block and spot).",
    ),
    min_quality: str | None = typer.Option(
        None,
        "--min-quality",
        help="--objective cost, --infer: only catalog prices of grade A, B or C or better.",
    ),
    power: list[str] = typer.Option([], "--power", help=_POWER_HELP),  # noqa: B008 - repeatable
    idle_fraction: float | None = typer.Option(
        None, "--idle-fraction", help="--objective energy: idle power / TDP (default: catalog, else 0.2)."
    ),
    tokens: str | None = typer.Option(
        None,
        "--tokens",
        help="--objective time or --deadline: token budget (2e12, 2T); time: default 20 x params.",
    ),
    top: int = typer.Option(10, "--top", help="How many layouts to list."),
    mem_headroom: float | None = typer.Option(None, "--mem-headroom", help=_HEADROOM_HELP),
    tie_tolerance: float | None = typer.Option(None, "--tie-tolerance", help=_TIE_HELP),
    tp: int | None = typer.Option(None, "--tp", help="Search only this tensor-parallel size."),
    pp: int | None = typer.Option(None, "--pp", help="Search only this number of pipeline stages."),
    cp: int | None = typer.Option(None, "--cp", help="Search only this context-parallel size."),
    ep: int | None = typer.Option(None, "--ep", help="Search only this expert-parallel size."),
    vp: int | None = typer.Option(None, "--vp", help="Search only this number of virtual stages per rank."),
    max_vp: int | None = typer.Option(None, "--max-vp", help="Search virtual stages per rank up to this."),
    max_cp: int | None = typer.Option(None, "--max-cp", help="Search context-parallel sizes up to this."),
    infer: bool = typer.Option(False, "--infer", help="Plan serving (layout and batch) instead of training."),
    input_tokens: int | None = typer.Option(
        None, "--input-tokens", help="--infer: prompt tokens per sequence (default 1024)."
    ),
    output_tokens: int | None = typer.Option(
        None, "--output-tokens", help="--infer: generated tokens per sequence (default 256)."
    ),
    max_ttft_ms: float | None = typer.Option(None, "--max-ttft-ms", help="--infer: TTFT target."),
    max_tpot_ms: float | None = typer.Option(None, "--max-tpot-ms", help="--infer: TPOT target."),
    request_rate: float | None = typer.Option(None, "--request-rate", help="--infer: requests/s to serve."),
    p99_ttft_ms: float | None = typer.Option(None, "--p99-ttft-ms", help="--request-rate: p99 TTFT target."),
    p99_itl_ms: float | None = typer.Option(None, "--p99-itl-ms", help="--request-rate: p99 ITL target."),
    weight_precision: str | None = typer.Option(None, "--weight-precision", help="--infer: int8, fp8, ..."),
    kv_precision: str | None = typer.Option(None, "--kv-precision", help="--infer: KV-cache format."),
    pad_heads: bool = typer.Option(False, "--pad-heads", help="--infer: pad heads/FFN to a multiple of tp."),
    neuron_cores: int | None = typer.Option(
        None, "--neuron-cores", help="--infer on Neuron: --chips as logical NeuronCores (AWS docs' count)."
    ),
    lnc: int | None = typer.Option(None, "--lnc", help="--infer: logical NeuronCore config (trn2: 2)."),
    input_shape: list[str] = typer.Option(  # noqa: B008 - typer's repeatable option
        [], "--input-shape", help="--model X.onnx: shape of a dynamic input, NAME=8x3x224x224 (repeatable)."
    ),
    stack: str = typer.Option("auto", "--stack", help=STACK_HELP),
    finetune: str = FINETUNE_OPTION,
    lora_rank: int = LORA_RANK_OPTION,
    lora_targets: str = LORA_TARGETS_OPTION,
    base_precision: str | None = BASE_PRECISION_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Search every valid layout (dp, tp, pp, vp, cp, ep, ZeRO, micro-batch, recompute) and rank them."""
    # lazy: start-up time
    from twofold.economics.prices import parse_chip_values
    from twofold.hardware.catalog import get_chip, system_for
    from twofold.hardware.types import PRECISIONS
    from twofold.parallel.layout import TrainingWorkload
    from twofold.search.enumerate import EnumerateOptions
    from twofold.search.plan import DEFAULT_TIE_TOLERANCE, check_objective, plan_training
    from twofold.workload.model import ModelConfig
    from twofold.workload.registry import model_spec_kind

    bounds: dict[str, Any] = {
        "tp": tp,
        "pp": pp,
        "cp": cp,
        "ep": ep,
        "vp": vp,
        "max_vp": max_vp,
        "max_cp": max_cp,
    }
    positive_ints(**bounds)
    headroom = headroom_of(mem_headroom)  # validated before any model is read
    tolerance = DEFAULT_TIE_TOLERANCE if tie_tolerance is None else tie_tolerance

    if deadline is not None or on is not None or samples is not None:  # search.deadline
        from twofold.cli._deadline import plan_by_deadline, token_budget  # lazy: start-up time

        if deadline is None:
            name, value = ("on", on) if on is not None else ("samples", samples)
            raise InputError(name, value, "applies with --deadline (--chip and --chips plan one count)")
        if infer:
            raise InputError("deadline", deadline, "plans training; --infer has no deadline mode")
        if objective not in (None, "cost"):
            raise InputError("objective", objective, "--deadline picks the cheapest option: --objective cost")
        if (on is None) == (chip is None):
            raise InputError("on", on, "--deadline chooses among --on CHIP,CHIP,... or one --chip, not both")
        if on is not None and system is not None:
            raise InputError("system", system, "with --on, name each chip's system as chip@system")
        if model_spec_kind(model) != "catalog":
            raise InputError("model", model, "--deadline plans catalog models and config.json files")
        refuse_serving_flags(
            input_tokens=input_tokens, output_tokens=output_tokens, max_ttft_ms=max_ttft_ms,
            max_tpot_ms=max_tpot_ms, weight_precision=weight_precision, kv_precision=kv_precision,
            pad_heads=pad_heads or None,
        )  # fmt: skip
        energy_flags: list[tuple[str, object]] = [
            ("power", ",".join(power)),
            ("idle_fraction", idle_fraction),
        ]
        for name, given in energy_flags:
            if given:
                raise InputError(name, given, "applies to --objective energy, not to --deadline")
        positive_ints(chips=chips, global_batch=global_batch, seq_len=seq_len)
        one_of("precision", precision, PRECISIONS)
        budget = token_budget(tokens, samples, seq_len)
        workload = TrainingWorkload(
            global_batch=global_batch,
            seq_len=seq_len,
            precision=precision,
            finetune=finetune_of(finetune, lora_rank, lora_targets, base_precision),
        )
        if on is not None:
            names = chip_list(on)
        else:
            assert chip is not None  # (on is None) == (chip is None) was refused above
            names = [chip if system is None else f"{chip}@{system}"]
        return plan_by_deadline(
            model=model,
            names=names,
            workload=workload,
            tokens=budget,
            deadline=deadline,
            price_kind=price_kind,
            prices=parse_chip_values(price, "price", "USD per chip-hour"),
            min_quality=min_quality,
            max_chips=chips,
            stack=check_stack(stack),
            options=EnumerateOptions(**bounds),
            plan_kwargs={
                "mem_headroom": headroom,
                "tie_tolerance": tolerance,
                "allow_long_context": allow_long_context,
            },
            as_json=as_json,
        )
    if chip is None:
        raise InputError("chip", None, "is required (or --deadline with --on)")
    if chips is None and not (infer and neuron_cores is not None):
        raise InputError("chips", None, "is required (or --deadline with --on; --infer: or --neuron-cores)")
    objective = "throughput" if objective is None else objective
    price_kind = "on-demand" if price_kind is None else price_kind

    if infer:  # serving: twofold.search.infer_plan (objectives throughput, latency, cost)
        from twofold.cli._inference import plan_infer, refuse_training_flags  # lazy: start-up time
        from twofold.economics.prices import check_min_quality, price_for  # lazy: start-up time

        prices = parse_chip_values(price, "price", "USD per chip-hour")
        min_quality = check_min_quality(min_quality)
        price_for(system_for(get_chip(chip), system), get_chip(chip), kind=price_kind)  # a bad kind: exit 2
        if request_rate is not None:  # capacity at a rate (serving.capacity); --chips caps one replica
            from twofold.cli._capacity import plan_capacity_infer  # lazy: start-up time

            return plan_capacity_infer(
                model=model, chip=chip, system=system, precision=precision, max_replica_chips=chips,
                input_tokens=1024 if input_tokens is None else input_tokens,
                output_tokens=256 if output_tokens is None else output_tokens,
                weight_precision=weight_precision, kv_precision=kv_precision, request_rate=request_rate,
                p99_ttft_ms=p99_ttft_ms, p99_itl_ms=p99_itl_ms, as_json=as_json, prices=prices,
                price_kind=price_kind, min_quality=min_quality, neuron_cores=neuron_cores, lnc=lnc,
            )  # fmt: skip

        refuse_training_flags(
            finetune=(finetune, "full"),
            seq_len=(seq_len, DEFAULT_SEQ_LEN),
            global_batch=(global_batch, DEFAULT_GLOBAL_BATCH),
            power=(power, []),
            idle_fraction=(idle_fraction, None),
            tokens=(tokens, None),
            tie_tolerance=(tie_tolerance, None),
            **{name: (value, None) for name, value in bounds.items()},
        )
        return plan_infer(
            model=model, chip=chip, system=system, chips=chips,
            input_tokens=SERVING_DEFAULTS["input_tokens"] if input_tokens is None else input_tokens,
            output_tokens=SERVING_DEFAULTS["output_tokens"] if output_tokens is None else output_tokens,
            precision=precision, weight_precision=weight_precision,
            kv_precision=kv_precision, max_ttft_ms=max_ttft_ms, max_tpot_ms=max_tpot_ms, objective=objective,
            pad_heads=pad_heads, top=top, as_json=as_json, mem_headroom=headroom, prices=prices,
            price_kind=price_kind, min_quality=min_quality, neuron_cores=neuron_cores, lnc=lnc,
        )  # fmt: skip
    refuse_serving_flags(
        input_tokens=input_tokens, output_tokens=output_tokens, max_ttft_ms=max_ttft_ms,
        max_tpot_ms=max_tpot_ms, weight_precision=weight_precision, kv_precision=kv_precision,
        pad_heads=pad_heads or None, neuron_cores=neuron_cores, lnc=lnc,
    )  # fmt: skip
    if chips is None:
        raise InputError("chips", None, "is required: the number of chips to plan for")
    positive_ints(chips=chips, global_batch=global_batch, seq_len=seq_len, top=top)
    check_objective(objective)
    prices = parse_chip_values(price, "price", "USD per chip-hour")
    powers = parse_chip_values(power, "power", "W")
    tokens_to_train = parse_tokens(tokens)
    one_of("precision", precision, PRECISIONS)
    the_model, the_seq_len = load_cli_model(model, input_shape, precision, seq_len)
    if not the_model.counts_tokens and objective != "throughput":
        raise InputError(
            "objective", objective, f"{the_model.name} has no tokens: it is planned by throughput only"
        )
    the_chip = get_chip(chip)
    the_system = system_for(the_chip, system)
    workload = TrainingWorkload(
        global_batch=global_batch,
        seq_len=the_seq_len,
        precision=precision,
        finetune=finetune_of(finetune, lora_rank, lora_targets, base_precision),
    )
    result = plan_training(
        the_model,
        the_system,
        chips,
        workload,
        objective=objective,
        top_k=top,
        chip=the_chip,
        prices=prices,
        powers=powers,
        price_kind="on-demand" if price_kind is None else price_kind,
        min_quality=min_quality,
        idle_fraction=idle_fraction,
        tokens=tokens_to_train,
        mem_headroom=headroom,
        tie_tolerance=tolerance,
        options=EnumerateOptions(**bounds),
        stack=check_stack(stack),
        allow_long_context=allow_long_context,
    )

    d = result.to_dict()
    if isinstance(the_model, ModelConfig):  # the intervals' evidence is catalog architectures'
        d = with_plan_uncertainty(d, the_chip, check_stack(stack), seq_len=workload.seq_len)
    else:  # an imported model (`estimate.imported`)
        d["unsupported_ops"] = dict(sorted(the_model.unsupported.items()))
        if not the_model.counts_tokens:
            d["workload"]["seq_len"] = None
    if as_json:
        emit_json(d)
    else:
        _render(d)
    if d["best"] is None:  # a valid question without an answer: exit 1 (`errors.NoAnswer`)
        raise NoAnswer(d["explanation"][0] if d["explanation"] else "no layout fits")


# objective -> (column title, row key, format)
_OBJECTIVE_COLUMNS: dict[str, tuple[str, str, str]] = {
    "cost": ("$/Mtok", "usd_per_million_tokens", ".3g"),
    "energy": ("J/tok", "energy_per_token_j", ".3g"),
    "time": ("days", "time_to_train_days", ".3g"),
}


def _inputs_lines(d: dict[str, Any]) -> list[str]:
    """What the objective's figures assume: the price, the power model or the token budget."""
    inputs = d.get("objective_inputs") or {}
    lines = []
    if "price" in inputs:
        p = inputs["price"]
        lines.append(
            f"$/Mtok: dollars per million tokens at ${p['usd_per_chip_hour']:g}/chip-h ({p['note']})"
        )
    if "power" in inputs:
        p = inputs["power"]
        lines.append(
            f"J/tok: joules per token, P = {p['idle_w']:g} W idle ({p['idle_source']}) + "
            f"({p['tdp_w']:g} - {p['idle_w']:g}) W x busy share (TDP {p['tdp_source']})"
        )
    if "tokens" in inputs:
        lines.append(f"days: time to train {inputs['tokens']:.4g} tokens on {d['chips']:,} chips")
    return lines


def _render(d: dict[str, Any]) -> None:
    from rich import box
    from rich.table import Table

    out = console()
    w = d["workload"]
    title = (
        f"{d['model']} on {d['chips']} x {d['chip']} ({d['system']}), global_batch={w['global_batch']}, "
        f"seq_len={w['seq_len']}, {w['precision']}{finetune_label(w)}: top layouts by {d['objective']}"
    )
    # ep only matters for MoE models; leaving it out of dense tables keeps the table in 80 columns.
    axes = ["dp", "tp", "pp", "vp", "cp"]
    if any(row["layout"]["ep"] > 1 for row in d["top"]):
        axes.append("ep")
    axes += ["zero", "micro_batch"]
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    for col in ("#", *(a if a != "micro_batch" else "mb" for a in axes)):
        table.add_column(col, justify="right")
    table.add_column("recompute")
    # The objective's column takes step_s's place (tok/s carries the speed), keeping 80 columns.
    extra = _OBJECTIVE_COLUMNS.get(d["objective"])
    # An imported model counts samples (its rows carry samples_per_s_per_chip, `search.plan`).
    samples = bool(d["top"]) and "samples_per_s_per_chip" in d["top"][0]
    rate_col, rate_key, rate_fmt = (
        ("samples/s", "samples_per_s_per_chip", ",.1f")
        if samples
        else ("tok/s", "tokens_per_s_per_chip", ",.0f")
    )
    for col in (rate_col, "80%", "MFU", extra[0] if extra else "step_s", "GiB"):
        table.add_column(col, justify="right", no_wrap=col == "80%")
    pareto = {tuple(sorted(p["layout"].items())) for p in d["pareto"]}
    for rank, row in enumerate(d["top"], start=1):
        lay = row["layout"]
        mark = "*" if tuple(sorted(lay.items())) in pareto else ""
        table.add_row(
            f"{rank}{mark}",
            *(str(lay[k]) for k in axes),
            str(lay["recompute"]),
            format(row[rate_key], rate_fmt),
            short_range(row.get("uncertainty"), "tokens_per_s_per_chip"),
            f"{row['mfu']:.1%}",
            format(row[extra[1]], extra[2]) if extra else f"{row['step_time_s']:.3g}",
            f"{row['memory_per_chip_gib']:.1f}",
        )
    if d["top"]:
        out.print(table)
        if d.get("ties", 0) > 1:
            out.print(
                f"{d['ties']} layouts within {d['tie_tolerance']:.0%} of the best; picked the simplest "
                "(fewest parallel dimensions, then smallest vp, cp, tp x pp, memory)"
            )
        if d.get("usable_memory_gib") is not None:
            out.print(
                f"best: {d['best']['memory_per_chip_gib']:.1f} of {d['usable_memory_gib']:.3g} GiB usable "
                f"per chip ({d['hbm_capacity_gib']:g} GiB, {d['mem_headroom']:.0%} headroom)"
            )
        step = "" if extra else "; step_s: seconds per step"
        unit = "samples/s: samples" if samples else "tok/s: tokens"
        out.print(f"{unit} per second per chip; GiB: memory per chip{step}")
        best_u = (d["best"] or {}).get("uncertainty")
        if best_u:
            out.print(
                f"80%: tok/s interval from the held-out error of the shipped rows "
                f"({evidence_text(best_u['evidence'])}; {best_u['evidence']['rows_chip']} rows on this chip)"
            )
        out.print("* also on the Pareto front of throughput against memory per chip")
        for line in _inputs_lines(d):
            out.print(line)
    out.print(
        f"{d['evaluated_layouts']:,} valid layouts evaluated ({d['candidate_layouts']:,} candidates), "
        f"{d['fitting_layouts']:,} fit in memory, {len(d['pareto'])} on the Pareto front; "
        f"{d['elapsed_s']:.2f} s"
    )
    for line in d["explanation"]:
        out.print(f"[yellow]{line}[/yellow]")
    for note in d.get("notes", ()):
        out.print(f"note: {note}")
    print_imported_facts(out, d)
