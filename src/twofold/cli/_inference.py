"""The `--infer` branches of `twofold estimate` and `twofold plan`: build the serving objects, call
the API, render. Kept apart so that the training verbs' modules only gain their flags and one call."""

from __future__ import annotations

from typing import Any

from twofold.checks import positive_ints
from twofold.cli._app import console, emit_json
from twofold.cli._render import price_cell, price_line, print_memory_and_notes, with_usable_memory
from twofold.cli._uncertainty import range_cell, range_note
from twofold.errors import InputError, NoAnswer

__all__ = [
    "LOAD_DEFAULTS",
    "estimate_infer",
    "is_neuron",
    "neuron_chips",
    "neuron_tp",
    "plan_infer",
    "price_of",
    "refuse_training_flags",
    "serving_config",
    "usd_text",
]


def refuse_training_flags(**flags: tuple[object, object]) -> None:
    """A training-only flag given with --infer (value differs from its default) is a mistake, not ignored."""

    for name, (value, default) in flags.items():
        if value != default:
            raise InputError(
                name,
                value,
                "is a training flag; with --infer give --batch, --input-tokens and --output-tokens",
            )


def _workload(
    batch: int, input_tokens: int, output_tokens: int, precision: str, weight: str | None, kv: str | None
):
    from twofold.estimate.inference_types import InferenceWorkload  # lazy: start-up time

    return InferenceWorkload(
        batch=batch,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        precision=precision,
        weight_precision=weight,
        kv_precision=kv,
    )


def neuron_tp(chip: Any, neuron_cores: int | None, lnc: int | None, tp: int) -> tuple[int, str]:
    """(tp in chips, how it reads in NeuronCores) from `--neuron-cores N [--lnc L]`, the way the AWS
    Neuron docs count tensor parallelism (TP_DEGREE / --tensor-parallel-size in logical NeuronCores).

    A chip has `compute_units` physical NeuronCores; LNC (logical NeuronCore config) groups L of
    them into one logical core: default 2 on Trainium2 and later (NeuronCore-v3+; AWS Neuron docs,
    "Logical NeuronCore configuration"), 1 on Trainium1 / Inferentia2. tp = N / (cores / L).
    """

    if not is_neuron(chip):
        if neuron_cores is not None or lnc is not None:
            name, value = ("neuron_cores", neuron_cores) if neuron_cores is not None else ("lnc", lnc)
            raise InputError(name, value, f"counts AWS NeuronCores; {chip.id} has none")
        return tp, ""
    cores = int(chip.compute_units or 1)
    lnc = lnc if lnc is not None else (2 if cores >= 8 else 1)
    if lnc < 1 or cores % lnc:
        raise InputError("lnc", lnc, f"must divide the {cores} NeuronCores of a {chip.id} chip")
    per_chip = cores // lnc
    if neuron_cores is None:
        return tp, f"{tp * per_chip} logical NeuronCores at LNC={lnc}"
    if tp != 1:
        raise InputError("tp", tp, "give --tp (chips) or --neuron-cores, not both")
    if neuron_cores < 1 or neuron_cores % per_chip:
        raise InputError(
            "neuron_cores",
            neuron_cores,
            f"is not a whole number of {chip.id} chips ({per_chip} logical NeuronCores a chip at LNC={lnc})",
        )
    return neuron_cores // per_chip, f"{neuron_cores} logical NeuronCores at LNC={lnc}"


def is_neuron(chip: Any) -> bool:
    """An AWS Trainium or Inferentia chip, whose tensor parallelism the Neuron docs count in cores."""
    return chip.architecture == "systolic" and chip.id.startswith(("trn", "inf"))


def neuron_chips(chip: Any, neuron_cores: int | None, lnc: int | None, chips: int | None) -> int | None:
    """Chips from `--neuron-cores N [--lnc L]` (`neuron_tp`'s conversion) for `plan --infer` and
    `compare --infer`: `chips` when --neuron-cores is not given; given both, they must agree."""

    if neuron_cores is None:
        neuron_tp(chip, None, lnc, 1)  # validates --lnc
        return chips
    n, _ = neuron_tp(chip, neuron_cores, lnc, 1)
    if chips is not None and chips != n:
        raise InputError("chips", chips, f"!= --neuron-cores {neuron_cores} ({n} {chip.id} chips); give one")
    return n


def price_of(chip: Any, system: Any, prices: dict[str, float], kind: str, min_quality: str | None) -> Any:
    """The `economics.Price` a serving verb reports dollars at: `--price` for this chip, else the
    catalog's price of `--price-kind` of grade `--min-quality` or better, else unknown."""
    from twofold.economics.prices import price_for  # lazy: start-up time

    return price_for(system, chip, prices, kind, min_quality=min_quality)


