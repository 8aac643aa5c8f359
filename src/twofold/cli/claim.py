"""`twofold claim`: a vendor claim checked across the catalog's workloads, where it holds and why."""

from __future__ import annotations

from typing import Any

import typer

from twofold.checks import positive_ints
from twofold.cli._app import app, emit_json
from twofold.cli._options import (
    BASE_PRECISION_OPTION,
    FINETUNE_OPTION,
    IDLE_HELP,
    LORA_RANK_OPTION,
    LORA_TARGETS_OPTION,
    MIN_QUALITY_OPTION,
    POWER_OPTION,
    PRICE_KIND_OPTION,
    PRICE_OPTION,
    STACK_HELP,
    check_min_quality,
    check_out,
    check_price_kind,
    check_stack,
    chip_overrides,
    finetune_of,
    parse_budget,
)
from twofold.cli._render import num, wide_console
from twofold.errors import InputError

__all__ = ["claim"]


@app.command("claim")
def claim(
    text: str = typer.Argument(..., help='The claim, e.g. "trn2 is 4x trn1".'),
    metric: str | None = typer.Option(
        None, "--metric", help="throughput, perf-per-dollar, perf-per-watt, latency."
    ),
    tolerance: float = typer.Option(
        0.1, "--tolerance", help="Holds when the ratio >= (1 - tolerance) x claim."
    ),
    price: list[str] | None = PRICE_OPTION,
    price_kind: str = PRICE_KIND_OPTION,
    min_quality: str | None = MIN_QUALITY_OPTION,
    power: list[str] | None = POWER_OPTION,
    idle_fraction: float | None = typer.Option(None, "--idle-fraction", help=IDLE_HELP),
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
    stack: str = typer.Option("auto", "--stack", help=STACK_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Check a vendor claim across the catalog's training workloads: where it holds, and why.
    With --finetune lora/qlora, the training workloads are fine-tuning runs (serving ones left out).
    With --deadline and --tokens, a cost claim compares each chip's cheapest run that trains the
    tokens by the deadline (serving workloads left out; other metrics exit 2)."""
    from twofold.compare.claim import evaluate_claim  # lazy: start-up time

    budget = None if tokens is None else parse_budget(tokens, "tokens")
    if deadline is not None and (workers is not None or ray is not None or out is not None):
        raise InputError(
            "deadline", deadline, "is planned in this process: leave --workers, --ray and --out unset"
        )

    check_price_kind(price_kind)
    min_quality = check_min_quality(min_quality)
    the_finetune = finetune_of(finetune, lora_rank, lora_targets, base_precision)
    positive_ints(workers=workers)
    if workers is not None and ray is not None:
        raise InputError("workers", workers, "sizes the local pool; with --ray the cluster's CPUs decide")
    if ray is not None and not ray.strip():
        raise InputError("ray", ray, "must be 'auto' or a cluster address")
    if ray is not None:
        from twofold.sweep.ray_runner import require_ray  # lazy: start-up time

        require_ray(ray)
    if out is not None:
        from twofold.sweep.store import SweepStore  # lazy: start-up time

        SweepStore(out).close()  # a bad --out fails before any planning
    if report_path is not None:
        from twofold.report.plots import require_matplotlib  # lazy: start-up time

        require_matplotlib()
        check_out(report_path)
    prices, powers = chip_overrides(price, power)
    from twofold.sweep.claim_run import run_claim_plans  # lazy: start-up time

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
        plan_runner=run_claim_plans,
        stack=check_stack(stack),
    )
    if report_path is not None:
        from twofold.report import ReportData, write_report  # lazy: start-up time

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

    out = wide_console()
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
            num(r["ratio"], ".2f"),
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
