"""The `--infer` branches of `twofold estimate` and `twofold plan`: build the serving objects, call
the API, render. Kept apart so that the training verbs' modules only gain their flags and one call."""

from __future__ import annotations

from typing import Any

from twofold.cli._app import console, emit_json
from twofold.cli.estimate import print_memory_and_notes

__all__ = [
    "compare_capacity",
    "estimate_infer",
    "plan_capacity_infer",
    "plan_infer",
    "refuse_training_flags",
    "render_capacity",
    "serving_config",
]


def refuse_training_flags(**flags: tuple[object, object]) -> None:
    """A training-only flag given with --infer (value differs from its default) is a mistake, not ignored."""
    from twofold.errors import InputError

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
    from twofold.estimate.inference_types import InferenceWorkload

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
    from twofold.errors import InputError

    if chip.architecture != "systolic" or not chip.id.startswith(("trn", "inf")):
        if neuron_cores is not None or lnc is not None:
            raise InputError("neuron_cores", neuron_cores, f"counts AWS NeuronCores; {chip.id} has none")
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
) -> None:
    """`twofold estimate --infer`: dp from --chips / (tp*pp*ep) when --dp is not given. With `load`
    (--max-batch and --concurrency or --request-rate), the requests are simulated through the
    engine's scheduler (`twofold.serving`) and the JSON gains "load"."""
    from twofold.errors import InputError
    from twofold.estimate.inference import estimate_inference
    from twofold.estimate.inference_types import InferenceLayout
    from twofold.hardware.catalog import get_chip, system_for
    from twofold.workload import get_model

    for name, value in (("chips", chips), ("dp", dp), ("tp", tp), ("pp", pp), ("ep", ep)):
        if value is not None and value < 1:
            raise InputError(name, value, "must be a positive integer")
    the_chip = get_chip(chip)
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
        from twofold.serving import simulate_serving

        static, loaded = simulate_serving(
            get_model(model),
            system_for(the_chip, system),
            layout,
            _workload(1, input_tokens, output_tokens, precision, weight_precision, kv_precision),
            config,
            chip=the_chip,
            mem_headroom=mem_headroom,
            draft_model=get_model(config.spec_decode) if config.spec_decode else None,
        )
        from twofold.cli.estimate import with_usable_memory

        d = with_usable_memory(static.to_dict(), mem_headroom)
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
        system_for(the_chip, system),
        layout,
        _workload(batch, input_tokens, output_tokens, precision, weight_precision, kv_precision),
        chip=the_chip,
        mem_headroom=mem_headroom,
    )
    from twofold.cli.estimate import with_usable_memory

    d = with_usable_memory(result.to_dict(), mem_headroom)
    if as_json:
        emit_json(d)
    else:
        _render_estimate(d)


_LOAD_DEFAULTS: dict[str, Any] = {
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
    from twofold.errors import InputError
    from twofold.serving import ServingConfig

    given = {k: v for k, v in load.items() if k in _LOAD_DEFAULTS and v != _LOAD_DEFAULTS[k]}
    if not given:
        return None
    if load.get("max_batch") is None:
        name = next(iter(given))
        rule = "simulates a load: give --max-batch and --concurrency or --request-rate"
        raise InputError(name, given[name], rule)
    if batch is not None and batch != 1:
        raise InputError("batch", batch, "is the static estimate's batch; under load give --max-batch only")
    args = {k: load.get(k, v) for k, v in _LOAD_DEFAULTS.items()}
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
    chips: int,
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
) -> None:
    """`twofold plan --infer`: the serving layout and batch that maximise the objective under the targets."""
    from twofold.hardware.catalog import get_chip, system_for
    from twofold.search.infer_plan import plan_inference
    from twofold.workload import get_model

    the_chip = get_chip(chip)
    result = plan_inference(
        get_model(model),
        system_for(the_chip, system),
        chips,
        _workload(1, input_tokens, output_tokens, precision, weight_precision, kv_precision),
        max_ttft_ms=max_ttft_ms,
        max_tpot_ms=max_tpot_ms,
        objective=objective,
        pad_heads=pad_heads,
        top_k=top,
        chip=the_chip,
        mem_headroom=mem_headroom,
    )
    if as_json:
        emit_json(result.to_dict())
    else:
        _render_plan(result.to_dict())
    if result.best is None:  # a valid question without an answer: exit 1 (`errors.NoAnswer`)
        from twofold.errors import NoAnswer

        raise NoAnswer(result.explanation[0] if result.explanation else "no serving layout fits")


