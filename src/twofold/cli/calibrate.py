"""`twofold calibrate`: fit a software stack's factors from your own measured runs, write a stack file."""

from __future__ import annotations

import datetime as _dt
import hashlib
from pathlib import Path
from typing import Any

import typer

from twofold import __version__
from twofold.cli._app import app, console, emit_json
from twofold.errors import InputError

__all__ = ["calibrate_command"]


@app.command("calibrate")
def calibrate_command(
    runs: Path | None = typer.Argument(  # noqa: B008
        None, help="Measured runs: a CSV (or YAML list) in the columns of published_results.csv."
    ),
    name: str = typer.Option(..., "--name", help="Id of the stack to write (then `--stack NAME`)."),
    base_stack: str = typer.Option("auto", "--base-stack", help="Shipped stack the runs start from."),
    from_history: bool = typer.Option(
        False, "--from-history", help="Use the training steps `twofold measure` stored."
    ),
    db: Path | None = typer.Option(None, "--db", help="Results database for --from-history."),  # noqa: B008
    out: Path | None = typer.Option(  # noqa: B008
        None, "--out", help="Where to write the stack (default ~/.twofold/stacks/NAME.yaml)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Refit a stack's software factors (kernels, overheads, overlap, its collectives) from your runs."""
    # lazy: start-up time
    from twofold.cost.stack import list_stacks, user_stack_dir
    from twofold.validate.user_fit import fit_stack, stack_document, write_stack
    from twofold.validate.user_runs import check_runs, read_runs, run_case, runs_from_history

    if not name.replace("-", "").replace("_", "").isalnum():
        raise InputError("name", name, "must be a word (letters, digits, - and _)")
    if name in list_stacks():
        raise InputError("name", name, "is a shipped stack id; choose another name")
    if (runs is None) == (not from_history):
        raise InputError("runs", runs, "give a runs file or --from-history (one of the two)")
    notes: tuple[str, ...] = ()
    if from_history:
        user_runs, notes = runs_from_history(db)
        if not user_runs:
            raise InputError("from-history", str(db or "default db"), "no usable run: " + " ".join(notes))
        digest_source = "\n".join(r.row.id for r in user_runs).encode()
        origin = f"twofold measure history ({db or 'default db'})"
    else:
        assert runs is not None
        user_runs = read_runs(runs)
        digest_source = runs.read_bytes()
        origin = str(runs)
    check_runs(user_runs)  # every run, before any fit: refused with the row and the field named
    cases = [run_case(r) for r in user_runs]
    provenance = {
        "runs": origin,
        "runs_sha256": hashlib.sha256(digest_source).hexdigest(),
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "twofold_version": __version__,
        "num_runs": len(cases),
        "base_stack": base_stack,
    }
    fit = fit_stack(cases, name=name, base_stack=base_stack, provenance=provenance)
    path = out if out is not None else user_stack_dir() / f"{name}.yaml"
    written = None
    if fit.converged:
        written = write_stack(fit, path)
    record: dict[str, Any] = {
        **fit.to_dict(),
        "written": str(written) if written else None,
        "history_notes": list(notes),
        "document": stack_document(fit),
    }
    if as_json:
        emit_json(record)
    else:
        _render(record)
    if not fit.converged:
        raise typer.Exit(1)


def _render(r: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    s = r["summary"]
    if not r["converged"]:
        out.print("[bold red]the fit did not converge[/]: " + "; ".join(r["notes"]))
        return
    table = Table(title=f"runs ({s['runs']}): measured vs predicted, base stack {r['base_stack']}")
    for col in ("run", "chip", "metric", "measured", "base %", "calibrated %", "left out %"):
        table.add_column(col, justify="left" if col in ("run", "chip", "metric") else "right")
    for run in r["runs"]:
        loo = run["loo_ape_pct"]
        table.add_row(
            run["id"],
            run["chip"],
            run["metric"],
            f"{run['measured']:,.4g}",
            f"{run['base_ape_pct']:.1f}",
            f"{run['ape_pct']:.1f}",
            "-" if loo is None else f"{loo:.1f}",
        )
    out.print(table)
    factors = Table(title="fitted parameters (time multiplier theta; prior = base value)")
    for col in ("parameter", "prior", "fitted", "leave-one-run-out range", "freed", "moved"):
        factors.add_column(col, justify="left" if col == "parameter" else "right")
    for p, theta in r["theta"].items():
        lo_hi = r["loo_theta_range"].get(p)
        factors.add_row(
            p,
            f"{r['prior'][p]:.3f}",
            f"{theta:.3f}",
            "-" if lo_hi is None else f"{lo_hi[0]:.3f}-{lo_hi[1]:.3f}",
            "yes" if p in r["freed"] else "",
            "yes" if p in r["moved"] else "",
        )
    out.print(factors)
    for step in r["selection"]:
        model = f"+ {step['parameter']}" if step["parameter"] else "chip factors alone"
        verdict = ("freed" if step["freed"] else "kept at prior") if step["parameter"] else "always free"
        out.print(
            f"selection path: {model}: leave-one-run-out {step['loo_mean_ape_pct']:.2f}%, "
            f"{step['excess_pct']:.2f} (se {step['excess_se_pct']:.2f}) points above the best: {verdict}"
        )
    loo = s["loo_mean_ape_pct"]
    out.print(
        f"mean APE: base {s['base_mean_ape_pct']:.1f}%, in-sample {s['in_sample_mean_ape_pct']:.1f}%, "
        f"leave-one-run-out {'-' if loo is None else f'{loo:.1f}%'}"
    )
    for note in (*r["notes"], *r["history_notes"]):
        out.print(f"note: {note}")
    out.print(f"wrote {r['written']}; use it with --stack {r['stack']['id']}")
