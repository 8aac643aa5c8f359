"""`twofold measure` and `twofold history`: calibrate the local device; list recorded runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from twofold.checks import positive_int
from twofold.cli._app import app, console, emit_json

__all__ = ["history_cmd", "measure_cmd"]


def _progress_bar() -> tuple[Any, Any]:
    """A rich progress bar on stderr (stdout stays clean for --json) and its update callback."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]measure[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task("", total=None)

    def update(done: int, total: int, kernel: Any) -> None:
        progress.update(task, completed=done, total=total, description=kernel.name[:60])

    return progress, update


@app.command("measure")
def measure_cmd(
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    quick: bool = typer.Option(False, "--quick", help="A small sweep (about a minute on a 2-core CPU)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document to stdout."),
    db: str | None = typer.Option(None, "--db", help="Results database (default $TWOFOLD_DB or ~/.twofold)."),
    profile_out: str | None = typer.Option(
        None, "--profile-out", help="Where to write the profile (default ~/.twofold/profiles/local.yaml)."
    ),
    threads: int | None = typer.Option(None, "--threads", help="PyTorch threads (default: all usable CPUs)."),
) -> None:
    """Microbenchmarks and real training steps on this device; fits and saves its calibration profile."""
    # lazy: start-up time
    from twofold.measure.bench import TorchDevice
    from twofold.measure.run import measure

    dev = TorchDevice(
        device, threads=threads, repeats=7 if quick else 11, min_sample_s=0.01 if quick else 0.02
    )
    progress, update = _progress_bar()
    with progress:
        result = measure(dev, quick=quick, db_path=db, profile_path=profile_out, on_progress=update)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if json_out:
        emit_json(result.to_dict())
        return
    _render(result)


def _render(result: Any) -> None:
    from rich.table import Table

    out = console()
    chip, prof, summary = result.fit.chip, result.fit.profile, result.summary()
    out.print(
        f"[bold]{chip.name}[/] ({result.info.kind}, {result.info.threads} threads)  run {result.run_id}"
    )
    bf16 = f", bf16 {chip.bf16_dense_tflops:.3f}" if chip.bf16_dense_tflops else ""
    out.print(
        f"peak (best measured) TFLOPS: fp32 {chip.fp32_dense_tflops:.3f}{bf16}; "
        f"bandwidth {chip.hbm_bandwidth_tb_s * 1e3:.1f} GB/s "
        f"(DRAM stream {summary['stream_bandwidth_gb_s'] or float('nan'):.1f} GB/s)"
    )
    effs = ", ".join(f"{p} {v:.2f}" for p, v in prof.gemm_efficiency.items())
    out.print(
        f"profile: gemm_efficiency {effs}; gemm_half_flops {prof.gemm_half_flops:.3g}; "
        f"memory_efficiency {prof.memory_efficiency:.2f}; "
        f"attention_efficiency {prof.attention_efficiency:.2f}; "
        f"op_overhead_s {prof.op_overhead_s:.3g}"
    )
    table = Table(title="training steps: predicted vs measured")
    for col in ("model", "batch", "seq", "role", "predicted s", "measured s", "error"):
        table.add_column(col, justify="left" if col in ("model", "role") else "right")
    for r in result.validation:
        table.add_row(
            r.model,
            str(r.micro_batch),
            str(r.seq_len),
            r.role,
            f"{r.predicted_s:.4f}",
            f"{r.measured_s:.4f}",
            f"{r.error_pct:+.1f}%",
        )
    out.print(table)
    if summary["heldout_median_abs_error_pct"] is not None:
        out.print(
            f"held-out steps: median |error| {summary['heldout_median_abs_error_pct']:.1f}%, "
            f"max {summary['heldout_max_abs_error_pct']:.1f}%"
        )
    out.print(f"profile: {result.profile_path}  (use it as --chip local or --chip {result.profile_path})")
    out.print(f"database: {result.db_path}")


@app.command("history")
def history_cmd(
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document to stdout."),
    db: str | None = typer.Option(None, "--db", help="Results database (default $TWOFOLD_DB or ~/.twofold)."),
    limit: int | None = typer.Option(None, "--limit", help="Show only the newest N runs."),
) -> None:
    """Runs recorded in the results database, newest first."""
    from twofold.measure.db import default_db_path, list_runs  # lazy: start-up time

    if limit is not None:
        positive_int("limit", limit, "must be >= 1")
    path = Path(db).expanduser() if db is not None else default_db_path()
    runs = list_runs(path, limit=limit)
    if json_out:
        emit_json({"db": str(path), "runs": [r.to_dict() for r in runs]})
        return
    from rich.table import Table

    table = Table(title=f"runs in {path}")
    for col in (
        "run",
        "time",
        "kind",
        "device",
        "fingerprint",
        "torch",
        "measurements",
        "held-out median err",
    ):
        table.add_column(col)
    for r in runs:
        err = (r.notes.get("summary") or {}).get("heldout_median_abs_error_pct")
        table.add_row(
            r.id,
            r.time,
            r.kind,
            r.device,
            r.fingerprint,
            str(r.versions.get("torch", "")),
            str(r.num_measurements),
            f"{err:.1f}%" if isinstance(err, (int, float)) else "",
        )
    console().print(table)
    if not runs:
        print("no runs recorded yet; run `twofold measure`", file=sys.stderr)
