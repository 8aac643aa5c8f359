"""The uncertainty every estimate carries (`estimate.uncertainty`): the evidence levels of the shipped
`estimate/uncertainty.yaml` (made by `validate.uncertainty` from held-out residuals), their order, and
the JSON contract of the "uncertainty" block."""

from __future__ import annotations

import math

import pytest

from twofold.estimate import estimate_training
from twofold.estimate.uncertainty import uncertainty_data, uncertainty_for
from twofold.hardware.catalog import get_chip, system_for
from twofold.parallel.layout import Layout, TrainingWorkload
from twofold.workload.registry import get_model

WORKLOAD = TrainingWorkload(global_batch=8, seq_len=1024, precision="bf16")


def _estimate(chip_id: str):  # noqa: ANN202
    chip = get_chip(chip_id)
    return estimate_training(get_model("llama-3-8b"), system_for(chip), Layout(dp=1), WORKLOAD, chip=chip)


def _relative(est) -> tuple[float, float]:  # noqa: ANN001
    low, high = est.uncertainty.intervals["tokens_per_s_per_chip"]
    return low / est.tokens_per_s_per_chip, high / est.tokens_per_s_per_chip


def test_intervals_widen_as_evidence_thins() -> None:
    """h100 has rows (measured), h200 none but its family (Hopper) has, gaudi2's family (Intel Gaudi)
    none (Ada, the earlier example, has one row since issue 13: the RTX 4090)."""
    rows = uncertainty_data()["rows"]["training"]
    assert rows["chip"].get("h100", 0) > 0 and rows["chip"].get("h200", 0) == 0
    assert rows["family"].get("NVIDIA Hopper", 0) > 0 and rows["family"].get("Intel Gaudi", 0) == 0
    measured, inherited, specs = (_estimate(c) for c in ("h100", "h200", "gaudi2"))
    assert measured.uncertainty.evidence.basis == "measured family"
    assert inherited.uncertainty.evidence.basis == "inherited from NVIDIA Hopper"
    assert specs.uncertainty.evidence.basis == "specifications only"
    (m_lo, m_hi), (i_lo, i_hi), (s_lo, s_hi) = (_relative(e) for e in (measured, inherited, specs))
    # Each interval with less evidence contains the one with more (equal ends may differ in the
    # last bit: each is a ratio of its own point estimate).
    tol = 1e-12
    assert s_lo <= i_lo * (1 + tol) and i_lo <= m_lo * (1 + tol)
    assert m_hi <= i_hi * (1 + tol) and i_hi <= s_hi * (1 + tol)
    assert measured.uncertainty.log_half_width <= inherited.uncertainty.log_half_width
    assert inherited.uncertainty.log_half_width <= specs.uncertainty.log_half_width


@pytest.mark.parametrize("chip_id", ["h100", "h200", "l40s", "gaudi2"])
def test_interval_contains_the_point_estimate(chip_id: str) -> None:
    est = _estimate(chip_id)
    u = est.uncertainty
    for name in ("tokens_per_s_per_chip", "step_time_s", "mfu"):
        low, high = u.intervals[name]
        assert low <= getattr(est, name) <= high, name
    # Step time is the throughput's interval inverted (same chips, same tokens per step).
    t_lo, t_hi = u.intervals["step_time_s"]
    x_lo, x_hi = u.intervals["tokens_per_s_per_chip"]
    assert t_lo * x_hi == pytest.approx(est.step_time_s * est.tokens_per_s_per_chip, rel=1e-9)
    assert t_hi * x_lo == pytest.approx(est.step_time_s * est.tokens_per_s_per_chip, rel=1e-9)


def test_to_dict_has_exactly_the_documented_keys() -> None:
    d = _estimate("h100").to_dict()["uncertainty"]
    assert list(d) == ["coverage", "tokens_per_s_per_chip", "step_time_s", "mfu", "evidence"]
    assert d["coverage"] == 0.8
    assert all(len(d[k]) == 2 for k in ("tokens_per_s_per_chip", "step_time_s", "mfu"))
    assert set(d["evidence"]) == {"rows_chip", "rows_family", "rows_stack", "basis", "extrapolated"}
    assert d["evidence"]["extrapolated"] == []  # 1k tokens: within the validated rows
    stacks = uncertainty_data()["rows"]["training"]["stack"]
    assert d["evidence"]["rows_stack"] in (None, *stacks.values(), 0)  # None: stack "auto", not known


