"""`validate()`: predict every expressible published row and summarise the error.

Each row goes through `mapping.express` (a `Case` or the reason it is unexpressible), then through a
predictor (the estimator by default; any `Callable[[Case], StepPrediction]` for tests), then
`metrics.predict_training_figure` turns the predicted step time into the published figure under the
source's definition. The training calibration is part of the estimator (`cost.calibration`: GEMM,
attention, memory-bound and collective efficiency factors, shipped in `cost/calibration.yaml` and
refitted by `benchmarks/validate_accuracy.py --fit` through `validate.calibrate`), so the predictions
reported here are what `twofold estimate` and `plan` give. Leave-one-source-out refits the factors
without each source and runs the estimator with them on that source: the figure to trust for a
workload twofold has not seen. Held-out predictions come in three groupings, each refitting the
factors without a whole group and running the estimator with them on that group only (the
uncalibrated predictions of every row are made once and reused by every fold):

- leave-one-stack-out (`loso`): the group is the row's software stack (`Case.stack`; every
  Megatron-LM, NeMo, Megatron-Bridge and Narayanan row shares the stack `megatron`; the row's source
  where it has no stack id): a stack twofold has not seen;
- leave-one-family-out (`lofo`): the group is the hardware family; the family's own GEMM and overlap
  factors drop out of the fit, so its chips run at the priors of `TrainingCalibration.gemm_factor`:
  a chip known only from its specifications;
- leave-one-source-out within stacks (`losrc`): the group is the row's source (publisher and
  table); the source's stack keeps its rows from other sources. The situation of a new publisher
  running a stack twofold knows (`--stack` named): what `twofold validate --data FILE --stack ID`
  measures on a team's own rows;
- leave-one-chip-out (`loco`): the group is the chip id; a chip whose family has other measured chips
  inherits the family's factors (used for the uncertainty of such chips, `validate.uncertainty`).

Inference rows go to the serving estimator (`validate.inference`) and are summarised apart.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from twofold.checks import one_of
from twofold.cost.calibration import (
    UNCALIBRATED,
    TrainingCalibration,
    calibration_to_dict,
    shipped_calibration,
)
from twofold.errors import InputError
from twofold.validate import calibrate as cal
from twofold.validate.dataset import PublishedRow, load_rows
from twofold.validate.inference import predict_inference
from twofold.validate.mapping import Case, Unexpressible, express
from twofold.validate.mechanisms import mechanism_groups
from twofold.validate.metrics import THROUGHPUT_METRICS, TRAINING_METRICS, predict_training_figure
from twofold.validate.predict import (
    StepPrediction,
    case_stack,
    default_predictor,
    predict_micro,
    with_fastest_micro_batch,
)
from twofold.validate.reading import read_stated_peak_memory_gib, stated_runtime

__all__ = ["RowResult", "Summary", "ValidationResult", "validate", "fit_row", "CALIBRATION_MODES"]

CALIBRATION_MODES = ("shipped", "none", "in-sample")
Predictor = Callable[[Case, TrainingCalibration], StepPrediction]
WORST_ROWS = 10


@dataclass(frozen=True, kw_only=True, slots=True)
class RowResult:
    """One predicted row: published vs predicted figure, and the step-time breakdown behind it."""

    id: str
    source: str
    family: str
    hardware: str
    model: str
    metric: str
    unit: str
    published: float
    predicted: float
    ape_pct: float  # |predicted - published| / published * 100
    signed_error_pct: float  # (predicted - published) / published * 100
    throughput: bool  # a training-throughput row (the accuracy target)
    step_time_s: float | None = None
    breakdown: Mapping[str, float] = field(default_factory=dict)
    layout: str = ""
    chip: str = ""
    system: str = ""
    caveats: tuple[str, ...] = ()
    stack: str = ""  # the stack id (the source where the row has none): the LOSO group
    seq_len: int | None = None  # the training workload's sequence length
    loso_predicted: float | None = None
    loso_ape_pct: float | None = None
    lofo_predicted: float | None = None
    lofo_ape_pct: float | None = None
    loco_predicted: float | None = None
    loco_ape_pct: float | None = None
    losrc_predicted: float | None = None
    losrc_ape_pct: float | None = None
    # The estimate's interval for the predicted figure (`estimate.uncertainty`, at its coverage) and
    # whether the published figure falls inside it (training rows only).
    interval: tuple[float, float] | None = None
    inside_interval: bool | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Summary:
    """Absolute percentage error over a group of rows."""

    group: str
    rows: int
    median_ape_pct: float
    mean_ape_pct: float

    @classmethod
    def of(cls, group: str, apes: Sequence[float]) -> Summary:
        return cls(
            group=group,
            rows=len(apes),
            median_ape_pct=float(statistics.median(apes)),
            mean_ape_pct=float(statistics.fmean(apes)),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class ValidationResult:
    rows: tuple[RowResult, ...]
    unexpressible: tuple[Mapping[str, str], ...]
    overall: Summary | None  # training-throughput rows, in-sample (shipped or fitted calibration)
    by_source: tuple[Summary, ...]
    by_family: tuple[Summary, ...]
    worst: tuple[RowResult, ...]
    calibration: Mapping[str, Any]
    loso_overall: Summary | None = None
    loso_by_source: tuple[Summary, ...] = ()
    loso_by_family: tuple[Summary, ...] = ()
    loso_by_stack: tuple[Summary, ...] = ()
    lofo_overall: Summary | None = None
    lofo_by_family: tuple[Summary, ...] = ()
    loco_overall: Summary | None = None
    losrc_overall: Summary | None = None
    losrc_by_family: tuple[Summary, ...] = ()
    losrc_by_stack: tuple[Summary, ...] = ()
    other_metrics: tuple[Summary, ...] = ()  # time-to-train and microbenchmarks, by metric
    # Serving rows (output tokens/s of the instance), kept apart from the training figures.
    inference_rows: tuple[RowResult, ...] = ()
    inference_overall: Summary | None = None
    inference_by_family: tuple[Summary, ...] = ()
    # LoRA/QLoRA rows (throughput and peak memory per chip), kept apart from the training fit and
    # figures: predicted with the calibration in force, never fitted on.
    finetune_rows: tuple[RowResult, ...] = ()
    finetune_overall: Summary | None = None
    finetune_by_metric: tuple[Summary, ...] = ()
    # Peak memory per chip where a training row's notes state it (`validate.reading`
    # read_stated_peak_memory_gib), against the memory model of its predicted layout: a check of
    # `parallel.memory`, never fitted on (metric "peak_memory_gib (stated)").
    memory_rows: tuple[RowResult, ...] = ()
    memory_overall: Summary | None = None
    # Share of training-throughput rows whose published figure lies inside the estimate's interval,
    # and the interval's nominal coverage (`estimate.uncertainty`).
    interval_coverage_pct: float | None = None
    interval_nominal_pct: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _signed_pct(predicted: float, published: float) -> float:
    return (predicted - published) / published * 100.0


def _layout_text(case: Case) -> str:
    lay = case.layout
    return (
        f"dp{lay.dp} tp{lay.tp} pp{lay.pp} vp{lay.vp} cp{lay.cp} ep{lay.ep}"
        + ("" if lay.etp is None else f" etp{lay.etp}")
        + f" zero{lay.zero} mb{lay.micro_batch} recompute={lay.recompute}"
    )


def _time_sign(metric: str) -> int:
    return 1 if metric in ("step_time_s", "time_to_train_min") else -1


def validate(
    rows: Iterable[PublishedRow] | None = None,
    *,
    source: str | None = None,
    family: str | None = None,
    calibration: str = "shipped",
    loso: bool = False,
    lofo: bool = False,
    loco: bool = False,
    losrc: bool = False,
    predictor: Predictor | None = None,
    stack: str | None = None,
    force_stack: bool = False,
) -> ValidationResult:
    """Predict the published rows (all, or one source / hardware family) and summarise the error.

    `calibration`: "shipped" runs the estimator with the shipped factors (`cost/calibration.yaml`,
    what `twofold estimate` uses); "none" the uncalibrated model; "in-sample" refits on the selected
    rows and runs the estimator with the fitted factors. `loso=True` adds leave-one-stack-out
    predictions: for each stack, the factors are refitted on every other stack's rows of the whole
    dataset and the estimator predicts that stack with them; `lofo=True` the same per hardware
    family, `loco=True` per chip, `losrc=True` per source (module docstring). Every reported
    prediction comes from the estimator with the factors in place; the fit's linearisation
    (`validate.mechanisms`) only finds the factors. `source` and `family` match case-insensitively
    on a substring.

    `stack`: a shipped stack id selects the rows that ran that stack (`mapping.row_stack`; every row
    is always predicted with its own stack); a stack file (or a user stack, `cost.stack.get_stack`)
    predicts the selected rows with that stack instead, with the shipped calibration (refitting a
    stack of one's own is `twofold calibrate`'s job). `force_stack=True` runs every selected row with
    the shipped stack `stack` instead of selecting by it (rows from elsewhere, `twofold validate
    --data FILE --stack ID`: the team names the stack its runs used).
    """
    one_of("calibration", calibration, CALIBRATION_MODES)
    all_rows = tuple(load_rows() if rows is None else rows)
    selected = _select(all_rows, source=source, family=family)
    predictor = predictor or default_predictor
    forced_id = None
    if force_stack and stack is not None and stack != "auto":
        from twofold.cost.stack import is_stack_id

        if is_stack_id(stack):
            forced_id = stack
    if stack is not None and stack != "auto" and forced_id is None:
        held_out = loso or lofo or loco or losrc
        selected, predictor = _with_stack(stack, selected, predictor, calibration, held_out)
    # The fit needs the uncalibrated prediction of every row it uses (LOSO: the whole dataset).
    passes = (("loso", loso), ("lofo", lofo), ("loco", loco), ("losrc", losrc))
    held = {name: on for name, on in passes if on}
    needed = all_rows if held or calibration == "in-sample" else selected
    raw: dict[str, tuple[Case, StepPrediction]] = {}
    unexpressible: list[Mapping[str, str]] = []
    micro: dict[str, Case] = {}
    finetune: dict[str, Case] = {}
    infer: list[PublishedRow] = []
    selected_ids = {r.id for r in selected}
    for row in needed:
        if row.task == "infer":
            if row.id in selected_ids:
                infer.append(row)
            continue
        outcome = express(row)
        if forced_id is not None and isinstance(outcome, Case):
            # The named stack, run as the row states torch.compile (`validate.reading.stated_runtime`).
            outcome = replace(outcome, stack=stated_runtime(forced_id, row.notes))
        if isinstance(outcome, Case):
            outcome = with_fastest_micro_batch(outcome)  # an unpublished micro-batch
        if isinstance(outcome, Unexpressible):
            if row.id in selected_ids:
                unexpressible.append(_unexpressible_entry(row, outcome.family, outcome.reason))
            continue
        if outcome.kind == "finetune":  # summarised apart, never fitted on
            if row.id in selected_ids:
                finetune[row.id] = outcome
            continue
        if outcome.kind == "train" and row.metric not in TRAINING_METRICS:
            if row.id in selected_ids:  # e.g. peak memory: no time figure to predict
                reason = f"metric {row.metric} is not a training time or throughput figure"
                unexpressible.append(_unexpressible_entry(row, outcome.family, reason))
            continue
        try:
            if outcome.kind == "train":
                raw[row.id] = (outcome, predictor(outcome, UNCALIBRATED))
            elif row.id in selected_ids:
                micro[row.id] = outcome
        except (InputError, NotImplementedError) as exc:
            if row.id in selected_ids:
                unexpressible.append(_unexpressible_entry(row, outcome.family, f"estimator: {exc}"))
    fit_rows = {rid: fit_row(case, pred) for rid, (case, pred) in raw.items()}
    throughput_fit = [f for f in fit_rows.values() if _is_throughput(raw[f.id][0])]
    chosen, cal_info = _calibration(calibration, [f for f in throughput_fit if f.id in selected_ids])
    fold_cal = {name: _folds(throughput_fit, _FOLD_KEYS[name]) for name in held}
    if calibration == "in-sample":
        cal_info["parameters"] = _parameter_evidence(
            [f for f in throughput_fit if f.id in selected_ids], fold_cal.get("loso", {})
        )

    results: list[RowResult] = []
    for row in selected:
        if row.id in raw:
            case, pred = raw[row.id]
            if calibration != "none":
                pred = predictor(case, chosen)
            out_of_sample: dict[str, StepPrediction] = {}
            if _is_throughput(case):
                this_fit = fit_rows[row.id]
                for name, folds in fold_cal.items():
                    factors = folds.get(_FOLD_KEYS[name](this_fit))
                    if factors is not None:
                        out_of_sample[name] = predictor(case, factors)
            results.append(_train_result(case, pred, out_of_sample))
        elif row.id in micro:
            case = micro[row.id]
            results.append(_micro_result(case, predict_micro(case, chosen)))
    memory = [m for row in selected if row.id in raw and (m := _memory_result(*raw[row.id])) is not None]
    inference = [_inference_result(row, chosen, unexpressible) for row in infer]
    tuned = [_finetune_result(case, predictor, chosen, unexpressible) for case in finetune.values()]
    return replace(
        _summarise(results, [r for r in inference if r is not None], unexpressible, cal_info, set(held)),
        **_finetune_summary([r for r in tuned if r is not None]),
        memory_rows=tuple(memory),
        memory_overall=Summary.of("peak memory per chip stated in the notes", [m.ape_pct for m in memory])
        if memory
        else None,
    )


MEMORY_METRIC = "peak_memory_gib (stated)"


def _memory_result(case: Case, pred: StepPrediction) -> RowResult | None:
    """The row's stated peak memory per chip against the memory model's (`StepPrediction`
    memory_per_chip_gib, the uncalibrated prediction: memory does not depend on the fitted
    factors), or None where the notes state none."""
    stated = read_stated_peak_memory_gib(case.row.notes)
    if stated is None or pred.memory_per_chip_gib is None or stated <= 0:
        return None
    signed = _signed_pct(pred.memory_per_chip_gib, stated)
    return replace(
        _predicted(case, pred, pred.memory_per_chip_gib),
        metric=MEMORY_METRIC,
        unit="GiB",
        published=stated,
        ape_pct=abs(signed),
        signed_error_pct=signed,
    )


def _finetune_result(
    case: Case,
    predictor: Predictor,
    calibration: TrainingCalibration,
    unexpressible: list[Mapping[str, str]],
) -> RowResult | None:
    """A LoRA/QLoRA row: its throughput from the predicted step time (`validate.metrics`), or its
    peak memory against the predicted memory per chip (GiB)."""
    try:
        pred = predictor(case, calibration)
    except (InputError, NotImplementedError) as exc:
        unexpressible.append(_unexpressible_entry(case.row, case.family, f"estimator: {exc}"))
        return None
    if case.row.metric == "peak_memory_gib":
        value = pred.memory_per_chip_gib
        if value is None:
            unexpressible.append(_unexpressible_entry(case.row, case.family, "no memory prediction"))
            return None
    else:
        value = predict_training_figure(case, pred.step_time_s)
    return _predicted(case, pred, float(value))


def _finetune_summary(rows: list[RowResult]) -> dict[str, Any]:
    rows = sorted(rows, key=lambda r: r.id)
    return {
        "finetune_rows": tuple(rows),
        "finetune_overall": Summary.of(
            "LoRA/QLoRA rows (throughput and peak memory)", [r.ape_pct for r in rows]
        )
        if rows
        else None,
        "finetune_by_metric": _groups(
            rows, lambda r: "peak memory" if r.metric == "peak_memory_gib" else "throughput", "ape_pct"
        ),
    }


# The group each held-out pass leaves out (module docstring).
_FOLD_KEYS: dict[str, Callable[[cal.FitRow], str]] = {
    "loso": cal.stack_of,
    "lofo": lambda r: r.family,
    "loco": lambda r: r.chip,
    "losrc": lambda r: r.source,
}


def _parameter_evidence(
    rows: Sequence[cal.FitRow], folds: Mapping[str, TrainingCalibration]
) -> dict[str, dict[str, Any]]:
    """Per fitted parameter: the rows whose step it scales, and the range of its time multiplier
    over the leave-one-stack-out folds that fitted it (how far the evidence moves it)."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        for group, seconds in r.groups.items():
            if seconds > 0:
                for name in cal.group_parameters(group):
                    out.setdefault(name, {"rows": 0})["rows"] += 1
    thetas = [cal.theta_of(c) for c in folds.values()]
    for name, info in out.items():
        values = [t[name] for t in thetas if name in t]
        if values:
            info["loso_theta_range"] = [min(values), max(values)]
    return out


