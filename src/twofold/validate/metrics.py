"""Turn a predicted step time into the figure a row publishes, under the source's own definition.

| metric                  | prediction from the step time t (s)                                   |
|-------------------------|-----------------------------------------------------------------------|
| tokens_per_s_per_chip   | global_batch * seq_len / t / chips                                    |
| tokens_per_s            | global_batch * seq_len / t (the whole job)                            |
| sequences_per_s         | global_batch / t (whole job, as AWS Neuron publishes it)              |
| step_time_s             | t                                                                     |
| time_to_train_min       | steps * t / 60, steps = trained tokens / (global_batch * seq_len)     |
| tflops_per_chip         | F_source / t / chips / 1e12                                           |
| mfu (%)                 | 100 * F_source / t / chips / peak_source (unit "fraction": without 100) |

F_source is the source's FLOP count (`validate.flops`: Megatron model FLOPs, Narayanan eq. (3) with
recompute, MaxText's count); peak_source the peak the source divided by (312 TF for A100 in
Korthikanti et al. 2022, 989 TF for H100 in the Megatron-LM README), else the chip's dense peak at
the row's precision. Time-to-train (MLPerf) covers only the training steps: MLPerf's clock also
includes evaluation runs and start-up, so the prediction is a lower bound and such rows are an
end-to-end check rather than a throughput figure.
"""

from __future__ import annotations

from twofold.units import TFLOPS
from twofold.validate.dataset import THROUGHPUT_METRICS, TRAINING_METRICS
from twofold.validate.flops import source_step_flops
from twofold.validate.mapping import Case, source_convention
from twofold.validate.reading import read_flop_convention

__all__ = ["THROUGHPUT_METRICS", "TRAINING_METRICS", "predict_training_figure", "source_flops"]

# THROUGHPUT_METRICS and TRAINING_METRICS live with the rows' schema (`validate.dataset`, so that
# `validate.mapping` reads them without importing this module); re-exported here.


def source_flops(case: Case) -> float:
    """The FLOPs of one step as the row's source counts them: mapping.yaml's convention for the
    source, else the one its notes state (`validate.reading.read_flop_convention`), else Megatron's."""
    formula = source_convention(case.row).get("flops")
    if formula is None:
        stated = read_flop_convention(case.row.notes)
        formula = stated[0] if stated else "megatron"
    return source_step_flops(str(formula), case.model, case.workload.global_batch, case.workload.seq_len)


def _peak_flops_per_s(case: Case) -> float:
    peak = source_convention(case.row).get("mfu_peak_tflops")
    if peak is None:
        peak = case.chip.peak_tflops(case.workload.precision)
    return float(peak) * TFLOPS


def predict_training_figure(case: Case, step_time_s: float) -> float:
    """The row's published figure implied by a predicted step time (see the module table)."""
    if not step_time_s > 0:
        raise ValueError(f"step time must be positive, got {step_time_s}")
    metric = case.row.metric
    chips = case.layout.chips
    batch, seq = case.workload.global_batch, case.workload.seq_len
    if metric == "tokens_per_s_per_chip":
        return batch * seq / step_time_s / chips
    if metric == "tokens_per_s":  # the whole job's
        return batch * seq / step_time_s
    if metric == "sequences_per_s":
        return batch / step_time_s
    if metric == "step_time_s":
        return step_time_s
    if metric == "time_to_train_min":
        if case.steps is None:
            raise ValueError(f"{case.row.id}: time-to-train needs the number of steps")
        return case.steps * step_time_s / 60.0
    if metric == "tflops_per_chip":
        return source_flops(case) / step_time_s / chips / TFLOPS
    if metric == "mfu":  # in percent, or as a fraction where the row's unit says so
        scale = 1.0 if case.row.unit.strip() == "fraction" else 100.0
        return scale * source_flops(case) / step_time_s / chips / _peak_flops_per_s(case)
    raise ValueError(f"{case.row.id}: metric {metric!r} is not a training figure")
