"""`twofold validate`: predictions against the shipped published results, with the error per row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from twofold.cli._app import app, console, emit_json
from twofold.errors import InputError
from twofold.outputs import check_output_path

__all__ = ["validate_command"]


@app.command("validate")
def validate_command(
    source: str | None = typer.Option(None, "--source", help="Only sources containing this text."),
    family: str | None = typer.Option(None, "--family", help="Only hardware families containing this text."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
    plot: Path | None = typer.Option(None, "--plot", help="Write predicted vs published (log-log) here."),  # noqa: B008
    loso: bool = typer.Option(
        False, "--loso", help="Add leave-one-stack-out error (refit without each software stack)."
    ),
    lofo: bool = typer.Option(
        False, "--lofo", help="Add leave-one-family-out error (refit without each hardware family)."
    ),
    loco: bool = typer.Option(
        False, "--loco", help="Add leave-one-chip-out error (refit without each chip)."
    ),
    losrc: bool = typer.Option(
        False,
        "--losrc",
        help="Add leave-one-source-out error (refit without each publisher's table; its stack keeps "
        "the other sources' rows).",
    ),
    calibration: str = typer.Option("shipped", "--calibration", help="shipped, none or in-sample."),
    stack: str | None = typer.Option(
        None,
        "--stack",
        help="A stack id: only the rows that ran it (with --data: every row run with it). A stack YAML "
        "file: every selected row run with it.",
    ),
    show_rows: bool = typer.Option(False, "--rows", help="List every predicted row."),
    data: list[Path] | None = typer.Option(  # noqa: B008
        None,
        "--data",
        help="A results CSV in the shipped files' columns (repeatable): predict its rows instead of "
        "the shipped ones, with the shipped calibration (rows twofold was not fitted on).",
    ),
) -> None:
    """Predict every published measurement twofold can express and report the error."""
    from twofold.validate import validate  # lazy: start-up time

    if plot is not None:  # before the validation run, not after it
        from twofold.validate.plot import PLOT_SUFFIXES, require_matplotlib  # lazy: start-up time

        check_output_path(plot, field="plot", suffixes=PLOT_SUFFIXES)
        require_matplotlib(plot)
    rows = _data_rows(data, held_out=loso or lofo or loco or losrc) if data else None
    result = validate(
        rows,
        source=source,
        family=family,
        calibration=calibration,
        loso=loso,
        lofo=lofo,
        loco=loco,
        losrc=losrc,
        stack=stack,
        force_stack=bool(data),
    )
    if plot is not None:
        from twofold.validate.plot import plot_predicted_vs_published  # lazy: start-up time

        plot_predicted_vs_published(result, plot)
    if as_json:
        emit_json(result.to_dict())
        return
    _render(result.to_dict(), show_rows=show_rows, plot=plot)


def _data_rows(paths: list[Path], *, held_out: bool) -> tuple[Any, ...]:
    """The rows of the `--data` files (checked as the shipped files are: columns, cells, unique ids),
    with other spellings of a metric name read as twofold's (`validate.reading.read_metric`)."""
    from dataclasses import replace

    # lazy: start-up time
    from twofold.validate.dataset import read_csv
    from twofold.validate.reading import read_metric

    if held_out:
        raise InputError(
            "data", ",".join(map(str, paths)),
            "--loso/--lofo/--loco/--losrc refit on the shipped rows; --data rows are already held out",
        )
    rows: list[Any] = []
    seen: dict[str, Path] = {}
    for path in paths:
        if not path.is_file():
            raise InputError("data", str(path), "must be an existing CSV file")
        for row in read_csv(path):
            if row.id in seen:
                raise InputError("data", row.id, f"row id appears in both {seen[row.id]} and {path}")
            seen[row.id] = path
            rows.append(replace(row, metric=read_metric(row.metric)))
    return tuple(rows)


