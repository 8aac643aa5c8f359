"""`twofold plan --infer --request-rate` and `twofold compare --infer`: serving capacity at a rate,
one chip or side by side with the cost ratio split into causes. Builds the objects, calls
`serving.capacity` / `compare.capacity`, renders."""

from __future__ import annotations

from typing import Any

from twofold.cli._app import console, emit_json
from twofold.cli._inference import (
    LOAD_DEFAULTS,
    is_neuron,
    neuron_chips,
    neuron_tp,
    price_of,
)
from twofold.cli._render import price_cell, price_line
from twofold.errors import InputError, NoAnswer

__all__ = ["compare_capacity", "plan_capacity_infer", "render_capacity"]


def _workload(precision: str, weight: str | None, kv: str | None) -> Any:
    from twofold.estimate.inference_types import InferenceWorkload  # lazy: start-up time

    return InferenceWorkload(
        batch=1,
        input_tokens=1,
        output_tokens=1,
        precision=precision,
        weight_precision=weight,
        kv_precision=kv,
    )


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
    prices: dict[str, float],
    price_kind: str,
    min_quality: str | None,
    as_json: bool,
    max_replica_chips: int | None = None,
    neuron_cores: int | None = None,
    lnc: int | None = None,
    load: dict[str, Any] | None = None,
) -> None:
    """`twofold plan --infer --request-rate R`: replicas, layout and batch meeting the p99 targets at
    least cost (`serving.capacity`), with $ per million output tokens and per month at the price asked
    for (`--price`, `--price-kind`, `--min-quality`). `--chips` (or `--neuron-cores`) caps a replica."""
    # lazy: start-up time
    from twofold.hardware.catalog import get_chip, system_for
    from twofold.serving import ServingConfig
    from twofold.serving.capacity import plan_capacity
    from twofold.workload import get_model

    extra = {
        k: v
        for k, v in (load or {}).items()
        if k in LOAD_DEFAULTS
        and k not in ("max_batch", "num_requests", "concurrency", "request_rate")
        and v != LOAD_DEFAULTS[k]
    }
    shape = ServingConfig(
        max_batch=1, concurrency=1, input_tokens=input_tokens, output_tokens=output_tokens, **extra
    )
    the_chip = get_chip(chip)
    the_system = system_for(the_chip, system)
    result = plan_capacity(
        get_model(model),
        the_system,
        _workload(precision, weight_precision, kv_precision),
        shape,
        request_rate=request_rate,
        p99_ttft_ms=p99_ttft_ms,
        p99_itl_ms=p99_itl_ms,
        chip=the_chip,
        price=price_of(the_chip, the_system, prices, price_kind, min_quality),
        max_replica_chips=neuron_chips(the_chip, neuron_cores, lnc, max_replica_chips),
    )
    d = result.to_dict()
    if as_json:
        emit_json(d)
    else:
        render_capacity([d], lnc=lnc)
    if d["best"] is None:
        raise NoAnswer(d["explanation"][-1])


def _layout_cell(chip_id: str, lay: dict[str, Any], lnc: int | None) -> str:
    """The replica, "tp8", "tp4 ep2", "tp8 pp2"; on Neuron also the replica in logical NeuronCores."""
    from twofold.hardware.catalog import get_chip  # lazy: start-up time

    text = " ".join(f"{k}{lay[k]}" for k in ("tp", "ep", "pp") if k == "tp" or lay[k] > 1)
    chip = get_chip(chip_id)
    if is_neuron(chip):
        cores = neuron_tp(chip, None, lnc, lay["tp"] * lay["ep"] * lay["pp"])[1]
        text += f" ({cores.split(' logical')[0]} NC)"
    return text


