"""Rows from outside the shipped files: the text readers and `twofold validate --data`.

Reference: the curated mapping (`validate/data/mapping.yaml`), which a person wrote row by row for
the shipped spellings. Where it decides a spelling, the readers must decide the same; a row whose
spellings are changed must predict exactly what its curated original predicts.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest

from twofold.cost.stack import get_stack

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import run_cli  # noqa: E402
from twofold.validate import validate  # noqa: E402
from twofold.validate.dataset import COLUMNS, load_rows  # noqa: E402
from twofold.validate.mapping import mapping_data, row_stack, stack_rule  # noqa: E402
from twofold.validate.reading import (  # noqa: E402
    read_hardware,
    read_model_id,
    read_precision,
    read_recompute,
    read_stack,
)
from twofold.workload.registry import catalog_names  # noqa: E402


def test_hardware_reader_agrees_with_every_curated_spelling() -> None:
    refused = []
    for text, entry in mapping_data()["hardware"].items():
        reading = read_hardware(text)
        if entry.get("chip") is None:  # curated refusal: never read as some catalog chip
            assert reading is None or reading.chip is None, text
            continue
        assert reading is not None, text
        if reading.chip is None:  # the curated entry decided on evidence outside the text
            refused.append(text)
            continue
        assert reading.chip == entry["chip"], text
        assert reading.family == entry["family"], text
        assert reading.cores_per_chip == entry.get("cores_per_chip", 1), text
    # "NVIDIA A100 (variant not stated)": mapping.yaml reads 80 GB from the rows' memory needs.
    assert refused == ["NVIDIA A100 (variant not stated)"]


@pytest.mark.parametrize(
    ("text", "chip"),
    [
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("8x NVIDIA H100-SXM5-80GB", "h100"),
        ("NVIDIA A100-SXM4-40GB", "a100-40gb"),
        ("Cloud TPU v5p-1024", "tpu-v5p"),
        ("TPU v5 lite pod", "tpu-v5e"),
        ("Google TPU Ironwood", "tpu-v7"),
        ("AWS trn2.48xlarge", "trn2"),
        ("AMD Instinct MI325X", "mi325x"),
        ("NVIDIA GB200 NVL72 rack", "gb200"),
        # H100 form factors: each its own part, never read as the SXM chip.
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("H100-PCIE-80GB", "h100-pcie"),
        ("NVIDIA H100 PCIe 80GB", "h100-pcie"),  # the digits after PCIe are the memory, not a PCIe generation
        ("NVIDIA H100 80GB PCIe", "h100-pcie"),
        ("NVIDIA H100 NVL", "h100-nvl"),
        ("H100 NVL 94GB", "h100-nvl"),
        ("NVIDIA H800", "h800"),
        ("H800 SXM5 80GB", "h800"),
        ("H800", "h800"),
        ("2048 NVIDIA H800 GPUs", "h800"),
        ("H100 SXM", "h100"),
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("DGX H100", "h100"),
        ("8x H100 (PCIe 5.0 switches)", "h100"),  # a PCIe generation, not the card
        ("NVIDIA H100 SXM5 (PCIe Gen5 host)", None),  # H100 and PCIe named apart: refused, not guessed
        ("H100 SXM vs H100 PCIe", None),  # two parts
        ("H100 PCIe and H100 NVL", None),
        ("H100 and H800", None),
        ("NVIDIA H800 PCIe 80GB", None),  # not in the catalog: never read as the H800 SXM
        ("NVIDIA H200 NVL", None),  # a 600 W PCIe card, not the H200 SXM
        ("NVIDIA A800 80GB PCIe", None),  # not the A800 SXM
        ("A100 or H100", None),  # two chips named
        # The parts added with issue #13, as the shipped rows and other sources spell them.
        ("NVIDIA GH200", "gh200"),
        ("NVIDIA GH200 Grace Hopper Superchip", "gh200"),
        ("NVIDIA A100 80GB PCIe", "a100-pcie"),
        ("8x NVIDIA A800-SXM4-80GB", "a800"),
        ("NVIDIA GeForce RTX 4090 24GB", "rtx-4090"),
        ("NVIDIA RTX A6000 48GB", "rtx-a6000"),
        ("AMD Instinct MI250X (per GCD; Frontier)", "mi250x"),
        ("Intel(R) Gaudi(R) 2 AI Accelerator", "gaudi2"),
        ("HLS-Gaudi2", "gaudi2"),
        ("Intel Gaudi 3", "gaudi3"),
        ("Intel Gaudi (HLS server, 8 devices; generation not stated on page)", None),
        ("NVIDIA GeForce RTX 3090", None),  # other consumer cards stay refused
        ("AMD Instinct MI250", None),  # MI250 is not the MI250X
    ],
)
def test_hardware_reader_on_new_spellings(text: str, chip: str | None) -> None:
    reading = read_hardware(text)
    assert reading is not None
    assert reading.chip == chip
    if chip is None:
        assert reading.reason


def test_precision_reader_agrees_with_every_curated_spelling() -> None:
    for text, value in mapping_data()["precision"].items():
        assert read_precision(text) == (value or None), text


def test_recompute_reader_agrees_with_every_curated_spelling() -> None:
    for text, value in mapping_data()["recompute"].items():
        if isinstance(value, dict):  # rules over the notes, not a spelling
            continue
        assert read_recompute(text) == value, text
    assert read_recompute("gradient checkpointing") == "full"
    assert read_recompute("full + CPU offload") is None


def test_stack_reader_never_contradicts_the_curated_rules() -> None:
    decided = 0
    for row in load_rows():
        rule = stack_rule(row)
        if rule is None or rule["stack"] in ("serving", "other"):
            continue
        read = read_stack(row.notes, row.source)
        if read is not None:
            assert read[0] == rule["stack"], (row.id, read, rule["stack"])
            decided += 1
    # Only Narayanan et al.'s Table 2 (22 rows) names no framework in its text.
    assert decided >= 300


@pytest.mark.parametrize(
    ("notes", "expected"),
    [
        ("stack=torchtitan (FSDP2); torch.compile=no", "torchtitan-eager"),
        ("stack=torchtitan; trained without torch.compile", "torchtitan-eager"),
        ("stack=torchtitan; torch.compile=yes", "torchtitan"),
        ("stack=torchtitan; torch.compile=not stated", "torchtitan"),
        ("stack=nanotron v0.5; torch.compile=not used/not stated", "nanotron"),
        ("stack=Megatron-LM; torch.compile=on", "megatron-compile"),
        ("stack=Megatron-LM", "megatron"),
        ("stack=PyTorch FSDP1; torch.compile=yes", "fsdp-compile"),
    ],
)
def test_a_stated_torch_compile_selects_the_runtime_variant(notes: str, expected: str) -> None:
    """A PyTorch stack whose runtime is a switch runs as the notes state it: torchtitan without
    torch.compile is `torchtitan-eager` (`cost.stack.RUNTIME_SUFFIXES`), "not stated" keeps the
    stack's own, and fsdp keeps its `fsdp-compile` file."""
    read = read_stack(notes, "a source")
    assert read is not None and read[0] == expected
    compiled = ("torchtitan", "fsdp-compile", "megatron-compile")
    assert get_stack(read[0]).eager(None) is (expected not in compiled)


