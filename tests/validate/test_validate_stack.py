"""`validate(stack=...)` / `twofold validate --stack`: a stack id selects the rows that ran it, a
stack file predicts the selected rows with that stack."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import yaml

from twofold.errors import InputError
from twofold.validate import validate
from twofold.validate.dataset import load_rows
from twofold.validate.mapping import row_stack


def test_a_stack_id_selects_its_rows() -> None:
    result = validate(stack="fsdp-compile")
    expected = {r.id for r in load_rows() if row_stack(r) == "fsdp-compile"}
    predicted = {r.id for r in (*result.rows, *result.finetune_rows)} | {
        u["id"] for u in result.unexpressible
    }
    assert predicted == expected and result.overall is not None


def test_a_stack_file_runs_every_selected_row_with_it(tmp_path: Path) -> None:
    doc = yaml.safe_load(resources.files("twofold.cost").joinpath("stacks", "fsdp.yaml").read_text())
    doc["id"] = "all-math"
    doc["mechanisms"]["attention_kernel"]["value"] = "math"  # unfused attention: far slower
    path = tmp_path / "all-math.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    own = validate(source="fms-fsdp")
    forced = validate(source="fms-fsdp", stack=str(path))
    pairs = {r.id: r.step_time_s for r in own.rows}
    assert forced.rows and all(r.step_time_s > pairs[r.id] for r in forced.rows)
    with pytest.raises(InputError, match="shipped calibration only"):
        validate(source="fms-fsdp", stack=str(path), loso=True)


def test_unknown_stack_is_refused() -> None:
    with pytest.raises(InputError, match="unknown stack"):
        validate(stack="fsdpp")


def test_each_row_runs_its_stack_as_of_the_rows_year() -> None:
    """A row is priced with its stack as it ran in the row's year (`predict.case_stack`,
    `cost.stack.Stack.as_of`): Narayanan et al. 2021 on Megatron-LM before FlashAttention, the
    2024 Megatron-LM README on today's Megatron; the stack group of the leave-out folds stays
    `megatron` for both."""
    from twofold.validate.mapping import express
    from twofold.validate.predict import case_stack

    rows = {r.id: r for r in load_rows()}
    old, new = express(rows["GT0012"]), express(rows["GT0001"])  # Narayanan T1; Megatron-LM 2024
    assert rows["GT0012"].year == 2021 and rows["GT0001"].year == 2024
    assert old.stack == new.stack == "megatron"
    assert case_stack(old) == "megatron@2021" and case_stack(new) == "megatron"
    assert any(c.startswith("megatron@2021: the stack as it ran in 2021") for c in old.caveats)
    assert not any("the stack as it ran" in c for c in new.caveats)
    result = validate(source="Narayanan et al. 2021 (")
    assert result.rows and all(r.stack == "megatron" for r in result.rows)


def test_a_row_without_its_micro_batch_runs_the_fastest_that_fits() -> None:
    """`predict.with_fastest_micro_batch`: an unpublished micro-batch (the mapping took 1) becomes
    the candidate whose uncalibrated step is the shortest among those that divide the batch per
    data-parallel rank and fit; checked here against every candidate's own estimate. A published
    micro-batch is left alone."""
    from dataclasses import replace

    from twofold.cost.calibration import UNCALIBRATED
    from twofold.validate.mapping import express
    from twofold.validate.predict import MICRO_BATCH_CANDIDATES, default_predictor, with_fastest_micro_batch

    rows = {r.id: r for r in load_rows()}
    case = express(rows["GT3134"])  # flash-attn scripts, GPT3-125M on 8 A100: no micro-batch column
    assert rows["GT3134"].micro_batch is None and case.layout.micro_batch == 1
    per_rank = case.workload.global_batch // case.layout.dp
    steps = {}
    for mb in MICRO_BATCH_CANDIDATES:
        if per_rank % mb == 0:
            step = default_predictor(replace(case, layout=replace(case.layout, micro_batch=mb)), UNCALIBRATED)
            if step.fits is not False:
                steps[mb] = step.step_time_s
    chosen = with_fastest_micro_batch(case)
    assert chosen.layout.micro_batch == min(steps, key=steps.__getitem__) > 1
    assert any(c.startswith("micro-batch not published") for c in chosen.caveats)
    published = express(rows["GT3025"])  # fms-fsdp publishes its micro-batch (2)
    assert with_fastest_micro_batch(published) is published
