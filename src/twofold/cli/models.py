"""`twofold models`: the model catalog with exact parameter counts, FLOPs and weight bytes."""

from __future__ import annotations

from typing import Any

import typer

from twofold.cli._app import app, console, emit_json
from twofold.errors import InputError
from twofold.units import GB

__all__ = ["models"]

_WEIGHT_PRECISIONS = ("fp32", "bf16", "fp8", "fp4")
_DEFAULT_SEQ_LEN = 4096


def model_record(model_id: str, seq_len: int | None) -> dict[str, Any]:
    """Everything `twofold models` shows about one model (a catalog id/alias or a config.json path)."""
    # lazy: start-up time
    from twofold.workload.graph import forward_ops, totals, training_ops
    from twofold.workload.params import param_counts, weight_bytes
    from twofold.workload.registry import catalog_entry, get_model

    model = get_model(model_id)
    try:
        entry: dict[str, Any] = catalog_entry(model_id)
    except InputError:  # a config.json path: no catalog metadata
        entry = {"id": model.name, "published_params_b": None, "aliases": [], "source": model.source}
    # Learned position tables cap the sequence (BERT: 512); default to 4096 or that cap.
    seq = seq_len if seq_len is not None else min(_DEFAULT_SEQ_LEN, model.max_position_embeddings)
    counts = param_counts(model)
    forward = totals(forward_ops(model, batch=1, seq_len=seq))
    training = totals(training_ops(model, micro_batch=1, seq_len=seq))
    return {
        "id": entry["id"],
        "family": model.family,
        "aliases": entry.get("aliases", []),
        "source": entry.get("source") or model.source,
        "published_params_b": entry.get("published_params_b"),
        "published_active_params_b": entry.get("published_active_params_b"),
        "total_params": counts.total,
        "active_params": counts.active,
        "embedding_params": counts.embedding,
        "lm_head_params": counts.lm_head,
        "num_layers": model.num_layers,
        "num_moe_layers": counts.num_moe_layers,
        "seq_len": seq,
        "forward_flops_per_sequence": forward["flops"],
        "forward_useful_flops_per_sequence": forward["useful_flops"],
        "training_flops_per_sequence": training["flops"],
        "training_useful_flops_per_sequence": training["useful_flops"],
        "weight_bytes": {p: weight_bytes(model, p) for p in _WEIGHT_PRECISIONS},
    }


@app.command("models")
def models(
    model_id: str | None = typer.Argument(
        None, help="Catalog id, alias or path to a config.json; omit for all."
    ),
    seq_len: int | None = typer.Option(
        None,
        "--seq-len",
        help="Tokens per sequence for the FLOP figures (default 4096, or the model's limit).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document (a list of models)."),
) -> None:
    """Catalog models: exact parameters (total, active per token), FLOPs per sequence, weight bytes."""
    from twofold.workload.registry import list_models  # lazy: start-up time

    ids = [m.name for m in list_models()] if model_id is None else [model_id]
    records = [model_record(i, seq_len) for i in ids]
    if as_json:
        emit_json(records)
    elif model_id is None:
        _render_table(records)
    else:
        _render_detail(records[0])


def _g(value: float) -> str:
    """Three significant figures, without an exponent above 0.001."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}" if value >= 1e-3 else f"{value:.0e}"


def _b(value: float | None) -> str:
    return "-" if value is None else _g(value / 1e9)


def _render_table(records: list[dict[str, Any]]) -> None:
    from rich import box
    from rich.table import Table

    table = Table(
        title="twofold models",
        caption="params in B; fwd, fwd+bwd: TFLOP per sequence of `seq` tokens; bf16 weights in GB",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    columns = ("id", "params", "active", "publ.", "seq", "fwd", "fwd+bwd", "bf16")
    for column in columns:
        table.add_column(column, justify="left" if column == "id" else "right", no_wrap=True)
    for r in records:
        published = r["published_params_b"]
        table.add_row(
            r["id"],
            _b(r["total_params"]),
            _b(r["active_params"]),
            "-" if published is None else f"{published:g}",
            str(r["seq_len"]),
            _g(r["forward_flops_per_sequence"] / 1e12),
            _g(r["training_flops_per_sequence"] / 1e12),
            _g(r["weight_bytes"]["bf16"] / GB),
        )
    console().print(table)


def _render_detail(r: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{r['id']} ({r['family']})", show_header=False)
    table.add_column("field")
    table.add_column("value", justify="right")
    rows = [
        ("source", r["source"] or "-"),
        ("aliases", ", ".join(r["aliases"]) or "-"),
        ("parameters", f"{r['total_params']:,}"),
        ("active per token", f"{r['active_params']:,}"),
        ("published (B)", "-" if r["published_params_b"] is None else f"{r['published_params_b']:g}"),
        ("embedding / lm head", f"{r['embedding_params']:,} / {r['lm_head_params']:,}"),
        ("layers (MoE)", f"{r['num_layers']} ({r['num_moe_layers']})"),
        ("sequence length", str(r["seq_len"])),
        ("forward FLOPs / sequence", f"{r['forward_flops_per_sequence']:.4g}"),
        ("  causal-useful", f"{r['forward_useful_flops_per_sequence']:.4g}"),
        ("training FLOPs / sequence (fwd+bwd)", f"{r['training_flops_per_sequence']:.4g}"),
        ("  causal-useful", f"{r['training_useful_flops_per_sequence']:.4g}"),
    ]
    rows += [(f"weights {p} (GB)", f"{b / GB:,.2f}") for p, b in r["weight_bytes"].items()]
    for row in rows:
        table.add_row(*row)
    console().print(table)