def test_a_stack_named_with_stack_runs_as_the_row_states_torch_compile() -> None:
    """`validate --data FILE --stack ID` names the framework; the row still says whether it ran
    torch.compile (`validate.reading.stated_runtime`)."""
    from twofold.validate.reading import stated_runtime

    assert stated_runtime("torchtitan", "torch.compile=no; FSDP2") == "torchtitan-eager"
    assert stated_runtime("torchtitan", "torch.compile=yes") == "torchtitan"
    assert stated_runtime("fsdp", "torch.compile=yes") == "fsdp-compile"
    assert stated_runtime("fsdp", "torch.compile=not stated") == "fsdp"
    assert stated_runtime("maxtext", "torch.compile=no") == "maxtext"  # JAX: not a switch
    assert stated_runtime("megatron", "no mention") == "megatron"


@pytest.mark.parametrize(
    ("name", "model_id"),
    [
        ("Meta-Llama-3-70B", "llama3.1-70b"),
        ("meta-llama/Meta-Llama-3.1-8B-Instruct", "llama3.1-8b"),
        ("Llama-2-13b-hf", "llama2-13b"),
        ("gemma-2-27b-it", "gemma-2-27b"),
        ("Qwen2.5-72B", None),  # not in the catalog: built from the row's architecture columns
    ],
)
def test_hub_repository_names_read_as_their_architecture(name: str, model_id: str | None) -> None:
    """A Hub repository name reads as the catalog model of its architecture: the organisation, the
    "Meta-" prefix and checkpoint suffixes (-hf, -instruct, -it) do not change the model."""
    assert read_model_id(name) == model_id


