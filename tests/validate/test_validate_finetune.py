"""LoRA/QLoRA rows: predicted apart from the training rows, never fitted on.

References: the published torchtune README rows (published_results_3.csv, GT3045-GT3048 and
GT3069-GT3070: tokens/s and peak memory per GPU on 8 x A100) and the estimator's own memory per chip.
"""

from __future__ import annotations

import pytest

from twofold.validate import validate
from twofold.validate.dataset import load_rows
from twofold.validate.mapping import Case, express
from twofold.validate.predict import default_predictor

# torchtune on A100 (8 GPUs) and, since issue 13, on one RTX 4090 / RTX A6000 (GT3037-GT3042).
FINETUNE_IDS = {"GT3045", "GT3046", "GT3047", "GT3048", "GT3069", "GT3070"} | {
    f"GT30{n}" for n in range(37, 43)
}


@pytest.fixture(scope="module")
def result():
    return validate([r for r in load_rows() if r.task.startswith("finetune") or r.id == "GT0001"])


def test_finetune_rows_are_summarised_apart_from_the_training_rows(result) -> None:
    assert {r.id for r in result.finetune_rows} == FINETUNE_IDS
    assert {r.id for r in result.rows} == {"GT0001"}  # the training figures hold training rows only
    assert result.overall is not None and result.overall.rows == 1
    assert result.finetune_overall is not None and result.finetune_overall.rows == 12
    assert {s.group for s in result.finetune_by_metric} == {"peak memory", "throughput"}
    assert not any(r.throughput for r in result.finetune_rows)


def test_peak_memory_rows_compare_the_predicted_memory_per_chip(result) -> None:
    row = next(r for r in result.finetune_rows if r.id == "GT3047")
    case = express(next(r for r in load_rows() if r.id == "GT3047"))
    assert isinstance(case, Case)
    assert row.predicted == pytest.approx(default_predictor(case).memory_per_chip_gib)
    assert row.ape_pct == pytest.approx(abs(row.predicted - 44.8) / 44.8 * 100)


def test_finetune_rows_never_enter_the_training_fit() -> None:
    with_ft = validate(calibration="in-sample", source="torchtune")
    assert with_ft.finetune_rows and all(r.id not in FINETUNE_IDS for r in with_ft.rows)
    fitted_on = with_ft.calibration.get("rows")
    if isinstance(fitted_on, (list, tuple)):
        assert not FINETUNE_IDS & set(fitted_on)