def estimate_infer(
    *,
    model: str,
    chip: str,
    system: str | None,
    chips: int | None,
    dp: int | None,
    tp: int,
    pp: int,
    ep: int,
    batch: int | None,
    input_tokens: int | None,
    output_tokens: int | None,
    precision: str,
    weight_precision: str | None,
    kv_precision: str | None,
    pad_heads: bool,
    as_json: bool,
    mem_headroom: float,
    load: dict[str, Any] | None = None,
    neuron_cores: int | None = None,
    lnc: int | None = None,
    prices: dict[str, float] | None = None,
    price_kind: str = "on-demand",
    min_quality: str | None = None,
) -> None:
    """`twofold estimate --infer`: dp from --chips / (tp*pp*ep) when --dp is not given. With `load`
    (--max-batch and --concurrency or --request-rate), the requests are simulated through the
    engine's scheduler (`twofold.serving`) and the JSON gains "load"."""
    # lazy: start-up time
    from twofold.estimate.inference import estimate_inference
    from twofold.estimate.inference_types import InferenceLayout
    from twofold.hardware.catalog import get_chip, system_for
    from twofold.workload import get_model

    positive_ints(chips=chips, dp=dp, tp=tp, pp=pp, ep=ep)
    the_chip = get_chip(chip)
    the_system = system_for(the_chip, system)
    price = price_of(the_chip, the_system, prices or {}, price_kind, min_quality)
    tp, cores_text = neuron_tp(the_chip, neuron_cores, lnc, tp)
    replica = tp * pp * ep
    if dp is None:
        if chips is not None and chips % replica:
            raise InputError("chips", chips, f"is not divisible by tp*pp*ep={replica}")
        dp = 1 if chips is None else chips // replica
    elif chips is not None and chips != dp * replica:
        raise InputError("chips", chips, f"!= dp*tp*pp*ep = {dp * replica}")
    layout = InferenceLayout(tp=tp, pp=pp, ep=ep, dp=dp, pad_heads=pad_heads)
    try:
        # lazy: start-up time
        from twofold.estimate.inference_types import serving_model
        from twofold.workload.graph import decode_ops

        decode_ops(serving_model(get_model(model), layout), batch=1, context_len=2, tp=tp, ep=ep)
    except InputError as exc:
        if cores_text and exc.field == "tp":  # name both counts, and the two ways engines run it
            rule = (
                f"{exc.rule} (tp={tp} chips = {cores_text}); --pad-heads pads heads and FFN as "
                "Neuron does, with the padded work counted"
            )
            raise InputError("tp", tp, rule) from None
        raise
    config = serving_config(load or {}, batch=batch, input_tokens=input_tokens, output_tokens=output_tokens)
    batch = 1 if batch is None else batch
    input_tokens = 1024 if input_tokens is None else input_tokens
    output_tokens = 256 if output_tokens is None else output_tokens
    if config is not None:
        from twofold.serving import simulate_serving  # lazy: start-up time

        static, loaded = simulate_serving(
            get_model(model),
            the_system,
            layout,
            _workload(1, input_tokens, output_tokens, precision, weight_precision, kv_precision),
            config,
            chip=the_chip,
            mem_headroom=mem_headroom,
            draft_model=get_model(config.spec_decode) if config.spec_decode else None,
        )
        d = with_usable_memory(static.priced(price).to_dict(), mem_headroom)
        d["load"] = loaded.to_dict()
        usd = d.get("usd_per_million_output_tokens")  # same chips and price, the load's tokens/s
        d["load"]["usd_per_million_output_tokens"] = (
            None if usd is None else usd * d["output_tokens_per_s"] / loaded.output_tokens_per_s
        )
        if as_json:
            emit_json(d)
        else:
            _render_estimate(d)
            _render_load(d["load"], config)
        return
    result = estimate_inference(
        get_model(model),
        the_system,
        layout,
        _workload(batch, input_tokens, output_tokens, precision, weight_precision, kv_precision),
        chip=the_chip,
        mem_headroom=mem_headroom,
    ).priced(price)
    d = with_usable_memory(result.to_dict(), mem_headroom)
    if as_json:
        emit_json(d)
    else:
        _render_estimate(d)


LOAD_DEFAULTS: dict[str, Any] = {
    "max_batch": None,
    "concurrency": None,
    "request_rate": None,
    "num_requests": 1000,
    "input_std": 0.0,
    "output_std": 0.0,
    "chunked_prefill": None,
    "prefix_cache_hit": 0.0,
    "spec_decode": None,
    "spec_tokens": 0,
    "accept_rate": 0.0,
    "engine": "vllm",
}


