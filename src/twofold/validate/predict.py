"""The predictor seam: a `Case` in, a predicted step (time and breakdown) out.

`default_predictor(case, calibration)` calls the training estimator with the given training
calibration (`cost.calibration`: the shipped factors, a fitted or a leave-one-source-out set, or
`UNCALIBRATED`); tests pass their own callable of the same signature. Microbenchmark rows
(`predict_micro`) go to the uncalibrated single-chip cost model (GEMM: the MAMF rows are what the
microbenchmark profiles were fitted on) or the communication model (all-reduce, with the calibrated
collective efficiency).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from twofold.cost.calibration import UNCALIBRATED, TrainingCalibration
from twofold.errors import InputError
from twofold.units import GB, GIB, TFLOPS
from twofold.validate.mapping import Case

__all__ = ["StepPrediction", "default_predictor", "predict_micro"]

# Bytes per element of a GEMM operand at each precision (output in bf16 for the 8-bit inputs, as
# torch.matmul / cuBLASLt return it in mamf-finder).
_OPERAND_BYTES = {
    "fp32": 4.0,
    "tf32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "mxfp8": 1.0,
    "int8": 1.0,
    "fp4": 0.5,
}


@dataclass(frozen=True, kw_only=True, slots=True)
class StepPrediction:
    """A predicted training step: seconds, and the seconds of each breakdown term."""

    step_time_s: float
    breakdown: Mapping[str, float] = field(default_factory=dict)
    hidden: Mapping[str, float] = field(default_factory=dict)  # overlapped communication, seconds
    fits: bool | None = None
    memory_per_chip_gib: float | None = None
    caveats: tuple[str, ...] = ()


def case_stack(case: Case) -> str:
    """The stack a row ran (`validate.mapping.row_stack`) as it ran in the row's year
    (`cost.stack.Stack.as_of`: `megatron@2021` where an era of the stack reaches that year), with
    the mechanisms its notes state (`validate.reading.read_stated_mechanisms`: `fsdp+attention_kernel=
    flash1`); rows
    of stacks twofold has no file for (`serving`, `other`) run the chip's reference stack (`auto`)."""
    from twofold.cost.stack import get_stack, is_stack_id
    from twofold.validate.reading import read_stated_mechanisms

    stack = getattr(case, "stack", None) or "auto"
    if not is_stack_id(stack):
        return "auto"
    if stack == "auto":
        return stack
    dated = get_stack(stack).as_of(getattr(case.row, "year", None))
    # A mechanism the row's notes state replaces the stack's where it differs on the row's family.
    stated = {
        name: value
        for name, (value, _) in read_stated_mechanisms(case.row.notes).items()
        if dated.value(name, case.family) != value
    }
    return dated.with_values(stated, "the row's notes").id if stated else dated.id


def default_predictor(case: Case, calibration: TrainingCalibration = UNCALIBRATED) -> StepPrediction:
    """`twofold.estimate.estimate_training` on the case's model, system, layout and workload, with
    `calibration` applied by the estimator."""
    try:
        from twofold.estimate import estimate_training
    except ImportError:
        raise NotImplementedError("training estimator (twofold.estimate) not available") from None
    if calibration.stack is None:  # the row's own software stack (`Case.stack`), unless one is forced
        calibration = calibration.with_stack(case_stack(case))
    est = estimate_training(case.model, case.system, case.layout, case.workload, calibration=calibration)
    caveats: tuple[str, ...] = ()
    if est.fits is False:
        caveats = (
            f"the estimator finds this layout does not fit in memory "
            f"({est.memory_per_chip_gib:.1f} GiB per chip); predicted anyway",
        )
    breakdown = {str(k): float(v) for k, v in dict(est.breakdown).items() if isinstance(v, (int, float))}
    return StepPrediction(
        step_time_s=float(est.step_time_s),
        breakdown=breakdown,
        hidden={str(k): float(v) for k, v in dict(est.hidden_comm).items()},
        fits=est.fits,
        memory_per_chip_gib=est.memory_per_chip_gib,
        caveats=caveats,
    )


# Micro-batches tried where a row does not publish its own (`with_fastest_micro_batch`).
MICRO_BATCH_CANDIDATES = (1, 2, 4, 8, 16, 32)


