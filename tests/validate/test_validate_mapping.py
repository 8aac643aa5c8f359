"""Every published row maps onto twofold's objects or carries the reason it cannot."""

from __future__ import annotations

from dataclasses import replace

import pytest

from twofold.validate.dataset import load_rows, row_file
from twofold.validate.mapping import (
    STACKS,
    Case,
    NotExpressible,
    Unexpressible,
    express,
    hardware_entry,
    layout_for,
    mapping_data,
    model_from_columns,
    row_stack,
    stack_rule,
)


def _row(row_id: str):
    return next(r for r in load_rows() if r.id == row_id)


def test_every_row_is_expressible_or_has_a_reason() -> None:
    outcomes = [express(r) for r in load_rows()]
    assert len(outcomes) == len(load_rows()) == 640
    for outcome in outcomes:
        if isinstance(outcome, Unexpressible):
            assert outcome.reason.strip(), outcome.row.id
        else:
            assert isinstance(outcome, Case)
            assert outcome.kind in ("train", "finetune", "gemm", "allreduce")
    expressed = [o for o in outcomes if isinstance(o, Case) and o.kind == "train"]
    # Every hardware in the catalog with training rows is used (none silently lost to a typo).
    assert {o.chip.id for o in expressed} >= {"a100", "h100", "b200", "gb200", "tpu-v4", "tpu-v5p", "trn1"}
    for case in expressed:
        assert case.layout.chips == case.row.chips, case.row.id


def test_every_csv_spelling_of_every_file_has_a_mapping_entry() -> None:
    data = mapping_data()
    rows = load_rows()
    assert {row_file(r.id) for r in rows} == {
        "published_results.csv",
        "published_results_2.csv",
        "published_results_3.csv",
        "published_results_4.csv",
        "published_results_5.csv",
    }
    assert {r.hardware for r in rows} <= set(data["hardware"])
    assert {r.recompute for r in rows} <= set(data["recompute"])
    assert {r.precision for r in rows if r.precision} <= set(data["precision"])


def test_inference_rows_wait_for_the_inference_estimator() -> None:
    outcome = express(_row("GT0599"))
    assert isinstance(outcome, Unexpressible) and "inference" in outcome.reason


def test_hardware_not_in_catalog_is_reported() -> None:
    from types import SimpleNamespace

    outcome = express(replace(_row("GT0698"), hardware="Intel Gaudi 1"))
    assert isinstance(outcome, Unexpressible) and "Gaudi" in outcome.reason
    # Issue 13: the Gaudi rows reach the catalog; what still stops them is their own gap, named.
    assert express(_row("GT0698")).chip.id == "gaudi2"  # type: ignore[union-attr]
    assert "layout not published" in express(_row("GT3141")).reason  # type: ignore[union-attr]
    assert "catalog" not in express(_row("GT0629")).reason  # type: ignore[union-attr]
    assert hardware_entry(SimpleNamespace(hardware="NVIDIA GeForce RTX 3090")) is not None  # type: ignore[arg-type]
    assert not isinstance(express(_row("GT0049")), Unexpressible)  # GB300 NVL72: in the catalog (issue 16)


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


def test_every_row_of_every_file_has_a_listed_stack() -> None:
    for row in load_rows():
        assert stack_rule(row) is not None, row.id  # an explicit rule, not the fallback
        assert row_stack(row) in STACKS, row.id
        if row_stack(row) == "serving":
            assert row.task == "infer", row.id
    stacks = {row_stack(r) for r in load_rows()}
    assert stacks == set(STACKS)  # every id is used by some row