def _render_estimate(d: dict[str, Any]) -> None:
    from rich.table import Table

    from twofold.cli._uncertainty import range_note

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
    if d.get("usd_per_million_output_tokens") is not None:
        out.print(f"${d['usd_per_million_output_tokens']:.2f} per million output tokens at the catalog price")
    table = Table(title="where the time goes")
    for col in ("term", "prefill ms", "decode ms / token"):
        table.add_column(col, justify="left" if col == "term" else "right")
    for key, value in d["breakdown_prefill"].items():
        table.add_row(key.removesuffix("_s"), f"{value * 1e3:.3f}", f"{d['breakdown_decode'][key] * 1e3:.4f}")
    out.print(table)
    print_memory_and_notes(out, d)


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
    table = Table()
    for col in ("latency", "mean", "p50", "p90", "p99"):
        table.add_column(col, justify="left" if col == "latency" else "right")
    for key in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_s"):
        row = load[key]
        table.add_row(key, *(f"{row[q]:,.2f}" for q in ("mean", "p50", "p90", "p99")))
    out.print(table)


def _render_plan(d: dict[str, Any]) -> None:
    from rich.table import Table

    from twofold.cli._uncertainty import range_cell

    out = console()
    w = d["workload"]
    targets = ", ".join(
        f"{name} <= {d[key]:g} ms"
        for name, key in (("TTFT", "max_ttft_ms"), ("TPOT", "max_tpot_ms"))
        if d[key]
    )
    out.print(
        f"{d['model']} on {d['chips']} x {d['chip']} ({d['system']}), {w['input_tokens']} in / "
        f"{w['output_tokens']} out tokens, {w['precision']}; {targets or 'no latency target'}; "
        f"by {d['objective']}"
    )
    table = Table()
    for col in ("#", "dp", "tp", "pp", "ep", "batch", "tokens/s/chip", "TTFT ms", "TPOT ms", "GiB/chip"):
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
        )
    if d["top"]:
        out.print(table)
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


def plan_capacity_infer(
    *,
    model: str,
    chip: str,
    system: str | None,
    input_tokens: int,
    output_tokens: int,
    precision: str,
    weight_precision: str | None,
    kv_precision: str | None,
    request_rate: float,
    p99_ttft_ms: float | None,
    p99_itl_ms: float | None,
    price: float | None,
    as_json: bool,
    max_replica_chips: int | None = None,
    load: dict[str, Any] | None = None,
) -> None:
    """`twofold plan --infer --request-rate R`: replicas, layout and batch meeting the p99 targets at least
    cost (`serving.capacity`), with $ per million output tokens and per month when a price is known."""
    from twofold.hardware.catalog import get_chip, system_for
    from twofold.serving import ServingConfig
    from twofold.serving.capacity import plan_capacity
    from twofold.workload import get_model

    extra = {
        k: v
        for k, v in (load or {}).items()
        if k in _LOAD_DEFAULTS and k not in ("max_batch", "num_requests")
    }
    extra = {
        k: v for k, v in extra.items() if v != _LOAD_DEFAULTS[k] and k not in ("concurrency", "request_rate")
    }
    shape = ServingConfig(
        max_batch=1, concurrency=1, input_tokens=input_tokens, output_tokens=output_tokens, **extra
    )
    the_chip = get_chip(chip)
    result = plan_capacity(
        get_model(model),
        system_for(the_chip, system),
        _workload(1, input_tokens, output_tokens, precision, weight_precision, kv_precision),
        shape,
        request_rate=request_rate,
        p99_ttft_ms=p99_ttft_ms,
        p99_itl_ms=p99_itl_ms,
        chip=the_chip,
        price_usd_per_chip_hour=price,
        max_replica_chips=max_replica_chips,
    )
    d = result.to_dict()
    if as_json:
        emit_json(d)
    else:
        render_capacity([d])
    if d["best"] is None:
        from twofold.errors import NoAnswer

        raise NoAnswer(d["explanation"][-1])