def _folds(rows: Sequence[cal.FitRow], key: Callable[[cal.FitRow], str]) -> dict[str, TrainingCalibration]:
    """The estimator's factors fitted without each group of `key`, by group."""
    base = shipped_calibration()
    return {g: cal.to_training(c.theta, base) for g, c in cal.held_out(rows, key).items()}


def _inference_result(
    row: PublishedRow, calibration: TrainingCalibration, unexpressible: list[Mapping[str, str]]
) -> RowResult | None:
    from twofold.validate.mapping import hardware_family

    fam = hardware_family(row)
    try:
        value, detail = predict_inference(row, calibration)
    except NotImplementedError as exc:
        unexpressible.append(_unexpressible_entry(row, fam, str(exc)))
        return None
    return replace(_compared(row, fam, value), breakdown=detail, chip=_inference_chip(row))


def _inference_chip(row: PublishedRow) -> str:
    """The catalog chip of a serving row ("" where `validate.inference` cannot name one)."""
    from twofold.validate.inference import row_chip

    return row_chip(row)


def _with_stack(
    stack: str, rows: list[PublishedRow], predictor: Predictor, calibration: str, held_out: bool
) -> tuple[list[PublishedRow], Predictor]:
    """`validate(stack=...)`: the rows of a shipped stack, or every selected row run with a stack file."""
    from twofold.cost.stack import get_stack, is_stack_id
    from twofold.validate.mapping import row_stack

    if is_stack_id(stack):
        out = [r for r in rows if row_stack(r) == stack]
        if not out:
            known = sorted({row_stack(r) for r in rows})
            raise InputError("stack", stack, f"no selected row ran this stack; rows have: {', '.join(known)}")
        return out, predictor
    forced = get_stack(stack)  # a file or a user stack: refused by field if malformed
    if calibration != "shipped" or held_out:
        rule = "a stack file is predicted with the shipped calibration only (no refit or leave-out)"
        raise InputError("stack", stack, rule)

    def run(case: Case, factors: TrainingCalibration) -> StepPrediction:
        return predictor(case, factors.with_stack(forced))

    return rows, run