def _summary_table(title: str, summaries: list[dict[str, Any]], loso: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    by_group = {s["group"]: s for s in loso}
    table = Table(title=title)
    for col in ("group", "rows", "median APE %", "mean APE %"):
        table.add_column(col, justify="left" if col == "group" else "right")
    if loso:
        table.add_column("LOSO median %", justify="right")
        table.add_column("LOSO mean %", justify="right")
    for s in summaries:
        cells = [s["group"], str(s["rows"]), f"{s['median_ape_pct']:.1f}", f"{s['mean_ape_pct']:.1f}"]
        if loso:
            other = by_group.get(s["group"])
            cells += (
                [f"{other['median_ape_pct']:.1f}", f"{other['mean_ape_pct']:.1f}"] if other else ["-", "-"]
            )
        table.add_row(*cells)
    return table


def _held_out_table(d: dict[str, Any]) -> Any:
    """Per hardware family: rows and mean APE in-sample, leave-stack-out and leave-family-out."""
    from rich.table import Table

    columns = {"in-sample": d["by_family"], "leave-stack-out": d["loso_by_family"]}
    columns["leave-family-out"] = d["lofo_by_family"]
    lookup = {name: {s["group"]: s for s in col} for name, col in columns.items()}
    table = Table(title="mean APE % by hardware family, in-sample and held out")
    table.add_column("family")
    table.add_column("rows", justify="right")
    for name in columns:
        table.add_column(name, justify="right")
    overall = {"in-sample": d["overall"], "leave-stack-out": d["loso_overall"]}
    overall["leave-family-out"] = d["lofo_overall"]
    for s in [*d["by_family"], d["overall"]]:
        group = s["group"]
        cells = []
        for name in columns:
            other = overall[name] if s is d["overall"] else lookup[name].get(group)
            cells.append("-" if other is None else f"{other['mean_ape_pct']:.1f}")
        label = "all" if s is d["overall"] else group
        table.add_row(label, str(s["rows"]), *cells)
    return table


def _render(d: dict[str, Any], *, show_rows: bool, plot: Path | None) -> None:
    from rich.table import Table

    out = console()
    overall = d["overall"]
    if overall:
        line = (
            f"training-throughput rows: {overall['rows']}, median APE {overall['median_ape_pct']:.1f}%, "
            f"mean APE {overall['mean_ape_pct']:.1f}% (calibration: {d['calibration'].get('mode')})"
        )
        for key, label in (
            ("loso_overall", "leave-one-stack-out"),
            ("lofo_overall", "leave-one-family-out"),
            ("loco_overall", "leave-one-chip-out"),
            ("losrc_overall", "leave-one-source-out"),
        ):
            if d[key]:
                held = d[key]
                line += f"; {label}: median {held['median_ape_pct']:.1f}%, mean {held['mean_ape_pct']:.1f}%"
        out.print(line)
    if d.get("interval_coverage_pct") is not None:
        out.print(
            f"published figure inside the estimate's {d['interval_nominal_pct']:.0f}% interval: "
            f"{d['interval_coverage_pct']:.0f}% of training-throughput rows"
        )
    if overall and (d["loso_overall"] or d["lofo_overall"]):
        out.print(_held_out_table(d))
    out.print(_summary_table("by hardware family", d["by_family"], d["loso_by_family"]))
    out.print(_summary_table("by source", d["by_source"], d["loso_by_source"]))
    if d["loso_by_stack"]:
        out.print(_summary_table("leave-one-stack-out, by stack", d["loso_by_stack"], []))
    if d["other_metrics"]:
        out.print(
            _summary_table("other rows (end-to-end and microbenchmarks), by metric", d["other_metrics"], [])
        )
    if d.get("memory_overall"):
        mem = d["memory_overall"]
        out.print(
            f"peak memory per chip stated in {mem['rows']} rows' notes (a check of the memory model, not "
            f"fitted on): median {mem['median_ape_pct']:.1f}%, mean {mem['mean_ape_pct']:.1f}%"
        )
    if d.get("inference_overall"):
        out.print(
            _summary_table(
                "inference rows (serving estimator, output tokens/s; not in the training figures)",
                [*d["inference_by_family"], d["inference_overall"]],
                [],
            )
        )
    rows = d["rows"] if show_rows else d["worst"]
    table = Table(title="every predicted row" if show_rows else "worst training rows")
    for col in ("id", "model", "chip", "metric", "published", "predicted", "error %", "where the time goes"):
        table.add_column(col)
    for r in rows:
        parts = sorted(r["breakdown"].items(), key=lambda kv: -kv[1])[:4]
        where = ", ".join(f"{k} {v:.3g}s" for k, v in parts)
        table.add_row(
            r["id"],
            r["model"][:28],
            r["chip"],
            r["metric"],
            f"{r['published']:.4g}",
            f"{r['predicted']:.4g}",
            f"{r['signed_error_pct']:+.1f}",
            where,
        )
    out.print(table)
    reasons: dict[str, int] = {}
    for u in d["unexpressible"]:
        reasons[u["reason"]] = reasons.get(u["reason"], 0) + 1
    out.print(f"{len(d['unexpressible'])} rows not expressible (use --json for the list):")
    for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
        out.print(f"  {count:4d}  {reason}")
    if plot is not None:
        out.print(f"plot written to {plot}")