def render_capacity(plans: list[dict[str, Any]], lnc: int | None = None) -> None:
    """One row per chip: its cheapest plan for the rate (`serving.capacity.CapacityPlan.to_dict`), with
    $ per million output tokens and its price grade, or "no price (<kind>)"."""
    from rich.table import Table

    out = console()
    if not out.is_terminal:
        out.width = 160
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
    for col in ("chip", "replica", "max batch", "replicas", "chips", "req/s/replica used (max, sat.)",
                "p99 TTFT ms", "p99 ITL ms", "$/M output tokens (grade)", "$/month"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("chip", "replica") else "right")
    for d in plans:
        b = d["best"]
        name = d.get("label") or d["chip"]
        if b is None:
            table.add_row(name, *(["-"] * 9))
            continue
        month = b["usd_per_month"]
        table.add_row(
            name, _layout_cell(d["chip"], b["layout"], lnc), str(b["max_batch"]), str(b["replicas"]),
            str(b["chips"]),
            f"{b['rate_per_replica']:.2f} ({b['max_rate_per_replica']:.2f}, "
            f"{b['saturated_rate_per_replica']:.2f})",
            f"{b['p99_ttft_ms']:,.0f}", f"{b['p99_itl_ms']:.1f}",
            price_cell(b["usd_per_million_output_tokens"], d["price"]),
            "-" if month is None else f"{month:,.0f}",
        )  # fmt: skip
    out.print(table)
    for d in plans:
        out.print(price_line(d.get("label") or d["chip"], d["price"]), markup=False, highlight=False)
    for d in plans:
        if d["best"] is None:
            out.print(f"[yellow]{d.get('label') or d['chip']}: {d['explanation'][-1]}[/yellow]")


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
    price_kind: str,
    min_quality: str | None,
    as_json: bool,
    neuron_cores: int | None = None,
    lnc: int | None = None,
) -> None:
    """`twofold compare MODEL --on A,B --infer --request-rate R`: each chip's capacity plan for the rate
    side by side, and each one's cost against the reference split into causes
    (`compare.capacity`). `--neuron-cores N [--lnc L]` caps a replica on the Neuron chips."""
    # lazy: start-up time
    from twofold.compare.capacity import compare_capacity as run
    from twofold.compare.plans import target
    from twofold.serving import ServingConfig
    from twofold.workload import get_model

    targets = [target(n, prices=prices, price_kind=price_kind, min_quality=min_quality) for n in chips]
    caps = {}
    neuron = [t for t in targets if is_neuron(t.chip)]
    if (neuron_cores is not None or lnc is not None) and not neuron:
        value = neuron_cores if neuron_cores is not None else lnc
        raise InputError("neuron_cores" if neuron_cores is not None else "lnc", value,
                         "counts AWS NeuronCores; none of the chips compared has them")  # fmt: skip
    for t in neuron:
        cap = neuron_chips(t.chip, neuron_cores, lnc, None)
        if cap is not None:
            caps[t.chip.id] = cap
    result = run(
        get_model(model),
        targets,
        _workload(precision, None, None),
        ServingConfig(max_batch=1, concurrency=1, input_tokens=input_tokens, output_tokens=output_tokens),
        request_rate=request_rate,
        p99_ttft_ms=p99_ttft_ms,
        p99_itl_ms=p99_itl_ms,
        reference=reference,
        max_replica_chips=caps,
    )
    d = result.to_dict()
    if as_json:
        emit_json(d)
        return
    render_capacity(d["plans"], lnc=lnc)
    _render_causes(d)


def _render_causes(d: dict[str, Any]) -> None:
    """The cost ratio to the reference and its factors (`compare.capacity`), one row per chip."""
    from rich.table import Table

    out = console()
    if not out.is_terminal:
        out.width = 160
    ratios = d["ratios_to_reference"]
    if not ratios:
        return
    table = Table(title=f"cost vs {d['reference']} at the same rate = product of factors (below 1: cheaper)")
    table.add_column("chip")
    for col in (*d["causes"], "chips", "cost", "main cause"):
        table.add_column(col, justify="right")
    for label, r in ratios.items():
        f = r["factors"] or {}
        cells = ["-" if f.get(c) is None else f"{f[c]:.2f}" for c in d["causes"] if c != "price"]
        price = "no price" if r["price"] is None else f"{r['price']:.2f}"
        chips = "-" if r["chips"] is None else f"{r['chips']:.2f}"
        cost = "no price" if r["cost"] is None else f"{r['cost']:.2f}"
        table.add_row(label, *cells, price, chips, cost, r["dominant_cause"] or "")
    out.print(table)
    out.print(
        "factors: the reference chip re-planned with this chip's HBM capacity, then bandwidth, then "
        "peak FLOP/s (other: architecture, efficiency, interconnect, node); rounding: whole replicas; "
        "capacity x bandwidth x compute x other x rounding = chips, x price = cost"
    )
    for label, r in ratios.items():
        if r["note"]:
            out.print(f"[yellow]{label}: {r['note']}[/yellow]")
