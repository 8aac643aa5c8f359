"""Duplicate YAML keys are refused (`twofold.yaml_strict`), in every spec twofold validates whole.

Reference: the YAML text written in each test, whose line numbers are counted by hand. PyYAML's
own loaders keep the last of two equal keys; before this, `chip_counts: [8]` followed by
`chip_counts: [64]` ran only the 64-chip scenarios and said nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_helpers import run_cli  # noqa: E402
from twofold.cost.profile_io import load_profile  # noqa: E402
from twofold.errors import InputError  # noqa: E402
from twofold.sweep import load_spec  # noqa: E402
from twofold.yaml_strict import DuplicateKeyError, load  # noqa: E402

SPEC = """\
name: dup
axes:
  models: [llama-tiny]
  chips: [h100]
  chip_counts: [8]
  seq_lens: [256]
  global_batches: [16]
  chip_counts: [64]
"""


def test_plain_documents_load_as_safe_load_does() -> None:
    text = "a: 1\nb: {c: [1, 2]}\nbase: &x {p: 1}\nd:\n  <<: *x\n  p: 2\n"
    assert load(text) == yaml.safe_load(text)


def test_a_duplicate_key_names_the_key_and_both_lines() -> None:
    with pytest.raises(DuplicateKeyError, match=r"duplicate key 'chip_counts' on line 8 \(first on line 5\)"):
        load(SPEC)
    assert yaml.safe_load(SPEC)["axes"]["chip_counts"] == [64]  # what PyYAML alone does


def test_the_same_key_in_two_mappings_is_fine() -> None:
    assert load("a: {x: 1}\nb: {x: 2}\n") == {"a": {"x": 1}, "b": {"x": 2}}


def test_load_spec_refuses_a_duplicate_key(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(SPEC)
    with pytest.raises(InputError, match="duplicate key 'chip_counts' on line 8"):
        load_spec(path)


def test_sweep_cli_exits_2_on_a_duplicate_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(SPEC)
    code, out, err = run_cli(capsys, "sweep", str(path), "--out", str(tmp_path / "s.db"))
    assert code == 2 and out == ""
    assert err.startswith("error: spec=") and "duplicate key 'chip_counts' on line 8" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.db").exists()


def test_a_profile_with_a_duplicate_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("chip_id: h100\ngemm_efficiency: {bf16: 0.8}\ngemm_efficiency: {bf16: 0.5}\n")
    with pytest.raises(InputError, match="duplicate key 'gemm_efficiency' on line 3"):
        load_profile(path)
