"""`twofold measure` as a function: time the plan, fit, validate on held-out steps, record.

Order of effects, chosen so that a failure leaves nothing half-written: the database is checked
before the sweep (a bad `--db` fails in a second); the sweep and the fit touch no file; then the
run goes into the database in one transaction, and only after it commits is the profile YAML
written (atomically). An exception or Ctrl-C anywhere before the commit leaves the database and
the profile as they were.
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from twofold.checks import positive_int
from twofold.errors import InputError
from twofold.hardware.local import default_profile_path, local_profile_dict, save_profile_file
from twofold.measure.bench import Device, DeviceInfo, Timing
from twofold.measure.db import MeasurementRow, check_writable, default_db_path, record_run
from twofold.measure.fit import FitResult, Sample, fit_profile, predict_s
from twofold.measure.kernels import Kernel, plan_kernels

__all__ = ["MeasureResult", "ValidationRow", "measure", "time_plan", "validation_rows"]

Progress = Callable[[int, int, Kernel], None]
# A fit-set step predicted worse than this after stage 4 fitted it means the timings are not
# self-consistent: on the development machine this happened only under heavy foreign load.
_DISTURBED_PCT = 25.0


@dataclass(frozen=True, kw_only=True, slots=True)
class ValidationRow:
    """One training step: predicted by the calibrated cost model vs measured."""

    model: str
    micro_batch: int
    seq_len: int
    role: str  # "fit" (used in stage 4 of the fit) or "heldout" (never seen by the fit)
    predicted_s: float
    measured_s: float

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.predicted_s - self.measured_s) / self.measured_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "micro_batch": self.micro_batch,
            "seq_len": self.seq_len,
            "role": self.role,
            "predicted_s": self.predicted_s,
            "measured_s": self.measured_s,
            "error_pct": self.error_pct,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class MeasureResult:
    run_id: str
    time: str
    info: DeviceInfo
    timings: tuple[tuple[Kernel, Timing], ...]
    fit: FitResult
    validation: tuple[ValidationRow, ...]
    profile_doc: dict[str, Any]
    profile_path: Path | None
    db_path: Path | None

    @property
    def warnings(self) -> list[str]:
        """Signs that the measurements were disturbed (the fit set itself is badly predicted)."""
        out = []
        bad = [r for r in self.validation if r.role == "fit" and abs(r.error_pct) > _DISTURBED_PCT]
        if bad:
            load = self.profile_doc.get("provenance", {}).get("load_average_1m")
            out.append(
                f"{len(bad)} fit steps are off by more than {_DISTURBED_PCT:.0f}% after the fit: "
                f"the timings look disturbed by other work on the machine (1-minute load average {load} "
                f"around the run, {self.info.threads} threads); measure again on a quiet machine"
            )
        return out

    @property
    def heldout_abs_errors_pct(self) -> list[float]:
        return [abs(r.error_pct) for r in self.validation if r.role == "heldout"]

    def summary(self) -> dict[str, Any]:
        errs = self.heldout_abs_errors_pct
        return {
            "heldout_steps": len(errs),
            "heldout_median_abs_error_pct": statistics.median(errs) if errs else None,
            "heldout_max_abs_error_pct": max(errs) if errs else None,
            "fit_rms_log_error": dict(self.fit.rms_log_error),
            "best_gemm_tflops": dict(self.fit.best_gemm_tflops),
            "stream_bandwidth_gb_s": self.fit.stream_bandwidth_gb_s,
            "warnings": self.warnings,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "time": self.time,
            "device": self.info.to_dict(),
            "summary": self.summary(),
            "measurements": [
                {"name": k.name, "kind": k.kind, "time_s": t.time_s, "min_s": t.min_s, "repeats": t.repeats}
                for k, t in self.timings
            ],
            "profile": self.profile_doc,
            "profile_path": str(self.profile_path) if self.profile_path else None,
            "db": str(self.db_path) if self.db_path else None,
            "validation": [r.to_dict() for r in self.validation],
        }


def time_plan(
    device: Device,
    kernels: Sequence[Kernel],
    on_progress: Progress | None = None,
    *,
    rounds: int = 1,
    statistic: str = "median",
) -> tuple[tuple[Kernel, Timing], ...]:
    """Time every kernel of the plan on `device`, in `rounds` interleaved passes.

    Why passes: on a shared machine another process can take a core for a while, and with one
    PyTorch thread per core every parallel region then waits a scheduler time slice (4-30 ms
    stalls were seen on the 2-core development machine, turning a 60 us kernel into 8 ms). Such
    stalls only ever add time, and interleaving the passes spreads a burst of foreign load over
    many kernels instead of all samples of one. `statistic="median"` (default) takes each pass's
    median and then the smallest of them; `"min"` the fastest single sample over all passes, which
    resists load better but is an extreme value: on the development machine it overrated the GEMM
    rate (short samples catch the fastest moments; a 100 ms step never does) and doubled the
    held-out error.
    `Timing.round_s` keeps every pass's median.
    """
    positive_int("rounds", rounds, "must be >= 1")
    if statistic not in ("min", "median"):
        raise InputError("statistic", statistic, "must be min or median")
    per_kernel: list[list[Timing]] = [[] for _ in kernels]
    total, done = len(kernels) * rounds, 0
    for r in range(rounds):
        # Alternate the order so that a kernel is not always timed right after the same one.
        order = range(len(kernels)) if r % 2 == 0 else range(len(kernels) - 1, -1, -1)
        for i in order:
            if on_progress is not None:
                on_progress(done, total, kernels[i])
            per_kernel[i].append(device.time_kernel(kernels[i]))
            done += 1
    if on_progress is not None and kernels:
        on_progress(total, total, kernels[-1])
    out = []
    for kernel, timings in zip(kernels, per_kernel, strict=True):
        medians = tuple(t.time_s for t in timings)
        fastest = min(t.min_s for t in timings)
        out.append(
            (
                kernel,
                Timing(
                    time_s=fastest if statistic == "min" else min(medians),
                    min_s=fastest,
                    repeats=sum(t.repeats for t in timings),
                    inner=timings[0].inner,
                    round_s=medians,
                ),
            )
        )
    return tuple(out)


def validation_rows(timings: Sequence[tuple[Kernel, Timing]], fit: FitResult) -> tuple[ValidationRow, ...]:
    """Predicted vs measured for every timed training step."""
    rows = []
    for kernel, timing in timings:
        if kernel.kind != "train_step" or kernel.model is None:
            continue
        rows.append(
            ValidationRow(
                model=kernel.model.name,
                micro_batch=kernel.dims["micro_batch"],
                seq_len=kernel.dims["seq_len"],
                role=kernel.role,
                predicted_s=predict_s(kernel, fit.chip, fit.profile),
                measured_s=timing.time_s,
            )
        )
    return tuple(rows)


def _load_average() -> float | None:
    """The 1-minute load average (None where the platform has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _run_id(now: _dt.datetime, info: DeviceInfo) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{info.fingerprint[:6]}-{secrets.token_hex(2)}"


def measure(
    device: Device,
    *,
    quick: bool = False,
    db_path: str | Path | None = None,
    profile_path: str | Path | None = None,
    write: bool = True,
    on_progress: Progress | None = None,
    kernels: Sequence[Kernel] | None = None,
    rounds: int | None = None,
    statistic: str = "median",
) -> MeasureResult:
    """Run the plan on `device`, fit, validate, and (if `write`) record the run and save the profile.

    `db_path`/`profile_path` default to `default_db_path()`/`default_profile_path()`. `kernels`
    replaces the standard plan (tests use tiny ones).
    """
    db = Path(db_path).expanduser() if db_path is not None else default_db_path()
    out = Path(profile_path).expanduser() if profile_path is not None else default_profile_path()
    if write:
        check_writable(db)
    plan = tuple(kernels) if kernels is not None else plan_kernels(quick=quick, bf16=device.info.bf16)
    rounds = rounds if rounds is not None else (3 if quick else 5)
    load_before = _load_average()
    timings = time_plan(device, plan, on_progress, rounds=rounds, statistic=statistic)

    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    run_id = _run_id(now, device.info)
    provenance: dict[str, Any] = {
        "run_id": run_id,
        "date": now.isoformat(),
        "device_name": device.info.name,
        "device_kind": device.info.kind,
        "fingerprint": device.info.fingerprint,
        "threads": device.info.threads,
        "bf16_native": device.info.bf16_native,
        "plan": "quick" if quick else "full",
        "load_average_1m": f"{load_before} before, {_load_average()} after",
        "statistic": (
            f"fastest sample of {rounds} interleaved passes"
            if statistic == "min"
            else f"smallest of {rounds} interleaved passes' medians"
        ),
        **{f"{k}_version": v for k, v in device.info.versions.items()},
    }
    samples = [Sample(kernel=k, time_s=t.time_s) for k, t in timings if k.role == "fit"]
    fit = fit_profile(samples, device.info, provenance=provenance)
    if fit.stream_bandwidth_gb_s is not None:
        provenance["dram_stream_bandwidth_gb_s"] = round(fit.stream_bandwidth_gb_s, 3)
    doc = local_profile_dict(fit.chip, fit.profile, provenance)
    rows = validation_rows(timings, fit)
    result = MeasureResult(
        run_id=run_id,
        time=now.isoformat(),
        info=device.info,
        timings=timings,
        fit=fit,
        validation=rows,
        profile_doc=doc,
        profile_path=out if write else None,
        db_path=db if write else None,
    )
    if write:
        measurements = [
            MeasurementRow(
                name=k.name,
                params={
                    **k.params,
                    "min_s": t.min_s,
                    "repeats": t.repeats,
                    "inner": t.inner,
                    "round_s": t.round_s,
                },
                value=t.time_s,
                unit="s",
            )
            for k, t in timings
        ]
        measurements += [
            MeasurementRow(
                name=f"predicted:train_step:{r.model}", params=r.to_dict(), value=r.predicted_s, unit="s"
            )
            for r in rows
        ]
        record_run(
            db,
            run_id=run_id,
            time=now.isoformat(),
            device=device.info.name,
            fingerprint=device.info.fingerprint,
            versions=device.info.versions,
            measurements=measurements,
            profile_yaml=yaml.safe_dump(doc, sort_keys=False),
            notes={"plan": provenance["plan"], "summary": result.summary()},
        )
        save_profile_file(out, doc)
    return result
