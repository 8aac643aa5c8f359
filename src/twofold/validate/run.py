"""`validate()`: predict every expressible published row and summarise the error.

Each row goes through `mapping.express` (a `Case` or the reason it is unexpressible), then through a
predictor (the estimator by default; any `Callable[[Case], StepPrediction]` for tests), then
`metrics.predict_training_figure` turns the predicted step time into the published figure under the
source's definition. Calibration (`validate.calibrate`) multiplies mechanism groups of the breakdown;
the shipped multipliers are data in `validate/data/calibration.yaml`, refitted by
`benchmarks/validate_accuracy.py --fit`. Leave-one-source-out refits them without each source and
predicts that source: the figure to trust for a workload twofold has not seen.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from twofold.errors import InputError
from twofold.validate import calibrate as cal
from twofold.validate.dataset import PublishedRow, load_rows
from twofold.validate.mapping import Case, Unexpressible, express
from twofold.validate.mechanisms import mechanism_groups
from twofold.validate.metrics import THROUGHPUT_METRICS, predict_training_figure
from twofold.validate.predict import StepPrediction, default_predictor, predict_micro
from twofold.validate.store import load_calibration

__all__ = ["RowResult", "Summary", "ValidationResult", "validate", "CALIBRATION_MODES"]

CALIBRATION_MODES = ("shipped", "none", "in-sample")
WORST_ROWS = 10


@dataclass(frozen=True, kw_only=True)
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
    loso_predicted: float | None = None
    loso_ape_pct: float | None = None


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
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
    other_metrics: tuple[Summary, ...] = ()  # time-to-train and microbenchmarks, by metric

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _signed_pct(predicted: float, published: float) -> float:
    return (predicted - published) / published * 100.0


def _layout_text(case: Case) -> str:
    lay = case.layout
    return (
        f"dp{lay.dp} tp{lay.tp} pp{lay.pp} vp{lay.vp} cp{lay.cp} ep{lay.ep} zero{lay.zero} "
        f"mb{lay.micro_batch} recompute={lay.recompute}"
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
    predictor: Callable[[Case], StepPrediction] | None = None,
) -> ValidationResult:
    """Predict the published rows (all, or one source / hardware family) and summarise the error.

    `calibration`: "shipped" applies `validate/data/calibration.yaml`; "none" the raw model;
    "in-sample" refits on the selected rows. `loso=True` adds leave-one-source-out predictions:
    for each source, the calibration is refitted on every other source's rows of the whole dataset.
    `source` and `family` match case-insensitively on a substring (e.g. "megatron-bridge", "tpu").
    """
    if calibration not in CALIBRATION_MODES:
        raise InputError("calibration", calibration, f"must be one of {', '.join(CALIBRATION_MODES)}")
    all_rows = tuple(load_rows() if rows is None else rows)
    selected = _select(all_rows, source=source, family=family)
    predictor = predictor or default_predictor
    # LOSO refits on the whole dataset minus one source, so it needs every row's prediction.
    needed = all_rows if loso else selected
    predicted: dict[str, tuple[Case, StepPrediction]] = {}
    unexpressible: list[Mapping[str, str]] = []
    micro: dict[str, tuple[Case, float]] = {}
    selected_ids = {r.id for r in selected}
    for row in needed:
        outcome = express(row)
        if isinstance(outcome, Unexpressible):
            if row.id in selected_ids:
                unexpressible.append(_unexpressible_entry(row, outcome.family, outcome.reason))
            continue
        try:
            if outcome.kind == "train":
                predicted[row.id] = (outcome, predictor(outcome))
            elif row.id in selected_ids:
                micro[row.id] = (outcome, predict_micro(outcome))
        except (InputError, NotImplementedError) as exc:
            if row.id in selected_ids:
                unexpressible.append(_unexpressible_entry(row, outcome.family, f"estimator: {exc}"))
    fit_rows = {rid: _fit_row(case, pred) for rid, (case, pred) in predicted.items()}
    throughput_fit = [f for f in fit_rows.values() if _is_throughput(predicted[f.id][0])]
    theta, cal_info = _calibration(calibration, [f for f in throughput_fit if f.id in selected_ids])
    loso_theta = cal.loso(throughput_fit) if loso else {}

    results: list[RowResult] = []
    for row in selected:
        if row.id in predicted:
            case, pred = predicted[row.id]
            results.append(_train_result(case, pred, fit_rows[row.id], theta, loso_theta))
        elif row.id in micro:
            case, value = micro[row.id]
            results.append(_micro_result(case, value))
    return _summarise(results, unexpressible, cal_info, loso)


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


def _fit_row(case: Case, pred: StepPrediction) -> cal.FitRow:
    raw = predict_training_figure(case, pred.step_time_s)
    return cal.FitRow(
        id=case.row.id,
        source=case.row.source,
        log_error=math.log(raw / case.row.value),
        time_sign=_time_sign(case.row.metric),
        step_time_s=pred.step_time_s,
        groups=mechanism_groups(case, pred),
    )


def _calibration(mode: str, rows: list[cal.FitRow]) -> tuple[Mapping[str, float], dict[str, Any]]:
    if mode == "none":
        return {}, {"mode": "none"}
    if mode == "in-sample":
        fitted = cal.fit(rows)
        return fitted.theta, {"mode": "in-sample", **fitted.to_dict()}
    shipped = load_calibration()
    return shipped.theta, {"mode": "shipped", **shipped.to_dict()}


def _train_result(
    case: Case,
    pred: StepPrediction,
    fit_row: cal.FitRow,
    theta: Mapping[str, float],
    loso_theta: Mapping[str, cal.Calibration],
) -> RowResult:
    step = cal.calibrated_step_time(fit_row, theta)
    value = predict_training_figure(case, step)
    loso_value = loso_ape = None
    if case.row.source in loso_theta and _is_throughput(case):
        loso_step = cal.calibrated_step_time(fit_row, loso_theta[case.row.source].theta)
        loso_value = predict_training_figure(case, loso_step)
        loso_ape = abs(_signed_pct(loso_value, case.row.value))
    scale = step / pred.step_time_s
    return RowResult(
        id=case.row.id,
        source=case.row.source,
        family=case.family,
        hardware=case.row.hardware,
        model=case.row.model,
        metric=case.row.metric,
        unit=case.row.unit,
        published=case.row.value,
        predicted=value,
        ape_pct=abs(_signed_pct(value, case.row.value)),
        signed_error_pct=_signed_pct(value, case.row.value),
        throughput=_is_throughput(case),
        step_time_s=step,
        breakdown={k: v * scale for k, v in pred.breakdown.items()},
        layout=_layout_text(case),
        chip=case.chip.id,
        system=case.system.id,
        caveats=case.caveats + pred.caveats,
        loso_predicted=loso_value,
        loso_ape_pct=loso_ape,
    )


def _micro_result(case: Case, value: float) -> RowResult:
    return RowResult(
        id=case.row.id,
        source=case.row.source,
        family=case.family,
        hardware=case.row.hardware,
        model=case.row.model,
        metric=case.row.metric,
        unit=case.row.unit,
        published=case.row.value,
        predicted=value,
        ape_pct=abs(_signed_pct(value, case.row.value)),
        signed_error_pct=_signed_pct(value, case.row.value),
        throughput=False,
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
    results: list[RowResult], unexpressible: list[Mapping[str, str]], cal_info: Mapping[str, Any], loso: bool
) -> ValidationResult:
    train = [r for r in results if r.throughput]
    others = [r for r in results if not r.throughput]
    loso_rows = [r for r in train if r.loso_ape_pct is not None]
    return ValidationResult(
        rows=tuple(results),
        unexpressible=tuple(sorted(unexpressible, key=lambda u: u["id"])),
        overall=Summary.of("all training-throughput rows", [r.ape_pct for r in train]) if train else None,
        by_source=_groups(train, lambda r: r.source, "ape_pct"),
        by_family=_groups(train, lambda r: r.family, "ape_pct"),
        worst=tuple(sorted(train, key=lambda r: -r.ape_pct)[:WORST_ROWS]),
        calibration=dict(cal_info),
        loso_overall=Summary.of("all training-throughput rows (LOSO)", [r.loso_ape_pct for r in loso_rows])
        if loso and loso_rows
        else None,
        loso_by_source=_groups(loso_rows, lambda r: r.source, "loso_ape_pct") if loso else (),
        loso_by_family=_groups(loso_rows, lambda r: r.family, "loso_ape_pct") if loso else (),
        other_metrics=_groups(others, lambda r: r.metric, "ape_pct"),
    )