def _select(rows: Sequence[PublishedRow], *, source: str | None, family: str | None) -> list[PublishedRow]:
    from twofold.validate.mapping import hardware_family

    out = list(rows)
    if source:
        out = [r for r in out if source.lower() in r.source.lower()]
        if not out:
            known = sorted({r.source for r in rows})
            raise InputError("source", source, f"matches no source; known: {'; '.join(known)}")
    if family:
        out = [r for r in out if family.lower() in hardware_family(r).lower()]
        if not out:
            known = sorted({hardware_family(r) for r in rows})
            raise InputError("family", family, f"matches no hardware family; known: {', '.join(known)}")
    return out


def _unexpressible_entry(row: PublishedRow, family: str, reason: str) -> dict[str, str]:
    return {
        "id": row.id,
        "source": row.source,
        "family": family,
        "hardware": row.hardware,
        "model": row.model,
        "metric": row.metric,
        "reason": reason,
    }


def _is_throughput(case: Case) -> bool:
    return case.row.metric in THROUGHPUT_METRICS


def fit_row(case: Case, pred: StepPrediction) -> cal.FitRow:
    """What the fit needs from one row: its log error under the uncalibrated prediction `pred`, and
    the seconds of that step each parameter scales (`validate.mechanisms`)."""
    raw = predict_training_figure(case, pred.step_time_s)
    return cal.FitRow(
        id=case.row.id,
        source=case.row.source,
        log_error=math.log(raw / case.row.value),
        time_sign=_time_sign(case.row.metric),
        step_time_s=pred.step_time_s,
        groups=mechanism_groups(case, pred),
        stack=case.stack,
        family=case.family,
        chip=case.chip.id,
    )


