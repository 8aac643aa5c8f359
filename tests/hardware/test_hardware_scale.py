"""Honest scale limits (issue 16): a system without a documented scale-out network refuses chips
beyond its largest domain, or prices them on a stated, labelled assumed network; never at the
in-node bandwidth. References: the catalog's levels (inf2.48xlarge: a 12-chip NeuronLink torus and
no EFA level in the sources; lambda-8x-h100: one 8-GPU instance, no network between instances; the
AMD 8-GPU platforms: Infinity Fabric inside the node, NICs not in the sources; TPU v6e: 256-chip ICI
slices joined over a DCN level recalled from Google's v6e docs, marked assumed until checked)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from twofold.errors import InputError
from twofold.hardware._schema import parse_catalog_document
from twofold.hardware.catalog import get_system
from twofold.hardware.scale import assumed_levels, check_scale, scale_limit, scale_notes

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import run_cli  # noqa: E402

SMALL = ("--seq-len", "2048", "--global-batch", "1536")  # divisible by 24, 256 and 512


def test_limits_from_the_levels() -> None:
    assert scale_limit(get_system("inf2.48xlarge")) == 12
    assert scale_limit(get_system("lambda-8x-h100")) == 8
    assert scale_limit(get_system("p5.48xlarge")) is None  # EFA: unbounded
    assert scale_limit(get_system("mi300x-platform")) is None  # the assumed network
    assert scale_limit(get_system("tpu-v6e-pod")) is None  # multislice over DCN
    check_scale(get_system("inf2.48xlarge"), 12)
    with pytest.raises(InputError) as info:
        check_scale(get_system("inf2.48xlarge"), 24)
    assert "inf2.48xlarge" in info.value.rule and "12" in info.value.rule


@pytest.mark.parametrize(
    ("verb", "chip", "chips", "words"),
    [
        ("estimate", "inf2", "24", ["chips=24", "inf2.48xlarge", "12 chips"]),
        ("estimate", "h100@lambda-8x-h100", "16", ["chips=16", "lambda-8x-h100", "8 chips"]),
        ("plan", "inf2", "24", ["chips=24", "inf2.48xlarge", "12 chips"]),
    ],
)
def test_beyond_the_largest_domain_exits_2_naming_system_and_limit(
    verb: str, chip: str, chips: str, words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    chip, _, system = chip.partition("@")
    on = ("--system", system) if system else ()
    argv = ("--model", "llama3.1-8b", "--chip", chip, *on, "--chips", chips, *SMALL)
    code, out, err = run_cli(capsys, verb, *argv)
    assert code == 2 and out == ""
    assert all(w in err for w in words), err


def test_mi300x_beyond_one_node_uses_the_labelled_assumed_network(capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's example: MI300X at 256 chips. The estimate says which network it assumed, in its
    notes and JSON; within one node it assumes nothing."""
    system = get_system("mi300x-platform")
    assert [lv.name for lv in assumed_levels(system, 256)] == ["assumed-network"]
    assert assumed_levels(system, 8) == () and scale_notes(system, 8) == ()
    code, out, _ = run_cli(
        capsys, "estimate", "--model", "llama3.1-8b", "--chip", "mi300x", "--chips", "256", *SMALL, "--json"
    )
    assert code == 0
    notes = json.loads(out)["notes"]
    assert any(n.startswith("ASSUMED scale-out network on mi300x-platform") and "50 GB/s" in n for n in notes)
    argv = ("estimate", "--model", "llama3.1-8b", "--chip", "mi300x", "--chips", "256", *SMALL)
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0 and "ASSUMED scale-out network" in out


def test_the_assumed_network_prices_traffic_between_nodes() -> None:
    """Across 16 GPUs, data-parallel gradients cross the assumed 50 GB/s level, not the 448 GB/s
    Infinity Fabric: halving the assumed bandwidth slows the step; inside one node it changes nothing."""
    from twofold.estimate import estimate_training
    from twofold.parallel.layout import Layout, TrainingWorkload
    from twofold.workload.registry import get_model

    system = get_system("mi300x-platform")
    xgmi, net = system.levels
    slow = replace(system, levels=(xgmi, replace(net, bandwidth_gb_s_per_chip=25.0)))
    work = TrainingWorkload(global_batch=64, seq_len=2048, precision="bf16")

    def step(sys_: object, dp: int) -> float:
        return estimate_training(get_model("llama3.1-8b"), sys_, Layout(dp=dp), work).step_time_s

    assert step(slow, 16) > step(system, 16)
    assert step(slow, 8) == pytest.approx(step(system, 8))