def test_model_reader_agrees_with_the_curated_names() -> None:
    read = 0
    for name, catalog_id in mapping_data()["catalog_models"].items():
        got = read_model_id(name)
        if got is not None:
            assert got == catalog_names()[catalog_id], name
            read += 1
    assert read >= 30
    assert read_model_id("Llama-3.1-8B") == "llama3.1-8b"
    assert read_model_id("LLAMA3_70B") == catalog_names()["llama3-70b"]


@pytest.mark.parametrize(
    ("name", "catalog_id"),
    [
        ("BLOOM-176B", "bloom-176b"),
        ("OLMo-2 7B", "olmo-2-7b"),
        ("OLMo-2 (OLMo-1124 arch) 13B", "olmo-2-13b"),
        ("GPT-J 6B", "gpt-j-6b"),
        ("GPT-J 6B (CNN/DailyMail fine-tune)", "gpt-j-6b"),
        ("Falcon-180B", "falcon-180b"),
        ("OPT-175B", "opt-175b"),
        ("Gemma 2 27B", "gemma-2-27b"),
        ("Phi-3 mini", "phi-3-mini"),
        ("Qwen1.5-MoE-A2.7B", "qwen1.5-moe-a2.7b"),
        ("DeepSeek-V2-Lite", "deepseek-v2-lite"),
        ("StarCoder2-15B", "starcoder2-15b"),
        ("MPT-30B", "mpt-30b"),
    ],
)
def test_model_reader_reads_the_names_published_runs_use(name: str, catalog_id: str) -> None:
    assert read_model_id(name) == catalog_id


def _respelled(path: Path, ids: set[str]) -> list[dict[str, str]]:
    """Shipped rows with new ids, a source no curated rule knows and new hardware spellings."""
    out = []
    for row in load_rows():
        if row.id not in ids:
            continue
        cells = {c: str(getattr(row, c) if getattr(row, c) is not None else "") for c in COLUMNS}
        cells["id"] = "HELD" + row.id
        cells["source"] = "a team's held-out runs"
        cells["hardware"] = row.hardware.replace("NVIDIA", "Nvidia") + " (team cluster)"
        stack = {"megatron": "Megatron-LM", "maxtext": "MaxText"}[row_stack(row)]
        cells["notes"] = f"stack={stack}; {row.notes}"
        out.append(cells)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(out)
    return out


def test_respelled_rows_predict_what_their_curated_originals_predict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = {"GT0046", "GT0050", "GT0077", "GT0125"}  # sources without per-source conventions
    _respelled(tmp_path / "held.csv", ids)
    original = {r.id: r for r in validate([r for r in load_rows() if r.id in ids]).rows}
    code, out, err = run_cli(capsys, "validate", "--data", str(tmp_path / "held.csv"), "--json")
    assert code == 0, err
    rows = {r["id"]: r for r in json.loads(out)["rows"]}
    assert set(rows) == {"HELD" + i for i in ids}
    for rid, ref in original.items():
        got = rows["HELD" + rid]
        assert got["chip"] == ref.chip and got["stack"] == ref.stack
        assert math.isclose(got["predicted"], ref.predicted, rel_tol=1e-9), rid
        assert any("read as" in c for c in got["caveats"])


def test_interval_coverage_counts_rows_inside_their_interval() -> None:
    result = validate([r for r in load_rows() if r.source.startswith("MaxText")])
    judged = [r for r in result.rows if r.throughput]
    inside = [r for r in judged if r.interval[0] <= r.published <= r.interval[1]]
    assert result.interval_coverage_pct == pytest.approx(100.0 * len(inside) / len(judged))
    # The interval is the estimate's: [x e^q_lo, x e^q_hi] for a throughput figure.
    from twofold.estimate.uncertainty import uncertainty_for

    row = judged[0]
    low, high = uncertainty_for(row.chip, None, row.stack, {"x": 1.0}).log_interval
    assert row.interval == pytest.approx((row.predicted * math.exp(low), row.predicted * math.exp(high)))


