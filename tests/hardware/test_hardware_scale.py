"""Honest scale limits (issue 16): a system without a documented scale-out network refuses chips
beyond its largest domain, or prices them on a stated, labelled assumed network; never at the
in-node bandwidth. References: the catalog's levels (inf2.48xlarge: a 12-chip NeuronLink torus and
no EFA level in the sources; TPU v6e: a 256-chip ICI pod; the AMD 8-GPU platforms: Infinity Fabric
inside the node, NICs not in the sources)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

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
    assert scale_limit(get_system("tpu-v6e-pod")) == 256
    assert scale_limit(get_system("p5.48xlarge")) is None  # EFA: unbounded
    assert scale_limit(get_system("mi300x-platform")) is None  # the assumed network
    check_scale(get_system("tpu-v6e-pod"), 256)
    with pytest.raises(InputError) as info:
        check_scale(get_system("tpu-v6e-pod"), 512)
    assert "tpu-v6e-pod" in info.value.rule and "256" in info.value.rule


@pytest.mark.parametrize(
    ("verb", "chip", "chips", "words"),
    [
        ("estimate", "inf2", "24", ["chips=24", "inf2.48xlarge", "12 chips"]),
        ("estimate", "tpu-v6e", "512", ["chips=512", "tpu-v6e-pod", "256 chips"]),
        ("plan", "inf2", "24", ["chips=24", "inf2.48xlarge", "12 chips"]),
    ],
)
def test_beyond_the_largest_domain_exits_2_naming_system_and_limit(
    verb: str, chip: str, chips: str, words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, verb, "--model", "llama3.1-8b", "--chip", chip, "--chips", chips, *SMALL)
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