def _calibration(mode: str, rows: list[cal.FitRow]) -> tuple[TrainingCalibration, dict[str, Any]]:
    if mode == "none":
        return UNCALIBRATED, {"mode": "none"}
    shipped = shipped_calibration()
    if mode == "in-sample":
        fitted = cal.fit(rows)
        factors = cal.to_training(fitted.theta, shipped)
        return factors, {"mode": "in-sample", **fitted.to_dict(), "factors": calibration_to_dict(factors)}
    theta = cal.theta_of(shipped)
    return shipped, {"mode": "shipped", "theta": theta, "factors": calibration_to_dict(shipped)}


def _compared(row: PublishedRow, family: str, value: float) -> RowResult:
    """`value` against `row`'s published figure; the callers add what else their kind of row has."""
    signed = _signed_pct(value, row.value)
    return RowResult(
        id=row.id,
        source=row.source,
        family=family,
        hardware=row.hardware,
        model=row.model,
        metric=row.metric,
        unit=row.unit,
        published=row.value,
        predicted=value,
        ape_pct=abs(signed),
        signed_error_pct=signed,
        throughput=False,
    )


def _train_result(case: Case, pred: StepPrediction, held: Mapping[str, StepPrediction]) -> RowResult:
    """The row's in-sample result, with its held-out predictions (`held`: pass name -> prediction)."""
    out_of_sample: dict[str, Any] = {}
    for name, held_pred in held.items():
        value = predict_training_figure(case, held_pred.step_time_s)
        out_of_sample[f"{name}_predicted"] = value
        out_of_sample[f"{name}_ape_pct"] = abs(_signed_pct(value, case.row.value))
    value = predict_training_figure(case, pred.step_time_s)
    interval = _interval(case, value)
    return replace(
        _predicted(case, pred, value),
        interval=interval,
        inside_interval=None if interval is None else interval[0] <= case.row.value <= interval[1],
        throughput=_is_throughput(case),
        **out_of_sample,
    )


