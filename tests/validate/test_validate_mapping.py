"""Every published row maps onto twofold's objects or carries the reason it cannot."""

from __future__ import annotations

import pytest

from twofold.validate.dataset import load_rows
from twofold.validate.mapping import (
    Case,
    NotExpressible,
    Unexpressible,
    express,
    layout_for,
    mapping_data,
    model_from_columns,
)


def _row(row_id: str):
    return next(r for r in load_rows() if r.id == row_id)


def test_every_row_is_expressible_or_has_a_reason() -> None:
    outcomes = [express(r) for r in load_rows()]
    assert len(outcomes) == 320
    for outcome in outcomes:
        if isinstance(outcome, Unexpressible):
            assert outcome.reason.strip(), outcome.row.id
        else:
            assert isinstance(outcome, Case)
            assert outcome.kind in ("train", "gemm", "allreduce")
    expressed = [o for o in outcomes if isinstance(o, Case) and o.kind == "train"]
    # Every hardware in the catalog with training rows is used (none silently lost to a typo).
    assert {o.chip.id for o in expressed} >= {"a100", "h100", "b200", "gb200", "tpu-v4", "tpu-v5p", "trn1"}
    for case in expressed:
        assert case.layout.chips == case.row.chips, case.row.id


def test_every_csv_spelling_has_a_mapping_entry() -> None:
    data = mapping_data()
    rows = load_rows()
    assert {r.hardware for r in rows} <= set(data["hardware"])
    assert {r.recompute for r in rows} <= set(data["recompute"])
    assert {r.precision for r in rows if r.precision} <= set(data["precision"])


def test_inference_rows_wait_for_the_inference_estimator() -> None:
    outcome = express(_row("GT0599"))
    assert isinstance(outcome, Unexpressible) and "inference" in outcome.reason


def test_hardware_not_in_catalog_is_reported() -> None:
    outcome = express(_row("GT0049"))  # GB300 NVL72
    assert isinstance(outcome, Unexpressible) and "GB300" in outcome.reason


def test_neuron_cores_are_folded_into_chips() -> None:
    # GT0585: 32 trn1.32xlarge = 512 chips = 1024 NeuronCores, TP=32 PP=8 DP=4 in NeuronCores
    # (AWS Neuron trn1 performance page): TP 32 cores = 16 chips, one whole instance.
    layout = layout_for(_row("GT0585"))
    assert (layout.dp, layout.tp, layout.pp) == (4, 16, 8)
    # GT0597: BERT pure DP over 32 cores of one node (16 chips), 16 sequences per core micro-batch.
    bert = layout_for(_row("GT0597"))
    assert (bert.dp, bert.tp, bert.micro_batch) == (16, 1, 32)


def test_maxtext_per_device_batch_becomes_one_micro_batch_per_rank() -> None:
    # GT0492: 64 v5p chips, tensor 4, per-device batch 6, global 384 -> dp 16 ranks of 24 sequences.
    layout = layout_for(_row("GT0492"))
    assert (layout.dp, layout.tp, layout.micro_batch, layout.zero) == (16, 4, 24, 3)
    assert layout.recompute == "selective"


def test_megatron_layout_derives_dp_and_keeps_vp() -> None:
    # GT0047: 64 H100, TP 4, PP 8, VP 5 (interleaved), global 128, micro 1 -> dp 2.
    layout = layout_for(_row("GT0047"))
    assert (layout.dp, layout.tp, layout.pp, layout.vp, layout.zero) == (2, 4, 8, 5, 1)


def test_narayanan_rows_use_no_sequence_parallelism_and_no_distributed_optimizer() -> None:
    layout = layout_for(_row("GT0020"))
    assert (layout.tp, layout.pp, layout.zero, layout.sequence_parallel) == (8, 35, 0, False)
    assert layout_for(_row("GT0028")).zero == 3  # the ZeRO-3 column wins


def test_model_from_columns_decides_the_mlp_family() -> None:
    gpt = model_from_columns(_row("GT0001"))
    assert (gpt.mlp_gated, gpt.norm, gpt.intermediate_size, gpt.head_dim) == (False, "layernorm", 8192, 128)
    # Narayanan Table 1 has no heads column in the row: Table 1 gives 24 heads for 1.7B (head_dim 96).
    assert model_from_columns(_row("GT0012")).num_attention_heads == 24
    maxtext = model_from_columns(_row("GT0534"))  # 24 heads of fixed head_dim 128 on hidden 6144
    assert (maxtext.mlp_gated, maxtext.head_dim) == (True, 128)


def test_missing_architecture_is_not_expressible() -> None:
    with pytest.raises(NotExpressible, match="architecture"):
        model_from_columns(_row("GT0587"))