def test_an_assumed_level_needs_its_note(tmp_path: Path) -> None:
    level = {"name": "n", "kind": "network", "domain_chips": None, "bandwidth_gb_s_per_chip": 1.0}
    doc = {
        "sources": {"s": {"title": "T", "url": "https://example.com"}},
        "systems": [
            {
                "id": "x", "name": "X", "chip": "h100", "node_chips": 1, "sources": ["s"],
                "levels": [level | {"latency_us": 1.0, "assumed": True}],
                "prices": {"on_demand": {"usd_per_chip_hour": None, "note": "none"}},
            }
        ],
    }  # fmt: skip
    with pytest.raises(InputError, match="assumed"):
        parse_catalog_document(tmp_path / "x.yaml", doc)


# --- TPU multislice: the DCN level joins ICI slices ------------------------------------------------


def test_a_512_chip_v6e_estimate_runs_and_says_its_dcn_is_assumed(capsys: pytest.CaptureFixture[str]) -> None:
    """Two 256-chip v6e slices (the shape of the MaxText multislice recipes): the estimate runs, and
    its notes name the DCN level as assumed (recalled from Google's docs, not retrieved); one slice
    assumes nothing."""
    argv = ("estimate", "--model", "llama3.1-8b", "--chip", "tpu-v6e", *SMALL, "--json")
    code, out, _ = run_cli(capsys, *argv, "--chips", "512")
    assert code == 0
    notes = json.loads(out)["notes"]
    assert any(n.startswith("ASSUMED scale-out network on tpu-v6e-pod: dcn at 12.5 GB/s") for n in notes), (
        notes
    )
    code, out, _ = run_cli(capsys, *argv, "--chips", "256")
    assert code == 0 and not any("ASSUMED" in n for n in json.loads(out)["notes"])


def test_a_plan_past_one_v6e_slice_says_its_dcn_is_assumed(capsys: pytest.CaptureFixture[str]) -> None:
    """`plan` carries the same scale notes as an estimate (JSON `notes`, one `note:` line each)."""
    argv = ("plan", "--model", "llama3.1-8b", "--chip", "tpu-v6e", *SMALL, "--top", "1")
    code, out, _ = run_cli(capsys, *argv, "--chips", "512", "--json")
    assert code == 0
    assert [n.split(":")[0] for n in json.loads(out)["notes"]] == ["ASSUMED scale-out network on tpu-v6e-pod"]
    code, out, _ = run_cli(capsys, *argv, "--chips", "256", "--json")
    assert code == 0 and json.loads(out)["notes"] == []
    code, out, _ = run_cli(capsys, *argv, "--chips", "512")
    assert code == 0 and "note: ASSUMED scale-out network on tpu-v6e-pod" in out


def test_a_collective_across_v6e_slices_is_slower_per_byte_than_within_one(plain_alpha_beta: None) -> None:
    """An all-reduce of S bytes per chip between two v6e chips, priced by `parallel.comm`. Across two
    slices (chip stride 256) it is one network step, by hand 2 x ((2 - 1) / 2 x S / B_dcn + 1 x 15 us)
    with B_dcn = 4 x 200 Gbps / 8 chips = 12.5 GB/s; within a slice (neighbours on the 16x16 ICI
    torus, 400 GB/s per chip over its 4 links) it is over an order of magnitude faster per byte."""
    from twofold.parallel.comm import Group, LevelArrays, all_reduce_s

    levels = LevelArrays.of_system(get_system("tpu-v6e-pod"))
    size = np.array([1e9])
    across = all_reduce_s(levels, Group.place(levels, [(2.0, 256.0)]), size)
    within = all_reduce_s(levels, Group.place(levels, [(2.0, 1.0)]), size)
    b_dcn = 4 * 200e9 / 8 / 8  # bytes/s per chip
    assert across[0] == pytest.approx(2 * (0.5 * 1e9 / b_dcn + 15e-6))
    assert across[0] > 10 * within[0]


def test_data_parallel_gradients_of_two_v6e_slices_cross_the_dcn() -> None:
    """dp 512 on two slices: the gradient all-reduce crosses the DCN level, so the step is slower
    than dp 256 on one slice at the same per-chip batch, and halving the DCN bandwidth slows the
    512-chip step while the 256-chip one (no DCN traffic) is unchanged."""
    from twofold.estimate import estimate_training
    from twofold.parallel.layout import Layout, TrainingWorkload
    from twofold.workload.registry import get_model

    system = get_system("tpu-v6e-pod")
    ici, dcn = system.levels
    slow = replace(
        system, levels=(ici, replace(dcn, bandwidth_gb_s_per_chip=dcn.bandwidth_gb_s_per_chip / 2))
    )
    model = get_model("llama3.1-8b")

    def dp_s(sys_: object, dp: int) -> float:
        work = TrainingWorkload(global_batch=dp, seq_len=2048, precision="bf16")
        return estimate_training(model, sys_, Layout(dp=dp, zero=1), work).breakdown["dp"]

    assert dp_s(system, 512) > dp_s(system, 256)
    assert dp_s(slow, 512) > dp_s(system, 512)
    assert dp_s(slow, 256) == pytest.approx(dp_s(system, 256))
