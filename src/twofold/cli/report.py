"""`twofold report`: one self-contained HTML report of a comparison (and a claim), or of a sweep."""

from __future__ import annotations

from typing import Any

import typer

from twofold import __version__
from twofold.cli._app import app, console, emit_json
from twofold.cli._options import (
    DEFAULT_GLOBAL_BATCH,
    DEFAULT_SEQ_LEN,
    GLOBAL_BATCH_HELP,
    IDLE_HELP,
    MIN_QUALITY_OPTION,
    POWER_OPTION,
    PRICE_KIND_OPTION,
    PRICE_OPTION,
    SHAPE_OPTION,
    STACK_HELP,
    check_min_quality,
    check_out,
    check_price_kind,
    check_stack,
    chip_list,
    chip_overrides,
    resolve_model,
)
from twofold.errors import InputError

__all__ = ["report"]


@app.command("report")
def report(
    model: str | None = typer.Option(
        None, "--model", help="Catalog model id, config.json or MODEL.onnx (with --input-shape)."
    ),
    input_shape: list[str] | None = SHAPE_OPTION,
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
    seq_len: int = typer.Option(DEFAULT_SEQ_LEN, "--seq-len", help="Tokens per sequence."),
    precision: str = typer.Option("bf16", "--precision", help="bf16, fp8, ..."),
    price: list[str] | None = PRICE_OPTION,
    price_kind: str = PRICE_KIND_OPTION,
    min_quality: str | None = MIN_QUALITY_OPTION,
    power: list[str] | None = POWER_OPTION,
    idle_fraction: float | None = typer.Option(None, "--idle-fraction", help=IDLE_HELP),
    stack: str = typer.Option("auto", "--stack", help=STACK_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document (the path written)."),
) -> None:
    """Write one self-contained HTML report: table, factors, breakdown, scaling, cost Pareto, claim;
    or, with --sweep DB, a sweep's stored results as tables and plots."""

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
    # lazy: start-up time
    from twofold.compare.claim import evaluate_claim
    from twofold.compare.plans import target
    from twofold.report import compare_report, write_report
    from twofold.report.plots import require_matplotlib

    check_price_kind(price_kind)
    min_quality = check_min_quality(min_quality)
    require_matplotlib()  # fail before minutes of planning, not after
    check_out(out)
    prices, powers = chip_overrides(price, power)
    the_model, workload, budget = resolve_model(
        model, input_shape, samples, tokens, global_batch=global_batch, seq_len=seq_len, precision=precision
    )
    economics: dict[str, Any] = {
        "prices": prices,
        "powers": powers,
        "idle_fraction": idle_fraction,
        "price_kind": price_kind,
        "min_quality": min_quality,
    }
    targets = [target(n, **economics, stack=check_stack(stack)) for n in chip_list(on)]
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

    # lazy: start-up time
    from twofold.sweep import SweepStore, load_spec, scenario_key
    from twofold.sweep.report import render_html, spec_from_rows

    if not Path(db).expanduser().is_file():
        raise InputError("sweep", db, "no such sweep store (twofold sweep --out writes one)")
    check_out(out)
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
    from twofold.report import write_atomic  # lazy: start-up time

    return str(write_atomic(Path(out).expanduser(), page))