def render_capacity(plans: list[dict[str, Any]]) -> None:
    """One row per chip: its cheapest plan for the rate (`serving.capacity.CapacityPlan.to_dict`)."""
    from rich.table import Table

    out = console()
    first = plans[0]
    targets = ", ".join(
        f"p99 {name} <= {first[key]:g} ms"
        for name, key in (("TTFT", "p99_ttft_ms"), ("ITL", "p99_itl_ms"))
        if first[key]
    )
    out.print(
        f"{first['model']} at {first['request_rate']:g} requests/s, {first['input_tokens']} in / "
        f"{first['output_tokens']} out tokens; {targets or 'no latency target'}"
    )
    table = Table()
    for col in ("chip", "tp", "max batch", "replicas", "chips", "req/s per replica (saturated)",
                "p99 TTFT ms", "p99 ITL ms", "$/M output tokens", "$/month"):  # fmt: skip
        table.add_column(col, justify="left" if col == "chip" else "right")
    for d in plans:
        b = d["best"]
        if b is None:
            table.add_row(d["chip"], *(["-"] * 9))
            continue
        usd = b["usd_per_million_output_tokens"]
        month = b["usd_per_month"]
        table.add_row(
            d["chip"], str(b["layout"]["tp"]), str(b["max_batch"]), str(b["replicas"]), str(b["chips"]),
            f"{b['rate_per_replica']:.2f} ({b['saturated_rate_per_replica']:.2f})",
            f"{b['p99_ttft_ms']:,.0f}", f"{b['p99_itl_ms']:.1f}",
            "no price" if usd is None else f"{usd:.2f}", "-" if month is None else f"{month:,.0f}",
        )  # fmt: skip
    out.print(table)
    for d in plans:
        if d["best"] is None:
            out.print(f"[yellow]{d['chip']}: {d['explanation'][-1]}[/yellow]")


def compare_capacity(
    *,
    model: str,
    chips: list[str],
    reference: str | None,
    input_tokens: int,
    output_tokens: int,
    precision: str,
    request_rate: float,
    p99_ttft_ms: float | None,
    p99_itl_ms: float | None,
    prices: dict[str, float],
    as_json: bool,
) -> None:
    """`twofold compare MODEL --on A,B --infer --request-rate R`: each chip's capacity plan for the rate
    side by side, and each one's cost against the reference split into chips x price
    (`compare.infer_claim.capacity_ratio`)."""
    from twofold.compare.infer_claim import capacity_ratio
    from twofold.hardware.catalog import get_chip, system_for
    from twofold.serving import ServingConfig
    from twofold.serving.capacity import plan_capacity
    from twofold.workload import get_model

    the_model = get_model(model)
    shape = ServingConfig(max_batch=1, concurrency=1, input_tokens=input_tokens, output_tokens=output_tokens)
    plans = []
    for name in chips:
        chip = get_chip(name)
        plan = plan_capacity(
            the_model,
            system_for(chip),
            _workload(1, input_tokens, output_tokens, precision, None, None),
            shape,
            request_rate=request_rate,
            p99_ttft_ms=p99_ttft_ms,
            p99_itl_ms=p99_itl_ms,
            chip=chip,
            price_usd_per_chip_hour=prices.get(chip.id),
        )
        plans.append(plan.to_dict())
    ref_id = get_chip(reference).id if reference else plans[0]["chip"]
    ref = next((p for p in plans if p["chip"] == ref_id), plans[0])
    ratios = {p["chip"]: capacity_ratio(p, ref) for p in plans}
    if as_json:
        emit_json({"reference": ref["chip"], "plans": plans, "ratios_to_reference": ratios})
        return
    render_capacity(plans)
    out = console()
    for chip_id, r in ratios.items():
        if chip_id == ref["chip"] or r["chips"] is None:
            continue
        cost = "cost unknown (no price)" if r["cost"] is None else f"cost x{r['cost']:.2f}"
        price = "" if r["price"] is None else f" x price x{r['price']:.2f}"
        out.print(
            f"{chip_id} vs {ref['chip']}: {cost} = chips x{r['chips']:.2f}{price} (a replica of "
            f"x{r['replica_chips']:.2f} chips sustains x{r['per_replica_rate']:.2f} the requests/s)"
        )
