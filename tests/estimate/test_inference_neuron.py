"""Neuron as Neuron engineers say it: --neuron-cores in logical NeuronCores, LNC, and errors naming both.

Reference: AWS Neuron docs, "Logical NeuronCore configuration" (Trainium2: 8 physical NeuronCores a
chip, LNC=2 by default, so TP_DEGREE=64 is 16 chips; Trainium1 / Inferentia2: 2 cores a chip, LNC=1).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from twofold.cli._inference import neuron_tp
from twofold.errors import InputError
from twofold.hardware.catalog import get_chip

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import run_cli  # noqa: E402


def test_logical_neuroncores_to_chips() -> None:
    assert neuron_tp(get_chip("trn2"), 64, None, 1)[0] == 16  # the NxD Inference tutorials' TP_DEGREE=64
    assert neuron_tp(get_chip("trn2"), 64, 1, 1)[0] == 8  # LNC=1: 8 logical cores a chip
    assert neuron_tp(get_chip("inf2"), 24, None, 1)[0] == 12  # inf2.48xlarge, 24 NeuronCores
    assert neuron_tp(get_chip("trn1"), 32, None, 1)[0] == 16
    assert neuron_tp(get_chip("trn2"), None, None, 4) == (4, "16 logical NeuronCores at LNC=2")


@pytest.mark.parametrize(
    "chip, cores, lnc, field",
    [("trn2", 6, None, "neuron_cores"), ("trn2", 8, 3, "lnc"), ("h100", 8, None, "neuron_cores")],
)
def test_bad_neuron_counts(chip: str, cores: int, lnc: int | None, field: str) -> None:
    with pytest.raises(InputError) as info:
        neuron_tp(get_chip(chip), cores, lnc, 1)
    assert info.value.field == field


def test_cli_counts_and_the_error_names_both(capsys: pytest.CaptureFixture[str]) -> None:
    base = ("estimate", "--infer", "--model", "llama3.1-70b", "--chip", "trn2")
    code, out, err = run_cli(capsys, *base, "--neuron-cores", "64", "--json")
    assert code == 0, err
    assert json.loads(out)["chips"] == 16
    code, _, err = run_cli(capsys, *base, "--neuron-cores", "12")  # 3 chips: 64 heads do not divide
    assert code == 2
    assert "tp=3" in err and "12 logical NeuronCores" in err and "--pad-heads" in err
    code, _, err = run_cli(capsys, *base, "--neuron-cores", "12", "--pad-heads", "--json")
    assert code == 0, err