def serving_config(
    load: dict[str, Any], *, batch: int | None, input_tokens: int | None, output_tokens: int | None
):
    """The `serving.ServingConfig` of the load flags, None when none is given (a static estimate).
    A load flag without --max-batch, or --batch beside --max-batch, is an `InputError` (exit 2)."""
    from twofold.serving import ServingConfig  # lazy: start-up time

    given = {k: v for k, v in load.items() if k in LOAD_DEFAULTS and v != LOAD_DEFAULTS[k]}
    if not given:
        return None
    if load.get("max_batch") is None:
        name = next(iter(given))
        rule = "simulates a load: give --max-batch and --concurrency or --request-rate"
        raise InputError(name, given[name], rule)
    if batch is not None and batch != 1:
        raise InputError("batch", batch, "is the static estimate's batch; under load give --max-batch only")
    args = {k: load.get(k, v) for k, v in LOAD_DEFAULTS.items()}
    return ServingConfig(
        input_tokens=1024 if input_tokens is None else input_tokens,
        output_tokens=256 if output_tokens is None else output_tokens,
        **args,
    )


def plan_infer(
    *,
    model: str,
    chip: str,
    system: str | None,
    chips: int | None,
    input_tokens: int,
    output_tokens: int,
    precision: str,
    weight_precision: str | None,
    kv_precision: str | None,
    max_ttft_ms: float | None,
    max_tpot_ms: float | None,
    objective: str,
    pad_heads: bool,
    top: int,
    as_json: bool,
    mem_headroom: float,
    prices: dict[str, float] | None = None,
    price_kind: str = "on-demand",
    min_quality: str | None = None,
    neuron_cores: int | None = None,
    lnc: int | None = None,
) -> None:
    """`twofold plan --infer`: the serving layout and batch that maximise the objective under the
    targets, with $ per million output tokens at the price asked for (`price_of`); `--neuron-cores`
    gives the chips in logical NeuronCores (`neuron_chips`)."""
    # lazy: start-up time
    from twofold.hardware.catalog import get_chip, system_for
    from twofold.search.infer_plan import plan_inference
    from twofold.workload import get_model

    the_chip = get_chip(chip)
    the_system = system_for(the_chip, system)
    n = neuron_chips(the_chip, neuron_cores, lnc, chips)
    if n is None:
        raise InputError("chips", None, "plan --infer needs --chips (or --neuron-cores on Neuron)")
    result = plan_inference(
        get_model(model),
        the_system,
        n,
        _workload(1, input_tokens, output_tokens, precision, weight_precision, kv_precision),
        max_ttft_ms=max_ttft_ms,
        max_tpot_ms=max_tpot_ms,
        objective=objective,
        pad_heads=pad_heads,
        top_k=top,
        chip=the_chip,
        mem_headroom=mem_headroom,
        price=price_of(the_chip, the_system, prices or {}, price_kind, min_quality),
    )
    d = result.to_dict()
    d["neuron_cores"] = neuron_tp(the_chip, None, lnc, n)[1]  # "" off Neuron
    if as_json:
        emit_json(d)
    else:
        _render_plan(d)
    if result.best is None:  # a valid question without an answer: exit 1 (`errors.NoAnswer`)
        raise NoAnswer(result.explanation[0] if result.explanation else "no serving layout fits")