def test_bad_data_files_exit_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "validate", "--data", str(tmp_path / "nope.csv"))
    assert code == 2 and "data" in err
    (tmp_path / "short.csv").write_text("id,source\nA,b\n")
    code, _, err = run_cli(capsys, "validate", "--data", str(tmp_path / "short.csv"))
    assert code == 2 and "columns" in err
    _respelled(tmp_path / "a.csv", {"GT0046"})
    path = str(tmp_path / "a.csv")
    code, _, err = run_cli(capsys, "validate", "--data", path, "--data", path)
    assert code == 2 and "HELDGT0046" in err
    code, _, err = run_cli(capsys, "validate", "--data", path, "--loso")
    assert code == 2 and "--loso" in err


def test_data_rows_run_the_stack_named_with_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--data FILE --stack ID` runs every row with that stack (reference: the estimator called on the
    curated original's case with the stack replaced)."""
    from dataclasses import replace

    from twofold.cost.calibration import shipped_calibration
    from twofold.validate.mapping import express
    from twofold.validate.metrics import predict_training_figure
    from twofold.validate.predict import default_predictor

    _respelled(tmp_path / "held.csv", {"GT0046"})
    data = str(tmp_path / "held.csv")
    code, out, err = run_cli(capsys, "validate", "--data", data, "--stack", "fsdp", "--json")
    assert code == 0, err
    (row,) = json.loads(out)["rows"]
    assert row["stack"] == "fsdp"
    case = replace(express(next(r for r in load_rows() if r.id == "GT0046")), stack="fsdp")
    expected = predict_training_figure(case, default_predictor(case, shipped_calibration()).step_time_s)
    assert math.isclose(row["predicted"], expected, rel_tol=1e-9)


@pytest.mark.parametrize(("row_id", "gated"), [("GT0046", True), ("GT0012", False)])
def test_unknown_model_name_takes_the_mlp_its_parameter_count_says(row_id: str, gated: bool) -> None:
    """A renamed row (no catalog entry, no column rule) is built as the decoder whose parameter count
    matches `params_b`: Llama 3 8B (SwiGLU) and Narayanan's GPT 1.7B (plain GELU) - the reference is
    the architecture the curated mapping gives the original row."""
    from dataclasses import replace

    from twofold.validate.mapping import model_from_columns

    original = next(r for r in load_rows() if r.id == row_id)
    caveats: list[str] = []
    model = model_from_columns(replace(original, model="A lab's own model"), caveats)
    assert model.mlp_gated is gated
    assert caveats and "parameters against" in caveats[0]


def test_metric_spellings() -> None:
    from twofold.validate.metrics import TRAINING_METRICS
    from twofold.validate.reading import read_metric

    assert read_metric("tokens_per_s_per_GPU") == "tokens_per_s_per_chip"
    assert read_metric("TFLOPS_per_gpu") == "tflops_per_chip"
    assert read_metric("mfu") == "mfu"
    for name in TRAINING_METRICS:  # twofold's own names are kept
        assert read_metric(name) == name


def test_leave_source_out_equals_leave_stack_out_where_a_stack_has_one_source() -> None:
    """A stack with one source (neuronx: the AWS Neuron trn1 table; nanotron) leaves out the same rows
    in both passes, so both refits see the same data and predict the same; a stack with several
    sources (megatron) keeps its other sources' rows in the leave-source-out refit."""
    result = validate(loso=True, losrc=True)
    rows = [r for r in result.rows if r.throughput]
    assert all(r.losrc_predicted is not None for r in rows)
    for r in rows:
        if r.stack in ("neuronx", "nanotron"):
            assert math.isclose(r.losrc_predicted, r.loso_predicted, rel_tol=1e-9), r.id
    megatron = [r for r in rows if r.stack == "megatron"]
    assert any(not math.isclose(r.losrc_predicted, r.loso_predicted, rel_tol=1e-6) for r in megatron)
    assert result.losrc_overall is not None and result.losrc_overall.rows == len(rows)


@pytest.mark.parametrize(
    ("notes", "kernel"),
    [
        ("llm-foundry MPT; attn_impl: triton; FSDP", "flash-triton"),
        ("attention=FlashAttention-2 (flash-attn 2.5.8)", "flash2"),
        ("flash_attention_2 via HF attn_implementation", "flash2"),
        ("FlashAttention-3 on H100", "flash3"),
        ("xformers memory-efficient attention", "xformers"),
        ("attn_impl=torch (no flash)", "math"),
        ("flash-attn 1.0.4", "flash1"),
        ("FlashAttention v1-era kernels", "flash1"),
        ("SDPA", None),  # the backend depends on GPU and version: nothing stated
        ("flash attention on", None),
    ],
)
def test_a_stated_attention_kernel_is_read_from_the_notes(notes: str, kernel: str | None) -> None:
    from twofold.validate.reading import read_stated_mechanisms

    stated = read_stated_mechanisms(notes)
    assert (stated["attention_kernel"][0] if stated else None) == kernel


def test_a_row_runs_with_the_attention_kernel_its_notes_state() -> None:
    """`predict.case_stack`: a stated kernel that differs from the stack's on the row's family is set
    (`fsdp+attention_kernel=flash-triton`); one equal to it leaves the id alone. The Triton kernel on
    H100 (ported from its A100 rows, `cost.attention`) is slower than the stack's FlashAttention-2,
    so the same row predicts a longer step."""
    from dataclasses import replace

    from twofold.validate.mapping import express
    from twofold.validate.predict import case_stack, default_predictor

    row = next(r for r in load_rows() if r.id == "GT3025")  # fms-fsdp, Llama2 7B, 96 H100, eager
    plain = express(replace(row, notes="stack=PyTorch FSDP1; torch.compile=no"))
    triton = express(replace(row, notes="stack=PyTorch FSDP1; torch.compile=no; attn_impl: triton"))
    same = express(replace(row, notes="stack=PyTorch FSDP1; torch.compile=no; FlashAttention-2"))
    assert case_stack(plain) == case_stack(same) == "fsdp"
    assert case_stack(triton) == "fsdp+attention_kernel=flash-triton"
    assert any("attention kernel flash-triton" in c for c in triton.caveats)
    assert default_predictor(triton).step_time_s > default_predictor(plain).step_time_s


def test_held_out_rows_run_their_year_their_stated_kernel_and_a_tuned_micro_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`validate --data`: what a team's rows leave out or state is read as the shipped rows' are. A
    row of 2021 runs Megatron-LM as of 2021, a row that states `attn_impl: triton` runs that kernel,
    and a row without a micro-batch runs the fastest that fits; each says so in a caveat, and the
    prediction is the estimator's on the stack id the row ran (reference: `predict` on the case)."""
    from twofold.cost.calibration import shipped_calibration
    from twofold.validate.dataset import read_csv
    from twofold.validate.mapping import express
    from twofold.validate.metrics import predict_training_figure
    from twofold.validate.predict import case_stack, default_predictor, with_fastest_micro_batch

    cells = _respelled(tmp_path / "held.csv", {"GT0001"})[0]  # Megatron-LM weak scaling, no micro-batch
    old = dict(cells, id="OLD", year="2021")
    triton = dict(cells, id="TRITON", notes=cells["notes"] + "; attn_impl: triton")
    with (tmp_path / "held.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows([old, triton])
    code, out, err = run_cli(capsys, "validate", "--data", str(tmp_path / "held.csv"), "--json")
    assert code == 0, err
    rows = {r["id"]: r for r in json.loads(out)["rows"]}
    assert any(c.startswith("megatron@2021: the stack as it ran in 2021") for c in rows["OLD"]["caveats"])
    assert any("attention kernel flash-triton" in c for c in rows["TRITON"]["caveats"])
    for r in rows.values():
        assert any(c.startswith("micro-batch not published") for c in r["caveats"])
    expected = {"OLD": "megatron@2021", "TRITON": "megatron+attention_kernel=flash-triton"}
    for rid, expected_stack in expected.items():
        row = next(x for x in read_csv(tmp_path / "held.csv") if x.id == rid)
        case = with_fastest_micro_batch(express(row))
        assert case_stack(case) == expected_stack
        step = default_predictor(case, shipped_calibration()).step_time_s
        assert math.isclose(rows[rid]["predicted"], predict_training_figure(case, step), rel_tol=1e-9)