def _predicted(case: Case, pred: StepPrediction, value: float) -> RowResult:
    """`value` against the row's published figure, with the step behind it (training and fine-tuning)."""
    return replace(
        _compared(case.row, case.family, value),
        step_time_s=pred.step_time_s,
        breakdown=dict(pred.breakdown),
        layout=_layout_text(case),
        chip=case.chip.id,
        system=case.system.id,
        caveats=case.caveats + pred.caveats,
        stack=case.stack,
        seq_len=case.workload.seq_len,
    )


def _interval(case: Case, value: float) -> tuple[float, float] | None:
    """The interval `twofold estimate` would print for this figure: the chip's evidence level and
    the row's stack (`estimate.uncertainty.uncertainty_for`); a time gets the inverse interval."""
    from twofold.estimate.uncertainty import uncertainty_for

    if not _is_throughput(case):
        return None
    u = uncertainty_for(case.chip.id, None, case_stack(case), {"tokens_per_s_per_chip": 1.0})
    low, high = u.log_interval
    if _time_sign(case.row.metric) > 0:  # a time: the throughput interval inverted
        low, high = -high, -low
    return (value * math.exp(low), value * math.exp(high))


def _micro_result(case: Case, value: float) -> RowResult:
    return replace(
        _compared(case.row, case.family, value),
        chip=case.chip.id,
        system=case.system.id,
        caveats=case.caveats,
    )