def _render_estimate(d: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    lay, w = d["layout"], d["workload"]
    shape = " ".join(f"{k}={lay[k]}" for k in ("dp", "tp", "pp", "ep"))
    out.print(
        f"[bold]{d['model']}[/] serving on {d['chips']} x {d['chip']} ({d['system']}), {shape}; "
        f"batch {w['batch']}, {w['input_tokens']} in / {w['output_tokens']} out tokens, {w['precision']} "
        f"(weights {w['weight_precision'] or w['precision']}, KV {w['kv_precision'] or w['precision']})"
    )
    fits = "[green]fits[/]" if d["fits"] else "[red]does not fit[/]"
    out.print(
        f"TTFT {d['ttft_ms']:.1f} ms, TPOT {d['tpot_ms']:.2f} ms (context {d['decode_context_len']}), "
        f"latency {d['e2e_latency_s']:.2f} s, {d['output_tokens_per_s']:,.0f} output tokens/s"
        f"{range_note(d.get('uncertainty'), 'output_tokens_per_s')} "
        f"({d['output_tokens_per_s_per_chip']:,.1f} per chip)"
    )
    out.print(
        f"{d['memory_per_chip_gib']:.1f} of {d['hbm_capacity_gib']:g} GiB per chip: {fits}; "
        f"largest batch that fits {d['max_batch']}, "
        f"KV capacity {d['kv_capacity_tokens']:,} tokens per replica"
    )
    usd = usd_text(d.get("usd_per_million_output_tokens"), d.get("price"))
    out.print(f"$ per million output tokens: {usd}")
    table = Table(title="where the time goes")
    for col in ("term", "prefill ms", "decode ms / token"):
        table.add_column(col, justify="left" if col == "term" else "right")
    for key, value in d["breakdown_prefill"].items():
        table.add_row(key.removesuffix("_s"), f"{value * 1e3:.3f}", f"{d['breakdown_decode'][key] * 1e3:.4f}")
    out.print(table)
    print_memory_and_notes(out, d)


def usd_text(usd: float | None, price: dict[str, Any] | None) -> str:
    """The dollars and their price: "1.94 at $2.235/chip-h (on-demand, grade C, AWS)" or
    "no price (spot): <why>"."""
    p = price or {}
    kind = p.get("kind", "on-demand")
    if usd is None:
        return f"no price ({kind})" + (f": {p['note']}" if p.get("note") else "")
    grade = p.get("quality") or "?"
    who = f", {p['provider']}" if p.get("provider") else ""
    return f"{usd:.2f} at ${p['usd_per_chip_hour']:g}/chip-h ({kind}, grade {grade}{who})"


def _render_load(load: dict[str, Any], config: Any) -> None:
    from rich.table import Table

    out = console()
    shape = f"{config.request_rate} requests/s"
    if config.concurrency is not None:
        shape = f"concurrency {config.concurrency}"
    out.print(
        f"[bold]under load[/] ({load['engine']}, max batch {config.max_batch}, {shape}, "
        f"{load['num_requests']} requests on {load['replicas']} replica(s)): "
        f"{load['output_tokens_per_s']:,.0f} output tokens/s, {load['requests_per_s']:.2f} requests/s, "
        f"batch occupancy {load['batch_occupancy']:.0%}, {load['preemptions']} preemptions "
        f"(simulated in {load['simulation_wall_s']:.2f} s)"
    )
    if load.get("usd_per_million_output_tokens") is not None:
        out.print(f"${load['usd_per_million_output_tokens']:.2f} per million output tokens under this load")
    else:
        out.print("$ per million output tokens under this load: no price")
    table = Table()
    for col in ("latency", "mean", "p50", "p90", "p99"):
        table.add_column(col, justify="left" if col == "latency" else "right")
    for key in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_s"):
        row = load[key]
        table.add_row(key, *(f"{row[q]:,.2f}" for q in ("mean", "p50", "p90", "p99")))
    out.print(table)


def _render_plan(d: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    if not out.is_terminal:  # piped: one line per row, the $ column included
        out.width = 160
    w = d["workload"]
    targets = ", ".join(
        f"{name} <= {d[key]:g} ms"
        for name, key in (("TTFT", "max_ttft_ms"), ("TPOT", "max_tpot_ms"))
        if d[key]
    )
    cores = f" ({d['neuron_cores']})" if d.get("neuron_cores") else ""
    out.print(
        f"{d['model']} on {d['chips']} x {d['chip']}{cores} ({d['system']}), {w['input_tokens']} in / "
        f"{w['output_tokens']} out tokens, {w['precision']}; {targets or 'no latency target'}; "
        f"by {d['objective']}"
    )
    table = Table()
    for col in ("#", "dp", "tp", "pp", "ep", "batch", "tokens/s/chip", "TTFT ms", "TPOT ms", "GiB/chip",
                "$/M out"):  # fmt: skip
        table.add_column(col, justify="right")
    for rank, row in enumerate(d["top"], start=1):
        lay = row["layout"]
        table.add_row(
            str(rank),
            *(str(lay[k]) for k in ("dp", "tp", "pp", "ep")),
            str(row["batch"]),
            f"{row['output_tokens_per_s_per_chip']:,.1f}",
            f"{row['ttft_ms']:.1f}",
            f"{row['tpot_ms']:.2f}",
            f"{row['memory_per_chip_gib']:.1f}",
            price_cell(row.get("usd_per_million_output_tokens"), d.get("price")),
        )
    if d["top"]:
        out.print(table)
        if d.get("price"):
            out.print(price_line(d["chip"], d["price"]), markup=False, highlight=False)
    u = (d.get("best") or {}).get("uncertainty")
    if u:
        out.print(
            f"best: {u['coverage']:.0%} interval of output tokens/s "
            f"{range_cell(u, 'output_tokens_per_s')} ({u['evidence']['basis']}; serving has one level, "
            "the serving rows' in-sample error)"
        )
    out.print(
        f"{d['evaluated_layouts']} layouts, {d['evaluated_candidates']} (layout, batch) candidates evaluated "
        f"in {d['elapsed_s']:.2f} s"
    )
    for line in d["explanation"]:
        out.print(f"[yellow]{line}[/yellow]")
