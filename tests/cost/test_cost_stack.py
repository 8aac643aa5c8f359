"""Software stacks (`cost.stack`): every shipped file loads with a source per mechanism, bad files
are refused by field, `auto` resolves to the vendor's reference stack, and the stack changes what
the estimator prices (runtime, overlaps, attention kernel) in the documented direction."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from twofold.cost.calibration import UNCALIBRATED, shipped_calibration
from twofold.cost.defaults import profile_for
from twofold.cost.stack import MECHANISMS, get_stack, list_stacks, load_stack_file, resolve_stack
from twofold.errors import InputError
from twofold.estimate import estimate_training
from twofold.hardware.catalog import get_chip, system_for
from twofold.parallel.layout import Layout, TrainingWorkload
from twofold.workload.params import param_counts
from twofold.workload.registry import get_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import run_cli  # noqa: E402

REQUIRED = ("megatron", "torchtitan", "fsdp", "deepspeed", "maxtext", "neuronx")


def test_the_stacks_the_issue_names_ship_with_every_mechanism_sourced() -> None:
    ids = list_stacks()
    assert ids[0] == "auto"
    for stack_id in REQUIRED:
        assert stack_id in ids
    for stack_id in ids[1:]:
        stack = get_stack(stack_id)
        assert set(stack.mechanisms) == set(MECHANISMS)
        for mechanism in stack.mechanisms.values():
            assert len(mechanism.source) > 20, (stack_id, mechanism.name)


def test_auto_is_the_vendor_reference_stack() -> None:
    assert resolve_stack(None, get_chip("h100")).id == "megatron"
    assert resolve_stack("auto", get_chip("tpu-v5p")).id == "maxtext"
    assert resolve_stack(None, get_chip("trn2")).id == "neuronx"
    assert resolve_stack("fsdp", get_chip("trn2")).id == "fsdp"


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def doc() -> dict:
    import importlib.resources

    text = importlib.resources.files("twofold.cost").joinpath("stacks", "fsdp.yaml").read_text()
    return yaml.safe_load(text)


def test_a_user_stack_file_loads(tmp_path: Path, doc: dict) -> None:
    doc["id"] = "mine"
    doc["mechanisms"]["runtime"]["value"] = "compiled"
    stack = load_stack_file(_write(tmp_path, doc))
    assert stack.id == "mine" and not stack.eager("NVIDIA Hopper")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["mechanisms"].pop("runtime"), "mechanisms.runtime"),
        (lambda d: d["mechanisms"]["runtime"].update(value="jit"), "mechanisms.runtime.value"),
        (lambda d: d["mechanisms"]["attention_kernel"].update(value="flash9"), "attention_kernel.value"),
        (lambda d: d["mechanisms"]["tp_comm_overlap"].update(value="yes"), "tp_comm_overlap.value"),
        (lambda d: d["mechanisms"]["runtime"].update(source=""), "mechanisms.runtime.source"),
        (lambda d: d["mechanisms"]["context_parallel"].update(value="ulysses"), "context_parallel.value"),
        (lambda d: d["mechanisms"].update(magic={"value": 1, "source": "x"}), "mechanisms"),
    ],
)
def test_a_bad_stack_file_is_refused_by_field(tmp_path: Path, doc: dict, change, field: str) -> None:
    change(doc)
    with pytest.raises(InputError) as info:
        load_stack_file(_write(tmp_path, doc))
    assert field in info.value.field


def test_unknown_stack_id_names_near_matches() -> None:
    with pytest.raises(InputError, match="did you mean: fsdp"):
        get_stack("fsdpp")


def test_compiled_stacks_drop_the_eager_overhead_and_unfused_traffic() -> None:
    chip = get_chip("h100")
    cal = shipped_calibration()
    eager = profile_for(chip, cal.with_stack("fsdp"))
    compiled = profile_for(chip, cal.with_stack("fsdp-compile"))
    assert eager.op_overhead_s == pytest.approx(compiled.op_overhead_s * cal.op_overhead_factor)
    # Hugging Face-style eager modules move their unfused forms' bytes; Inductor's fused kernels do not.
    assert eager.extra.get("unfused_elementwise") == 1.0
    assert "unfused_elementwise" not in compiled.extra
    # The achieved fraction of bandwidth of memory-bound kernels is one fitted factor on both runtimes.
    assert cal.memory_bound_efficiency_factor != pytest.approx(1.0)
    for profile in (eager, compiled):
        assert profile.extra["memory_bound_efficiency"] == pytest.approx(cal.memory_bound_efficiency_factor)


def test_stacks_without_tp_overlap_expose_all_tp_communication() -> None:
    chip = get_chip("h100")
    cal = shipped_calibration()
    assert cal.with_stack("megatron").tp_overlap_on(chip) == pytest.approx(cal.tp_overlap(chip.id))
    assert cal.with_stack("fsdp").tp_overlap_on(chip) == 0.0


def test_the_stack_sets_the_attention_kernel_per_family() -> None:
    assert profile_for(get_chip("h100"), UNCALIBRATED.with_stack("megatron")).attention_kernel == "cudnn"
    assert profile_for(get_chip("a100"), UNCALIBRATED.with_stack("megatron")).attention_kernel == "flash2"
    assert profile_for(get_chip("h100"), UNCALIBRATED.with_stack("fsdp")).attention_kernel == "flash2"


def test_cli_stacks_lists_and_shows(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "stacks", "--json")
    assert code == 0
    data = json.loads(out)
    assert {s["id"] for s in data["stacks"]} >= set(REQUIRED)
    assert data["auto"]["nvidia-gpu"] == "megatron"
    rows = {s["id"]: s["published_rows"] for s in data["stacks"]}
    assert rows["megatron"] > 100 and rows["fsdp"] > 0  # the evidence behind each stack's fit
    code, out, _ = run_cli(capsys, "stacks", "neuronx", "--json")
    assert code == 0 and json.loads(out)["mechanisms"]["attention_kernel"]["value"] == "nki"
    code, _, err = run_cli(capsys, "stacks", "nope")
    assert code == 2 and "stack='nope'" in err


def test_cli_estimate_names_the_stack_it_ran(capsys: pytest.CaptureFixture[str]) -> None:
    args = ("estimate", "--model", "llama3.1-8b", "--chip", "h100", "--chips", "8", "--json")
    code, out, _ = run_cli(capsys, *args)
    auto = json.loads(out)
    assert code == 0 and auto["provenance"]["stack"] == "megatron"
    assert auto["provenance"]["stack_chosen_by"].startswith("auto")
    code, out, _ = run_cli(capsys, *args, "--stack", "fsdp")
    fsdp = json.loads(out)
    assert fsdp["provenance"]["stack"] == "fsdp"
    assert fsdp["provenance"]["factors"]["attention_kernel"] == "flash2"
    # FlashAttention-2 on Hopper is about half as fast as cuDNN attention (kernels.csv), eager
    # overheads the same, no TP here: the fsdp stack is slower on the same layout.
    assert fsdp["step_time_s"] > auto["step_time_s"]
    code, _, err = run_cli(capsys, *args, "--stack", "fsdpp")
    assert code == 2 and "did you mean" in err


def test_dynamic_fp8_scaling_reads_each_cast_input_once_more(tmp_path: Path, doc: dict) -> None:
    from twofold.cost.roofline import op_time_terms
    from twofold.workload.ops import Op

    chip = get_chip("h100")
    delayed = dict(doc, id="delayed")
    delayed["mechanisms"] = dict(doc["mechanisms"], fp8_recipe={"value": "te-delayed", "source": "test"})
    dynamic = dict(doc, id="dynamic")
    dynamic["mechanisms"] = dict(doc["mechanisms"], fp8_recipe={"value": "torchao-tensorwise", "source": "t"})
    (tmp_path / "a").mkdir()
    a = load_stack_file(_write(tmp_path / "a", delayed))
    b = load_stack_file(_write(tmp_path, dynamic))
    n = 8192 * 4096
    cast = Op(
        name="layer.mlp.up.cast", kind="elementwise", phase="forward", flops=float(n),
        bytes_read=2.0 * n, bytes_written=1.0 * n, count=1, dims={"elements": n}, dtype="bf16",
    )  # fmt: skip
    p_a, p_b = profile_for(chip, UNCALIBRATED.with_stack(a)), profile_for(chip, UNCALIBRATED.with_stack(b))
    t_a, t_b = op_time_terms([cast], chip, p_a), op_time_terms([cast], chip, p_b)
    bandwidth = chip.hbm_bandwidth_bytes_per_s * p_a.memory_efficiency
    # Hand derivation: the amax pass adds one read of the BF16 input (2n bytes) at the same bandwidth.
    assert t_b.memory_s[0] - t_a.memory_s[0] == pytest.approx(2.0 * n / bandwidth)


def test_cli_stacks_lists_user_stacks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, doc: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = tmp_path / ".twofold" / "stacks"
    folder.mkdir(parents=True)
    doc["id"] = "ours"
    (folder / "ours.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    code, out, _ = run_cli(capsys, "stacks", "--json")
    assert code == 0
    users = [s for s in json.loads(out)["stacks"] if s.get("user")]
    assert [s["id"] for s in users] == ["ours"]


def test_fsdp2_inherits_the_fsdp1_overlap_until_it_has_rows() -> None:
    """torchtitan (FSDP2) has no fitted overlap: it takes FSDP1's (same prefetching), not the shared
    Megatron/DeepSpeed value; an FSDP2 value of its own, once fitted, wins."""
    from twofold.cost.calibration import shipped_calibration
    from twofold.cost.stack import get_stack
    from twofold.hardware.catalog import get_chip

    shipped = shipped_calibration()
    h100 = get_chip("h100")
    fsdp1 = shipped.fsdp_comm_overlap_by_flavour["fsdp1"]
    assert "fsdp2" not in shipped.fsdp_comm_overlap_by_flavour
    assert shipped.with_stack(get_stack("torchtitan")).fsdp_overlap_on(h100) == fsdp1
    assert shipped.with_stack(get_stack("megatron")).fsdp_overlap_on(h100) == shipped.fsdp_comm_overlap
    own = shipped.with_factors(fsdp_comm_overlap_by_flavour={"fsdp1": fsdp1, "fsdp2": 0.9})
    assert own.with_stack(get_stack("torchtitan")).fsdp_overlap_on(h100) == 0.9


def test_deepspeed_runs_context_parallelism_as_all_to_all_the_others_as_ring() -> None:
    """DeepSpeed's sequence parallelism is DeepSpeed-Ulysses (its `DistributedAttention`); the
    other shipped stacks run ring attention (Megatron-Core's default `--cp-comm-type p2p`,
    PyTorch's `context_parallel`, picotron, MaxText's query-sharded CP)."""
    deepspeed = get_stack("deepspeed").mechanisms["context_parallel"]
    assert deepspeed.value == "all-to-all" and not deepspeed.by_family
    assert "Ulysses" in deepspeed.source and "2309.14509" in deepspeed.source
    for stack_id in list_stacks()[1:]:
        if stack_id != "deepspeed":
            assert get_stack(stack_id).context_parallel(None) == "ring", stack_id
    h100 = get_chip("h100")
    assert shipped_calibration().with_stack("deepspeed").context_parallel_on(h100) == "all-to-all"
    assert shipped_calibration().context_parallel_on(h100) == "ring"  # auto: megatron


def test_a_stack_file_from_before_context_parallel_reads_as_ring(tmp_path: Path, doc: dict) -> None:
    # `twofold calibrate` wrote every mechanism of its day; context_parallel came later.
    doc["mechanisms"].pop("context_parallel")
    stack = load_stack_file(_write(tmp_path, doc))
    assert stack.context_parallel(None) == "ring"
    assert stack.mechanisms["context_parallel"].source.startswith("not stated in the file")


def test_cli_stacks_shows_the_context_parallel_algorithm(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "stacks", "deepspeed")
    assert code == 0 and "context_parallel" in out and "all-to-all" in out


def test_unfused_stacks_move_and_launch_what_the_primitives_do(tmp_path: Path, doc: dict) -> None:
    """`fused_elementwise: false` on an eager stack multiplies a norm's traffic and launches by its
    unfused form (`workload.layers`, measured in tests/workload/test_unfused.py); a stack with
    hand-fused kernels, and one left silent (files written before the mechanism), price one kernel."""
    from twofold.cost.roofline import op_time_terms
    from twofold.workload.layers import UNFUSED_RMSNORM
    from twofold.workload.ops import Op

    chip = get_chip("h100")
    fused = dict(doc, id="fused")
    fused["mechanisms"] = dict(doc["mechanisms"], fused_elementwise={"value": True, "source": "test"})
    silent = dict(doc, id="silent")
    silent["mechanisms"] = {k: v for k, v in doc["mechanisms"].items() if k != "fused_elementwise"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    stacks = {
        "unfused": get_stack("fsdp"),
        "fused": load_stack_file(_write(tmp_path / "a", fused)),
        "silent": load_stack_file(_write(tmp_path / "b", silent)),
    }
    assert stacks["unfused"].unfused("NVIDIA Hopper") and not stacks["fused"].unfused("NVIDIA Hopper")
    assert stacks["silent"].value("fused_elementwise") is True
    assert not get_stack("fsdp-compile").unfused("NVIDIA Hopper")  # compiled: Inductor fuses them
    assert not get_stack("megatron").unfused("NVIDIA Hopper")
    n = 8192 * 4096
    rmsnorm = Op(
        name="layer.attn.norm", kind="norm", phase="forward", flops=4.0 * n, bytes_read=2.0 * n,
        bytes_written=2.0 * n, count=1, dims={"elements": n}, dtype="bf16",
        unfused_traffic=UNFUSED_RMSNORM[0], unfused_kernels=UNFUSED_RMSNORM[1],
    )  # fmt: skip
    profiles = {k: profile_for(chip, UNCALIBRATED.with_stack(s)) for k, s in stacks.items()}
    terms = {k: op_time_terms([rmsnorm], chip, p) for k, p in profiles.items()}
    assert terms["unfused"].memory_s[0] == pytest.approx(UNFUSED_RMSNORM[0] * terms["fused"].memory_s[0])
    assert terms["unfused"].overhead_s[0] == pytest.approx(UNFUSED_RMSNORM[1] * terms["fused"].overhead_s[0])
    assert terms["silent"].memory_s[0] == pytest.approx(terms["fused"].memory_s[0])


def test_runtime_variants_switch_torch_compile_and_keep_the_stack_factors() -> None:
    """`<id>-eager` / `<id>-compile` (`cost.stack.RUNTIME_SUFFIXES`): the stack's mechanisms with the
    runtime switched, its fitted per-stack factors kept under the base id; a shipped file of the same
    id comes first; a variant of an unknown stack is an unknown stack."""
    from twofold.cost.stack import is_stack_id

    titan, eager = get_stack("torchtitan"), get_stack("torchtitan-eager")
    assert not titan.eager(None) and eager.eager(None) and eager.unfused("NVIDIA Hopper")
    assert {k: m.value for k, m in eager.mechanisms.items() if k != "runtime"} == {
        k: m.value for k, m in titan.mechanisms.items() if k != "runtime"
    }
    assert eager.calibration_id == "torchtitan" and titan.calibration_id == "torchtitan"
    assert get_stack("fsdp-compile").path.endswith("fsdp-compile.yaml")  # the file, not a variant
    assert get_stack("megatron-compile").calibration_id == "megatron"
    cal = shipped_calibration()
    chip = get_chip("h100")
    assert cal.with_stack("megatron-compile").collective_efficiency_on(chip) == pytest.approx(
        cal.with_stack("megatron").collective_efficiency_on(chip)
    )
    assert is_stack_id("torchtitan-eager") and not is_stack_id("nothing-eager")
    with pytest.raises(InputError, match="unknown stack"):
        get_stack("nothing-eager")


def test_zero_stages_are_data_with_a_default_and_a_rule(tmp_path: Path, doc: dict) -> None:
    """`zero_stages`: a list of stages 0-3 (refused by field otherwise), the default stage an
    estimate takes is 1 where the stack has it, else the nearest above (MaxText: 3)."""
    assert get_stack("maxtext").zero_stages(None) == (0, 3) and get_stack("maxtext").default_zero(None) == 3
    assert get_stack("nanotron").default_zero(None) == 1 and get_stack("megatron").default_zero(None) == 1
    bad = dict(doc, id="bad")
    bad["mechanisms"] = dict(doc["mechanisms"], zero_stages={"value": [4], "source": "test"})
    with pytest.raises(InputError) as info:
        load_stack_file(_write(tmp_path, bad))
    assert "zero_stages" in info.value.field


def test_a_stack_as_of_a_year_takes_its_eras_values(tmp_path: Path, doc: dict) -> None:
    """`<id>@<year>` (`Stack.as_of`): a mechanism's `history` era reaching that year replaces its
    value on every family; later years are the stack itself; the dated stack keeps its base's
    fitted factors; a bad era is refused by field."""
    from twofold.cost.stack import is_stack_id

    old, now = get_stack("megatron@2021"), get_stack("megatron")
    assert old.id == "megatron@2021" and old.calibration_id == "megatron"
    assert {old.attention_kernel(f) for f in ("NVIDIA Ampere", "NVIDIA Hopper", None)} == {"math"}
    assert now.attention_kernel("NVIDIA Ampere") == "flash2"  # FlashAttention-2 from 2023 on
    assert get_stack("megatron@2023") is now and now.as_of(None) is now
    # TP collectives on the critical path before Transformer Engine's userbuffers (2023).
    assert old.value("tp_comm_overlap") is False and now.value("tp_comm_overlap") is True
    eras = ("attention_kernel", "tp_comm_overlap")
    assert {k: m.value for k, m in old.mechanisms.items() if k not in eras} == {
        k: m.value for k, m in now.mechanisms.items() if k not in eras
    }
    both = get_stack("megatron-compile@2022")
    assert (
        not both.eager(None) and both.attention_kernel(None) == "math" and both.calibration_id == "megatron"
    )
    assert is_stack_id("megatron@2021") and is_stack_id("deepspeed@2019") and not is_stack_id("auto@2021")
    assert get_stack("deepspeed@2021").attention_kernel("NVIDIA Ampere") == "math"
    assert now.to_dict()["mechanisms"]["attention_kernel"]["history"][0]["through"] == 2022
    bad = dict(doc, id="bad")
    era = {"through": "2022", "value": "math", "source": "test"}
    bad["mechanisms"] = dict(
        doc["mechanisms"], attention_kernel={"value": "flash2", "source": "x" * 30, "history": [era]}
    )
    with pytest.raises(InputError) as info:
        load_stack_file(_write(tmp_path, bad))
    assert info.value.field.endswith("history[0].through")
    era = {"through": 2022, "value": "no-such-kernel", "source": "test"}
    bad["mechanisms"]["attention_kernel"]["history"] = [era]
    with pytest.raises(InputError) as info:
        load_stack_file(_write(tmp_path, bad))
    assert info.value.field.endswith("history[0].value")


def test_unfused_attention_of_an_older_stack_is_slower_and_keeps_the_scores() -> None:
    """Megatron-LM as of 2021 (no FlashAttention): the attention core runs at the published speed
    of unfused attention and the s x s softmax output stays in memory. Hand derivation of the
    memory: Korthikanti et al. 2022 eq. 2, per layer 5as^2b bytes of scores with dropout; without
    dropout (the estimator's default) the softmax output alone, 2 bytes * a * s^2 * b per layer,
    minus FlashAttention's fp32 log-sum-exp (4 bytes * a * s * b) that the unfused form does not keep."""
    from twofold.estimate import estimate_training
    from twofold.hardware.catalog import system_for
    from twofold.parallel.layout import Layout, TrainingWorkload
    from twofold.workload.registry import get_model

    model = get_model("gpt3-175b")
    system = system_for(get_chip("a100"))
    layout = Layout(dp=1, tp=8, pp=12, micro_batch=1, recompute="none", zero=1)
    workload = TrainingWorkload(global_batch=12, seq_len=2048, precision="bf16")
    cal = UNCALIBRATED
    new = estimate_training(model, system, layout, workload, calibration=cal, stack="megatron")
    old = estimate_training(model, system, layout, workload, calibration=cal, stack="megatron@2021")
    assert old.breakdown["compute_forward"] > new.breakdown["compute_forward"]
    a, s, b, tp = model.num_attention_heads, 2048, 1, 8
    stage_layers = model.num_layers // 12
    per_layer = (2.0 * a * s * s * b - 4.0 * a * s * b) / tp
    # The first stage keeps pp micro-batches in flight under 1F1B (the most loaded stage).
    extra = (old.memory_gib["activations"] - new.memory_gib["activations"]) * 2**30
    assert extra == pytest.approx(per_layer * stage_layers * 12, rel=1e-6)


def test_a_stack_id_can_set_mechanisms(capsys: pytest.CaptureFixture[str]) -> None:
    """`<id>+<mechanism>=<value>` (`cost.stack.OVERRIDE`): the stack with those values on every
    family, its fitted factors kept under the base id; a bad mechanism or value is refused naming
    it; `auto` cannot take values (it is one stack per chip)."""
    from twofold.cost.stack import is_stack_id

    triton = get_stack("fsdp+attention_kernel=flash-triton")
    assert triton.id == "fsdp+attention_kernel=flash-triton" and triton.calibration_id == "fsdp"
    assert {triton.attention_kernel(f) for f in ("NVIDIA Hopper", "AMD Instinct", None)} == {"flash-triton"}
    both = get_stack("megatron@2021+tp_comm_overlap=false")
    assert both.attention_kernel(None) == "math" and both.value("tp_comm_overlap") is False
    assert both.calibration_id == "megatron"
    assert get_stack("fsdp+zero_stages=0,3").zero_stages(None) == (0, 3)
    assert is_stack_id("fsdp+attention_kernel=flash1") and not is_stack_id("fsdp+kernel=flash1")
    for bad, field in (
        ("fsdp+kernel=flash1", "stack"),
        ("fsdp+attention_kernel=flash9", "stack.attention_kernel"),
        ("fsdp+tp_comm_overlap=maybe", "stack.tp_comm_overlap"),
        ("auto+attention_kernel=flash1", "stack"),
    ):
        with pytest.raises(InputError) as info:
            get_stack(bad)
        assert info.value.field == field, bad
    # On the command line: TP communication exposed instead of overlapped costs more TP time.
    args = ("estimate", "--model", "llama3.1-70b", "--chip", "h100", "--chips", "16", "--tp", "8", "--json")
    code, out, _ = run_cli(capsys, *args, "--stack", "megatron")
    code2, out2, _ = run_cli(capsys, *args, "--stack", "megatron+tp_comm_overlap=false")
    assert code == code2 == 0
    tp, tp_exposed = (json.loads(o)["breakdown"]["tp_s"] for o in (out, out2))
    assert tp_exposed > tp
    code, _, err = run_cli(capsys, *args, "--stack", "megatron+tp_comm_overlap=maybe")
    assert code == 2 and "tp_comm_overlap" in err


def test_model_state_bytes_are_data_with_a_default_and_a_rule(tmp_path: Path, doc: dict) -> None:
    """`model_state_bytes`: {weights, gradients, optimizer} bytes per parameter with a source
    (Megatron-LM's 2 + 4 + 12, nanotron's 2 + 6 + 12, FSDP2's 4 + 4 + 8); a file without it keeps
    the ZeRO paper's 2 + 2 + 12; missing keys and non-positive bytes are refused by field; an id
    sets it as weights:gradients:optimizer, and the memory model follows it."""
    assert get_stack("megatron").model_state_bytes(None) == (2.0, 4.0, 12.0)
    assert get_stack("nanotron").model_state_bytes(None) == (2.0, 6.0, 12.0)
    assert get_stack("torchtitan").model_state_bytes(None) == (4.0, 4.0, 8.0)
    older = dict(doc, id="older")
    older["mechanisms"] = {k: v for k, v in doc["mechanisms"].items() if k != "model_state_bytes"}
    assert load_stack_file(_write(tmp_path, older)).model_state_bytes(None) == (2.0, 2.0, 12.0)
    for value, field in (
        ({"weights": 2, "gradients": 4}, "model_state_bytes.value"),
        ({"weights": 2, "gradients": 0, "optimizer": 12}, "model_state_bytes.value.gradients"),
        ({"weights": 2, "gradients": "four", "optimizer": 12}, "model_state_bytes.value.gradients"),
    ):
        bad = dict(doc, id="bad")
        bad["mechanisms"] = dict(doc["mechanisms"], model_state_bytes={"value": value, "source": "test"})
        with pytest.raises(InputError) as info:
            load_stack_file(_write(tmp_path, bad))
        assert info.value.field.endswith(field), info.value.field
    heavier = get_stack("megatron+model_state_bytes=2:6:12")
    assert heavier.model_state_bytes(None) == (2.0, 6.0, 12.0) and heavier.calibration_id == "megatron"
    with pytest.raises(InputError) as info:
        get_stack("megatron+model_state_bytes=2:x:12")
    assert info.value.field == "stack.model_state_bytes"
    # 2 more gradient bytes per parameter on every chip: 16e9 bytes more for an 8B model at ZeRO-1.
    chip = get_chip("h100")
    model = get_model("llama3.1-8b")
    work, layout = TrainingWorkload(global_batch=64, seq_len=4096), Layout(dp=8, zero=1)
    system = system_for(chip)
    mem = {
        sid: estimate_training(model, system, layout, work, chip=chip, stack=sid).memory_gib["gradients"]
        for sid in ("megatron", "megatron+model_state_bytes=2:6:12")
    }
    params_gib = mem["megatron"] / 4.0
    assert mem["megatron+model_state_bytes=2:6:12"] == pytest.approx(6.0 * params_gib)
    assert params_gib * 2**30 == pytest.approx(param_counts(model).total, rel=1e-6)