def _groups(results: Sequence[RowResult], key: Callable[[RowResult], str], ape: str) -> tuple[Summary, ...]:
    buckets: dict[str, list[float]] = {}
    for r in results:
        value = getattr(r, ape)
        if value is not None:
            buckets.setdefault(key(r), []).append(value)
    return tuple(Summary.of(k, v) for k, v in sorted(buckets.items()))


def _summarise(
    results: list[RowResult],
    inference: list[RowResult],
    unexpressible: list[Mapping[str, str]],
    cal_info: Mapping[str, Any],
    held: set[str],
) -> ValidationResult:
    train = [r for r in results if r.throughput]
    others = [r for r in results if not r.throughput]
    judged = [r.inside_interval for r in train if r.inside_interval is not None]

    def overall(name: str, label: str) -> Summary | None:
        apes = [a for r in train if (a := getattr(r, f"{name}_ape_pct")) is not None]
        return Summary.of(f"all training-throughput rows ({label})", apes) if name in held and apes else None

    def by(name: str, key: Callable[[RowResult], str]) -> tuple[Summary, ...]:
        return _groups(train, key, f"{name}_ape_pct") if name in held else ()

    return ValidationResult(
        rows=tuple(results),
        unexpressible=tuple(sorted(unexpressible, key=lambda u: u["id"])),
        overall=Summary.of("all training-throughput rows", [r.ape_pct for r in train]) if train else None,
        by_source=_groups(train, lambda r: r.source, "ape_pct"),
        by_family=_groups(train, lambda r: r.family, "ape_pct"),
        worst=tuple(sorted(train, key=lambda r: -r.ape_pct)[:WORST_ROWS]),
        calibration=dict(cal_info),
        loso_overall=overall("loso", "leave-one-stack-out"),
        loso_by_source=by("loso", lambda r: r.source),
        loso_by_family=by("loso", lambda r: r.family),
        loso_by_stack=by("loso", lambda r: r.stack),
        lofo_overall=overall("lofo", "leave-one-family-out"),
        lofo_by_family=by("lofo", lambda r: r.family),
        loco_overall=overall("loco", "leave-one-chip-out"),
        losrc_overall=overall("losrc", "leave-one-source-out"),
        losrc_by_family=by("losrc", lambda r: r.family),
        losrc_by_stack=by("losrc", lambda r: r.stack),
        other_metrics=_groups(others, lambda r: r.metric, "ape_pct"),
        inference_rows=tuple(inference),
        inference_overall=Summary.of("inference rows (output tokens/s)", [r.ape_pct for r in inference])
        if inference
        else None,
        inference_by_family=_groups(inference, lambda r: r.family, "ape_pct"),
        interval_coverage_pct=100.0 * sum(judged) / len(judged) if judged else None,
        interval_nominal_pct=_nominal_coverage_pct() if judged else None,
    )


def _nominal_coverage_pct() -> float:
    from twofold.estimate.uncertainty import uncertainty_data

    return 100.0 * float(uncertainty_data()["coverage"])