@pytest.mark.parametrize(
    ("row_id", "stack"),
    [
        ("GT3001", "fsdp-compile"),  # fms-fsdp notes: "stack=PyTorch FSDP1 (fms-fsdp)"; "torch.compile=yes"
        ("GT3017", "fsdp"),  # fms-fsdp pre-compile table: "torch.compile=no"
        ("GT0028", "deepspeed"),  # Narayanan Table 2, zero_or_fsdp "ZeRO-3"
        ("GT0020", "megatron"),  # Narayanan Table 1 PTD-P
        ("GT0492", "maxtext"),  # MaxText TPU v5p configs
        ("GT2074", "maxtext"),  # tpu-recipes Trillium MaxText recipe
        ("GT0622", "megatron"),  # MLPerf Training v4.0, notes "framework: NVIDIA NeMo Framework"
        ("GT0625", "maxtext"),  # MLPerf Training v4.0, notes "framework: maxtext"
        ("GT0585", "neuronx"),  # AWS Neuron trn1 training (NeuronX Distributed)
        ("GT2001", "neuronx"),  # NxD Inference on Trn2 (not "serving": Neuron)
        ("GT3073", "nanotron"),  # notes "stack=nanotron v0.5"
        ("GT3099", "torchtitan"),  # notes "stack=OLMo-core (PyTorch FSDP2, torch.compile=yes ...)"
        ("GT3150", "deepspeed"),  # notes "stack=Colossal-AI (Gemini plugin)"
        ("GT3152", "maxtext"),  # notes "stack=EasyLM (JAX/pjit)"
        ("GT5001", "megatron"),  # notes "stack=Primus (Megatron-LM backend)"
        ("GT5027", "maxtext"),  # notes "stack=MaxText (ROCm fork) ... Primus-Turbo JAX build"
        ("GT5054", "deepspeed"),  # notes "stack=Megatron-DeepSpeed"
        ("GT4001", "serving"),  # MLPerf Inference v4.1, notes "engine=vLLM"
        ("GT0001", "megatron"),  # Megatron-LM README
        ("GT3139", "other"),  # Intel Gaudi 2
    ],
)
def test_hand_checked_rows_get_their_stack(row_id: str, stack: str) -> None:
    assert row_stack(_row(row_id)) == stack


def test_expressed_cases_carry_their_stack() -> None:
    case = express(_row("GT3073"))
    assert isinstance(case, Case) and case.stack == "nanotron"
    assert express(_row("GT0047")).stack == "megatron"


def test_lora_and_qlora_rows_map_to_finetune_cases_where_the_row_gives_enough() -> None:
    """published_results_3.md: 27 finetune-lora + 16 finetune-qlora rows. The torchtune rows on A100
    map (rank and targets from the notes or stated defaults); the rest name what is missing."""
    lora = [r for r in load_rows() if r.task in ("finetune-lora", "finetune-qlora")]
    assert len(lora) == 43
    cases = {r.id: express(r) for r in lora}
    mapped = {rid for rid, c in cases.items() if isinstance(c, Case)}
    # Issue 13: the single-GPU RTX 4090 / RTX A6000 LoRA and QLoRA rows (GT3037-GT3042) too.
    assert mapped == {"GT3045", "GT3046", "GT3047", "GT3048", "GT3069", "GT3070"} | {
        "GT3037", "GT3038", "GT3039", "GT3040", "GT3041", "GT3042"
    }
    for rid in mapped:
        case = cases[rid]
        assert case.kind == "finetune" and case.workload.finetune is not None
        qlora = ("GT3047", "GT3048", "GT3041", "GT3042")
        assert case.workload.finetune.method == ("qlora" if rid in qlora else "lora")
        assert any("LoRA rank" in c for c in case.caveats)
    reasons = {c.reason for c in cases.values() if isinstance(c, Unexpressible)}
    assert "sequence length not published (examples of varying length, no fixed seq_len)" in reasons
    assert any(r.startswith("sequence length not published (Optimum Habana") for r in reasons)
    # A per-GPU tokens/s beyond the A100's peak at LoRA's FLOPs per token is read as the job's.
    assert cases["GT3046"].row.metric == "tokens_per_s"


