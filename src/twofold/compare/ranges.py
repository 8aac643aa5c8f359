"""Ratio ranges: how sure a ratio of two chips' estimates is (`estimate.uncertainty` per chip).

Each chip's estimate carries an 80% interval of log(published / predicted) throughput,
[q_lo, q_hi], whose width depends on the evidence behind the chip (measured, inherited from its
family, specifications only). The log of a ratio A / B is off by r_A - r_B. Assumption: the two
errors are independent, so their spreads add in quadrature,

    log range = log ratio + (c_A - c_B) +- sqrt(h_A^2 + h_B^2),   c = (q_lo + q_hi) / 2,
                                                                  h = (q_hi - q_lo) / 2,

exact for independent normal errors (the half-widths of a common coverage then add as standard
deviations do). Two chips measured on the same stack share part of their error (a mechanism the
model lacks slows both), which would narrow the range toward |h_A - h_B|; a chip predicted from its
specifications shares little with a measured one. Quadrature sits between perfectly correlated
(|h_A - h_B|) and perfectly anti-correlated (h_A + h_B) errors; it is the assumption of an
independent-errors propagation (JCGM 100:2008, "Guide to the expression of uncertainty in
measurement", section 5.1), stated here because the held-out residuals cannot pin the correlation
down with rows on so few chips.

Exception: two chips of one hardware family running one stack share the family's fitted factors
and the stack's, so most of their error is common and cancels in the ratio. What does not cancel
is what predicting one chip from its siblings leaves: the leave-one-chip-out residuals of the
families measured on two or more chips (`estimate/uncertainty.yaml`, the inherited level's own
quantiles before widening). Their 80% range is the ratio's range for such a pair
(`ratio_range(..., siblings=True)`); trn2 against trn1 under Neuron is one.

A claim on a workload (`compare.claim`) then has three verdicts: "holds" when the whole range is at
or above the claimed threshold, "does not hold" when it is entirely below, and "cannot tell at this
evidence" when it straddles it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from twofold.compare.plans import Target
from twofold.estimate.uncertainty import Uncertainty, longest_validated_seq_len, uncertainty_for

__all__ = [
    "siblings",
    "CANNOT_TELL",
    "DOES_NOT_HOLD",
    "HOLDS",
    "chip_uncertainty",
    "range_verdict",
    "ratio_range",
    "stack_id",
    "thin_evidence",
]

HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
CANNOT_TELL = "cannot tell at this evidence"


def stack_id(tgt: Target) -> str:
    """The id of the stack `tgt` runs ("auto" where it cannot be resolved)."""
    from twofold.cost.calibration import shipped_calibration

    try:
        return str(shipped_calibration().with_stack(tgt.stack).stack_for(tgt.chip).id)
    except (AttributeError, ValueError, KeyError):
        return "auto"


def chip_uncertainty(
    tgt: Target, figures: Mapping[str, float], *, seq_len: int | None = None
) -> Uncertainty:
    """The uncertainty of `figures` estimated on `tgt` (its chip, family and stack; `seq_len`: the
    training workload's, which widens it beyond the validated rows)."""
    return uncertainty_for(tgt.chip.id, None, stack_id(tgt), figures, seq_len=seq_len)


def siblings(a: Target, b: Target) -> bool:
    """Whether two targets are chips of one hardware family running one stack (module docstring)."""
    from twofold.cost.calibration import shipped_calibration

    family = shipped_calibration().family
    same_family = family(a.chip.id) is not None and family(a.chip.id) == family(b.chip.id)
    return same_family and stack_id(a) == stack_id(b)


def _sibling_log_interval() -> tuple[float, float] | None:
    from twofold.estimate.uncertainty import uncertainty_data

    entry = (uncertainty_data().get("training") or {}).get("inherited") or {}
    low, high = entry.get("own_ratio_low"), entry.get("own_ratio_high")
    if not low or not high:
        return None
    return math.log(float(low)), math.log(float(high))


def ratio_range(
    ratio: float, a: Uncertainty, b: Uncertainty, *, siblings: bool = False
) -> tuple[float, float]:
    """The 80% range of `ratio` = A / B of two estimates (module docstring: quadrature, or the
    leave-one-chip-out spread for chips of one family under one stack)."""
    if siblings:
        interval = _sibling_log_interval()
        if interval is not None:
            return ratio * math.exp(interval[0]), ratio * math.exp(interval[1])
    shift = a.log_center - b.log_center
    half = math.hypot(a.log_half_width, b.log_half_width)
    return ratio * math.exp(shift - half), ratio * math.exp(shift + half)


def thin_evidence(labelled: Mapping[str, Uncertainty]) -> str:
    """ "trn2: inherited from AWS Trainium": the chips whose evidence is not their own rows."""
    return "; ".join(
        f"{label}: {u.evidence.describe()}" for label, u in labelled.items() if u.evidence.level != "measured"
    )


def merge_thin(parts: Iterable[str]) -> list[str]:
    """Thin-evidence parts of several workloads ("trn2: inherited from AWS Trainium", the same with
    ", extrapolated (one level wider): seq_len 32768 > 8192, ...") as one part per chip, in order:
    its basis, and where some workloads were extrapolated, past which sequence length (the longest
    validated row of the chip's family, `estimate.uncertainty.longest_validated_seq_len`, as the
    part states it)."""
    merged: dict[str, tuple[str, int | None]] = {}
    for part in parts:
        label, _, text = part.partition(": ")
        basis, extrapolated, rest = text.partition(", extrapolated")
        stated = re.search(r"> (\d+)", rest) if extrapolated else None
        longest = int(stated.group(1)) if stated else (longest_validated_seq_len() if extrapolated else None)
        old_basis, old_longest = merged.get(label, (basis, None))
        merged[label] = (old_basis, old_longest or longest)
    return [
        f"{label}: {basis}" + (f", one level wider past seq_len {longest} (extrapolated)" if longest else "")
        for label, (basis, longest) in merged.items()
    ]


def range_verdict(low: float, high: float, threshold: float) -> str:
    """The verdict of a claim whose ratio lies in [low, high] at the given coverage."""
    if low >= threshold:
        return HOLDS
    if high < threshold:
        return DOES_NOT_HOLD
    return CANNOT_TELL