def with_fastest_micro_batch(case: Case) -> Case:
    """A training row that does not publish its micro-batch (and whose source convention does not
    fix it: `validate.mapping` took 1) ran the one its authors tuned: the candidate
    (`MICRO_BATCH_CANDIDATES`, dividing the batch per data-parallel rank) whose uncalibrated step,
    with the row's stack (`case_stack`), is the fastest that fits in memory. Published throughput
    tables are tuned runs; taking 1 instead charged small models every per-kernel overhead 16-32
    times over. The choice uses the model only, never the published figure, and the row says which
    it took. Other cases are returned as they are."""
    if case.kind != "train" or case.row.micro_batch is not None or case.layout.micro_batch != 1:
        return case
    per_rank = case.workload.global_batch // case.layout.dp
    best: tuple[float, int] | None = None
    for mb in MICRO_BATCH_CANDIDATES:
        if per_rank % mb:
            continue
        trial = replace(case, layout=replace(case.layout, micro_batch=mb))
        try:
            step = default_predictor(trial, UNCALIBRATED)
        except (InputError, NotImplementedError):
            continue
        if step.fits is not False and (best is None or step.step_time_s < best[0]):
            best = (step.step_time_s, mb)
    if best is None or best[1] == 1:
        return case
    tried = ", ".join(map(str, MICRO_BATCH_CANDIDATES))
    note = (
        f"micro-batch not published: {best[1]}, the fastest of {tried} that divides the batch per "
        "data-parallel rank and fits (uncalibrated estimate, the row's stack)"
    )
    return replace(case, layout=replace(case.layout, micro_batch=best[1]), caveats=(*case.caveats, note))


def predict_micro(case: Case, calibration: TrainingCalibration = UNCALIBRATED) -> float:
    """A microbenchmark figure: achieved GEMM TFLOP/s from the cost model, or all-reduce bus bandwidth."""
    if case.kind == "gemm":
        return _gemm_tflops(case)
    if case.kind == "allreduce":
        return _allreduce_busbw_gb_s(case, calibration.collective_efficiency)
    raise NotImplementedError(f"no model for {case.row.metric}")


def _allreduce_busbw_gb_s(case: Case, efficiency: float = 1.0) -> float:
    """All-reduce bus bandwidth (GB/s) over `chips` consecutive chips, from `parallel.comm`.

    nccl-tests' definition (NVIDIA nccl-tests doc/PERFORMANCE.md, "busbw"): algbw = S / t and
    busbw = algbw * 2 (n - 1) / n, which for a bandwidth-bound ring equals the per-chip link
    bandwidth. The payload is the row's (4 GiB in all_reduce_bench.py).
    """
    import numpy as np

    from twofold.parallel.comm import Group, LevelArrays, all_reduce_s

    n = int(case.row.chips or 0)
    if n < 2:
        raise NotImplementedError("an all-reduce needs at least two chips")
    match = re.search(r"(\d+(?:\.\d+)?)\s*GiB payload", case.row.notes)
    payload = float(match.group(1)) * GIB if match else 4.0 * GIB
    levels = LevelArrays.of_system(case.system, efficiency)
    group = Group.place(levels, [(float(n), 1.0)])
    seconds = float(np.asarray(all_reduce_s(levels, group, np.asarray(payload))).reshape(-1)[0])
    return payload / seconds * 2.0 * (n - 1) / n / GB


def _gemm_tflops(case: Case) -> float:
    """TFLOP/s of one (m x k) @ (k x n) GEMM as the cost model times it (`cost.op_times_s`)."""
    from twofold.cost import op_times_s, profile_for
    from twofold.validate.mapping_rules import row_precision
    from twofold.workload.ops import Op

    assert case.gemm_mnk is not None
    m, n, k = case.gemm_mnk
    dtype = str(row_precision(case.row))
    size = _OPERAND_BYTES[dtype]
    flops = 2.0 * m * n * k
    op = Op(
        name="mamf.gemm",
        kind="gemm",
        phase="forward",
        flops=flops,
        bytes_read=(m * k + k * n) * size,
        bytes_written=m * n * 2.0,
        dims={"m": m, "n": n, "k": k},
        dtype=dtype,
    )
    seconds = float(op_times_s([op], case.chip, profile_for(case.chip, UNCALIBRATED))[0])
    return flops / seconds / TFLOPS
