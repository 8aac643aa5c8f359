"""`twofold estimate` / `twofold plan` on an ONNX file (`--model model.onnx --input-shape ...`).

Imported models take data-parallel and ZeRO/FSDP layouts only (`twofold.estimate.imported`); the
micro-batch is the batch of the input shapes, and the sequence length that of the token input.
"""

from __future__ import annotations

from typing import Any

from twofold.cli._app import console, emit_json
from twofold.cli._options import check_seq_len, import_onnx
from twofold.cli._render import render_training_estimate, with_usable_memory
from twofold.errors import InputError, NoAnswer

__all__ = ["estimate_onnx", "plan_onnx"]


def estimate_onnx(
    *,
    model: str,
    input_shape: list[str],
    chip: str,
    system: str | None,
    chips: int | None,
    dp: int | None,
    layout_flags: dict[str, Any],
    micro_batch: int,
    global_batch: int,
    seq_len: int,
    default_seq_len: int,
    precision: str,
    as_json: bool,
    mem_headroom: float,
) -> None:
    """Import, estimate one training step, print it (JSON: `ImportedTrainingEstimate.to_dict()`
    plus the usable memory)."""
    # lazy: start-up time
    from twofold.estimate.imported import estimate_imported_training
    from twofold.hardware.catalog import get_chip, system_for
    from twofold.parallel.layout import Layout, TrainingWorkload

    imported = import_onnx(model, input_shape, precision)
    check_seq_len(imported, seq_len, default_seq_len)
    model_parallel = layout_flags["tp"] * layout_flags["pp"] * layout_flags["cp"]
    for axis in ("tp", "pp", "vp", "cp", "ep"):  # named before anything is derived from them
        if layout_flags[axis] != 1:
            raise InputError(
                axis, layout_flags[axis], "imported models support data parallel and ZeRO/FSDP layouts only"
            )
    the_dp = dp if dp is not None else (chips or 1) // model_parallel
    if chips is not None and the_dp != chips:
        raise InputError("chips", chips, f"must equal dp={the_dp} for an imported model")
    # --micro-batch defaults to 1: the imported batch stands unless another is asked for.
    mb = imported.batch if micro_batch == 1 else micro_batch
    layout = Layout(
        dp=the_dp, micro_batch=mb, **{k: v for k, v in layout_flags.items() if k in ("zero", "recompute")}
    )
    the_chip = get_chip(chip)
    workload = TrainingWorkload(global_batch=global_batch, seq_len=imported.seq_len or 1, precision=precision)
    result = estimate_imported_training(
        imported, system_for(the_chip, system), layout, workload, chip=the_chip, mem_headroom=mem_headroom
    )
    d = with_usable_memory(result.to_dict(), mem_headroom)
    if as_json:
        emit_json(d)
        return

    render_training_estimate(d)
    _render_extra(d)


def plan_onnx(
    *,
    model: str,
    input_shape: list[str],
    chip: str,
    system: str | None,
    chips: int,
    global_batch: int,
    seq_len: int,
    default_seq_len: int,
    precision: str,
    top: int,
    as_json: bool,
    mem_headroom: float,
) -> None:
    """Import, rank the ZeRO stages on dp = chips, print (JSON: `PlanResult.to_dict()` plus
    `unsupported_ops`)."""
    # lazy: start-up time
    from twofold.hardware.catalog import get_chip, system_for
    from twofold.parallel.layout import TrainingWorkload
    from twofold.search.imported import plan_imported

    imported = import_onnx(model, input_shape, precision)
    check_seq_len(imported, seq_len, default_seq_len)
    the_chip = get_chip(chip)
    workload = TrainingWorkload(global_batch=global_batch, seq_len=imported.seq_len or 1, precision=precision)
    result = plan_imported(
        imported,
        system_for(the_chip, system),
        chips,
        workload,
        chip=the_chip,
        top_k=top,
        mem_headroom=mem_headroom,
    )
    d = result.to_dict() | {"unsupported_ops": dict(sorted(imported.unsupported.items()))}
    if imported.seq_len is None:
        d["workload"]["seq_len"] = None
    if as_json:
        emit_json(d)
    else:
        _render_plan(d, global_batch)
    if d["best"] is None:  # a valid question without an answer: exit 1 (`errors.NoAnswer`)
        raise NoAnswer(d["explanation"][0] if d["explanation"] else "no layout fits")


def _render_plan(d: dict[str, Any], global_batch: int) -> None:
    out = console()
    out.print(
        f"[bold]{d['model']}[/] on {d['chips']} x {d['chip']} ({d['system']}), global_batch={global_batch}"
    )
    for rank, row in enumerate(d["top"], start=1):
        lay = row["layout"]
        out.print(
            f"{rank}. dp={lay['dp']} zero={lay['zero']} micro_batch={lay['micro_batch']}: "
            f"{row['samples_per_s_per_chip']:,.1f} samples/s/chip, step {row['step_time_s']:.4g} s, "
            f"MFU {row['mfu']:.1%}, {row['memory_per_chip_gib']:.1f} GiB"
        )
    for line in d["explanation"]:
        out.print(f"[yellow]{line}[/yellow]")
    _render_extra(d)


def _render_extra(d: dict[str, Any]) -> None:
    out = console()
    if "samples_per_s_per_chip" in d and d.get("tokens_per_s_per_chip") is not None:  # else in the step line
        out.print(f"{d['samples_per_s_per_chip']:,.1f} samples/s/chip")
    if d["unsupported_ops"]:
        listed = ", ".join(f"{k} x{v}" for k, v in d["unsupported_ops"].items())
        out.print(f"[yellow]unsupported (priced as zero-FLOP memory ops):[/yellow] {listed}")
    else:
        out.print("every operator recognised")
