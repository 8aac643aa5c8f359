"""`twofold sweep SPEC.yaml`: plan every scenario of a spec, locally or on Ray, into a store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from twofold import __version__
from twofold.checks import positive_ints
from twofold.cli._app import app, console, emit_json
from twofold.cli._options import STACK_HELP
from twofold.errors import InputError
from twofold.outputs import check_output_path

__all__ = ["sweep"]

_TABLE_ROWS = 40  # rows of the terminal table; the JSON and the HTML report hold them all


@app.command("sweep")
def sweep(
    spec_path: str = typer.Argument(..., metavar="SPEC.yaml", help="Sweep spec (see docs/sweep.md)."),
    workers: int | None = typer.Option(None, "--workers", help="Local worker processes (default: CPUs)."),
    ray: str | None = typer.Option(
        None, "--ray", help="Run on Ray: 'auto' (local or RAY_ADDRESS) or an address."
    ),
    out: str | None = typer.Option(None, "--out", help="Sweep store (default ~/.twofold/sweeps.db)."),
    report: str | None = typer.Option(None, "--report", help="Also write an HTML report here."),
    stack: str | None = typer.Option(
        None, "--stack", help=STACK_HELP + " Overrides the spec's `stack` (default auto)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Plan models x chips x scales from a YAML spec; a rerun skips what the store already holds."""
    # lazy: start-up time
    from twofold.sweep import SweepStore, default_store_path, load_spec, run_sweep

    # Everything a user can get wrong is checked before the first scenario starts.
    spec = load_spec(spec_path)
    if stack is not None:
        from dataclasses import replace

        from twofold.sweep.spec import _stack  # lazy: start-up time

        spec = replace(spec, stack=_stack(stack, Path.cwd()))
    positive_ints(workers=workers)
    if workers is not None and ray is not None:
        raise InputError("workers", workers, "sizes the local pool; with --ray the cluster's CPUs decide")
    if ray is not None and not ray.strip():
        raise InputError("ray", ray, "must be 'auto' or a cluster address")
    if report is not None:
        check_output_path(report, field="report")
    if ray is not None:
        from twofold.sweep.ray_runner import require_ray  # lazy: start-up time

        require_ray(ray)
    store_path = out if out is not None else default_store_path()
    SweepStore(store_path).close()  # opens (or creates) the store now, so a bad --out fails at once

    summary = _run_with_progress(
        lambda progress: run_sweep(spec, store_path, workers=workers, ray_address=ray, on_progress=progress)
    )
    with SweepStore(store_path) as store:
        rows = store.results(summary.keys)
    if report is not None:
        from twofold.sweep.report import write_html  # lazy: start-up time

        write_html(report, spec, rows, version=__version__)
    if as_json:
        emit_json(_document(spec, summary, rows, report))
    else:
        _render(spec, summary, rows, report)
    if summary.interrupted:
        raise typer.Exit(130)
    if summary.lost or summary.failed:
        raise typer.Exit(1)


def _run_with_progress(run: Any) -> Any:
    """Run with a progress bar on stderr (never stdout, which --json keeps for its document)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text("" if task.speed is None else f"{task.speed:.1f} scenarios/s")

    columns = (
        TextColumn("sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = None

        def update(done: int, total: int) -> None:
            nonlocal task
            if task is None:  # the first call reports what the store already held
                task = progress.add_task("sweep", total=total, completed=done)
            else:
                progress.update(task, completed=done)

        return run(update)


def _best(row: Any) -> dict[str, Any] | None:
    return None if row.result is None else row.result.get("best")


def _document(spec: Any, summary: Any, rows: list[Any], report: str | None) -> dict[str, Any]:
    from twofold.sweep.report import compare_by_scale, ratio_summary  # lazy: start-up time

    table = compare_by_scale(spec, rows)
    return {
        **summary.to_dict(),
        "mode": spec.mode,
        "objective": spec.objective,
        "report": report,
        "best_by_scale": [r.to_dict() for r in table],
        "ratios": ratio_summary(table),
        "results": [
            {
                "key": r.key,
                "scenario": r.scenario.to_dict(),
                "status": r.status,
                "message": r.message,
                "best": _best(r),
                "explanation": [] if r.result is None else r.result.get("explanation", []),
            }
            for r in rows
        ],
    }


def _render(spec: Any, summary: Any, rows: list[Any], report: str | None) -> None:
    from rich import box
    from rich.table import Table

    from twofold.sweep.report import NOT_RUN, compare_by_scale, hardware_label  # lazy: start-up time

    out = console()
    table_rows = compare_by_scale(spec, rows)
    labels = list(dict.fromkeys(hardware_label(spec).values()))
    metric = "tok/s/chip" if spec.mode == "training" else "out tok/s/chip"
    # Scale fields with one value go into the title, so the table keeps to the terminal's width.
    scale_fields = [f for f, _ in table_rows[0].scale] if table_rows else []
    varying = [f for f in scale_fields if len({dict(r.scale)[f] for r in table_rows}) > 1]
    fixed = ", ".join(f"{f}={v}" for f, v in (table_rows[0].scale if table_rows else ()) if f not in varying)
    table = Table(
        title=f"{spec.name}: {metric} of each chip's best plan" + (f" ({fixed})" if fixed else ""),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("model")
    for name in varying:
        table.add_column(name, justify="right")
    for label in labels:
        table.add_column(label, justify="right")
    table.add_column("best")
    for row in table_rows[:_TABLE_ROWS]:
        cells = [
            f"{v:,.0f}" if v is not None else "not run" if why == NOT_RUN else "-" for _, v, why in row.values
        ]
        scale = dict(row.scale)
        table.add_row(row.model, *(str(scale[f]) for f in varying), *cells, row.verdict)
    if table_rows:
        out.print(table)
    if len(table_rows) > _TABLE_ROWS:
        out.print(f"{len(table_rows) - _TABLE_ROWS} more rows: --json or --report show them all")
    if any(v is None and why != NOT_RUN for row in table_rows for _, v, why in row.values):
        out.print("-: no layout fits, or the scenario was rejected (see --json)")
    if any(row.not_run for row in table_rows):
        out.print("not run: the scenario never ran (interrupted); rerun the same command to finish it")
    rate = summary.scenarios_per_s
    out.print(
        f"{summary.total} scenarios: {summary.planned} planned now"
        + (f" ({rate:.1f}/s on {summary.executor})" if rate else "")
        + f", {summary.skipped} already in {summary.store}, {summary.rejected} rejected; "
        f"{summary.elapsed_s:.1f} s"
    )
    if report is not None:
        out.print(f"report: {report}")
    if summary.interrupted or summary.lost:
        missing = summary.total - summary.skipped - summary.planned
        why = "interrupted" if summary.interrupted else f"a worker died ({summary.lost} scenarios lost)"
        print(f"{why}: {missing} scenarios left; rerun the same command to finish them", file=sys.stderr)
    for line in summary.failed[:10]:
        print(f"failed: {line}", file=sys.stderr)