def test_serving_figures_take_the_serving_interval() -> None:
    u = uncertainty_for("trn1", None, "auto", {"ttft_ms": 10.0, "tpot_ms": 2.0, "output_tokens_per_s": 100.0})
    entry = uncertainty_data()["serving"]["all"]
    assert u.intervals["output_tokens_per_s"] == pytest.approx(
        (100.0 * math.exp(entry["log_low"]), 100.0 * math.exp(entry["log_high"]))
    )
    assert u.intervals["ttft_ms"] == pytest.approx(
        (10.0 * math.exp(-entry["log_high"]), 10.0 * math.exp(-entry["log_low"]))
    )
    assert list(u.to_dict()) == ["coverage", "ttft_ms", "tpot_ms", "output_tokens_per_s", "evidence"]


def test_unknown_chip_is_specifications_only() -> None:
    u = uncertainty_for("what-if-chip", None, "auto", {"tokens_per_s_per_chip": 1.0})
    assert u.evidence.basis == "specifications only" and u.evidence.rows_chip == 0


def _longest(family: str) -> int:
    return int(uncertainty_data()["rows"]["training"]["seq_len_max_by_family"][family])


def test_a_sequence_beyond_the_validated_rows_drops_one_evidence_level() -> None:
    """The longest validated training row of the chip's family bounds the measured level: past it,
    h100 takes the inherited level's interval (h200's), and h200 the specifications level's (l40s's)."""
    longest = _longest("NVIDIA Hopper")
    assert longest >= 2048
    thr = {"tokens_per_s_per_chip": 1.0}

    def at(chip: str, seq_len: int | None):  # noqa: ANN202
        return uncertainty_for(chip, None, "auto", thr, seq_len=seq_len)

    inside, beyond = at("h100", longest), at("h100", 2 * longest)
    assert inside.evidence.extrapolated == () and inside.evidence.level == "measured"
    assert beyond.evidence.level == "inherited" and str(2 * longest) in beyond.evidence.extrapolated[0]
    assert beyond.log_interval == at("h200", None).log_interval
    assert at("h200", 2 * longest).log_interval == at("l40s", None).log_interval
    # Specifications only has no level below it: extrapolating keeps its (widest) interval.
    assert at("l40s", 2 * longest).log_interval == at("l40s", None).log_interval
    assert "extrapolated" in beyond.evidence.describe() and beyond.evidence.basis == "measured family"


def test_the_validated_length_is_the_family_s_own() -> None:
    """A length validated on one family's chips does not validate it on another's: the file keeps
    the longest row per family, derived here from the rows themselves."""
    from twofold.validate import validate

    rows = [r for r in validate().rows if r.throughput and r.seq_len]
    by_family: dict[str, int] = {}
    for r in rows:
        by_family[r.family] = max(by_family.get(r.family, 0), r.seq_len)
    assert uncertainty_data()["rows"]["training"]["seq_len_max_by_family"] == by_family
    tpu, gpu = by_family["Google TPU"], by_family["NVIDIA Hopper"]
    assert tpu > gpu  # the multi-slice Trillium rows run 32k tokens; no Hopper row does
    thr = {"tokens_per_s_per_chip": 1.0}
    assert uncertainty_for("tpu-v6e", None, "auto", thr, seq_len=tpu).evidence.extrapolated == ()
    assert uncertainty_for("h100", None, "auto", thr, seq_len=tpu).evidence.extrapolated


def test_an_estimate_carries_its_sequence_length_into_its_interval() -> None:
    longest = _longest("NVIDIA Hopper")
    chip = get_chip("h100")
    long_work = TrainingWorkload(global_batch=8, seq_len=2 * longest, precision="bf16")
    est = estimate_training(get_model("llama-3-8b"), system_for(chip), Layout(dp=1), long_work, chip=chip)
    assert est.uncertainty.evidence.level == "inherited"
    assert est.to_dict()["uncertainty"]["evidence"]["extrapolated"]