def test_new_training_rows_map_as_their_notes_say() -> None:
    # nanotron GT3078: 8.86B (32/4096/32/14336, vocab 131072 per published_results_3.md) on 16 H100,
    # DP4 TP4 PP1, MBS4, ZeRO-1, global 256.
    case = express(_row("GT3078"))
    assert isinstance(case, Case) and case.chip.id == "h100"
    assert (case.model.num_layers, case.model.hidden_size, case.model.intermediate_size) == (32, 4096, 14336)
    assert (case.model.vocab_size, case.model.num_kv_heads) == (131072, 32)
    assert (case.layout.dp, case.layout.tp, case.layout.micro_batch, case.layout.zero) == (4, 4, 4, 1)
    assert layout_for(_row("GT3082")).zero == 0  # zero_or_fsdp "ZeRO-0"
    # tpu-recipes GT2074: 256 v6e, per-device batch 3, remat full (notes) -> 256 ranks of 3 sequences.
    layout = layout_for(_row("GT2074"))
    assert (layout.dp, layout.micro_batch, layout.recompute, layout.zero) == (256, 3, "full", 3)
    # Recompute not in the notes (GT2085): MaxText's default remat_policy 'full' (configs/base.yml);
    # a policy twofold does not model (GT2091 custom) stays unexpressible.
    assert express(_row("GT2085")).layout.recompute == "full"
    assert "custom" in express(_row("GT2091")).reason
    # fms-fsdp: no gradient accumulation in its training loop, so the global batch is micro-batch 2
    # x 128 data-parallel ranks; HSDP shards within each 8-GPU node; the notes' 400 Gbps per node
    # (50 GB/s shared by 8 GPUs) replaces the catalog's network.
    fms = express(_row("GT3001"))
    assert fms.workload.global_batch == 2 * 128
    assert (fms.layout.zero, fms.layout.shard) == (3, 8)
    assert fms.system.levels[-1].bandwidth_gb_s_per_chip == pytest.approx(400 / 8 / 8)
    # Issue 13: A800 (hgx-a800) and MI250X (frontier-node) are in the catalog; the rows stop at their
    # own gaps: the A800 row does not say fp16 or bf16, the Frontier row's model columns are empty.
    assert express(_row("GT3150")).reason == "precision not published"
    assert "columns empty" in express(_row("GT5051")).reason
    # torchtune 70B "Tokens/sec" read per GPU exceeds the A100 peak; the dropless-MoE mesh is not published.
    assert "A100 peak" in express(_row("GT3044")).reason
    assert "FSDP=8" in express(_row("GT5043")).reason
    # Whole-job tokens/s (8 GPUs) is predicted as global_batch * seq_len / step time.
    case = express(_row("GT3134"))
    assert case.row.metric == "tokens_per_s" and case.layout.chips == 8
    from twofold.validate.metrics import predict_training_figure

    batch, seq = case.workload.global_batch, case.workload.seq_len
    assert predict_training_figure(case, 2.0) == pytest.approx(batch * seq / 2.0)


def test_serving_rows_of_the_new_files_are_handled_without_exceptions() -> None:
    from twofold.validate.inference import predict_inference

    for row in load_rows():
        if row.task != "infer" or row_file(row.id) == "published_results.csv":
            continue
        assert isinstance(express(row), Unexpressible)
        try:
            predict_inference(row)
        except NotImplementedError as exc:  # NotInferenceRow: reported as unexpressible
            assert str(exc).strip(), row.id


def test_a_rate_from_an_unknown_source_without_its_global_batch_runs_one_micro_batch_per_step() -> None:
    """A row from a source the mapping does not know, without a global batch: with no pipeline and a
    rate as its metric it is predicted at micro_batch x dp sequences per step, said in a caveat;
    with a pipeline (the bubble depends on the number of micro-batches) or a step time it is refused."""
    base = next(
        r
        for r in load_rows()
        if isinstance(express(r), Case)
        and express(r).kind == "train"
        and (r.pp or 1) == 1
        and r.micro_batch
        and r.chips
        and r.metric == "tokens_per_s_per_chip"
    )
    row = replace(base, source="a source the mapping has never seen", global_batch=None)
    case = express(row)
    assert isinstance(case, Case)
    dp = row.chips // ((row.tp or 1) * (row.cp or 1))
    assert case.workload.global_batch == row.micro_batch * dp
    assert any("assumed: one micro-batch per step" in c for c in case.caveats)
    piped = express(replace(row, pp=2, dp=None))
    timed = express(replace(row, metric="step_time_s", unit="s"))
    assert isinstance(piped, Unexpressible) and isinstance(timed, Unexpressible)
    assert "global batch" in piped.reason and "global batch" in timed.reason
