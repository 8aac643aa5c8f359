"""`twofold calibrate` at the command line: bad runs files exit 2 with nothing written, a fit that does
not converge writes nothing, and `--stack NAME` then runs the written stack in estimate, compare and sweep.

References: for the refusals, the row and the field each malformed file breaks; for the round trip,
the estimator run with a calibration built by hand from the written YAML (the shipped factors with
the file's factors put in place, not through `TrainingCalibration.with_stack`). HOME is a temporary
folder, so nothing is written in the real home."""

from __future__ import annotations

import dataclasses
import json
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from _calibrate_runs import generated, grid_runs, hand_set_stack, write_csv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import run_cli  # noqa: E402
from twofold.cost.calibration import TrainingCalibration, shipped_calibration  # noqa: E402
from twofold.cost.stack import get_stack  # noqa: E402


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _written(home: Path) -> list[Path]:
    folder = home / ".twofold" / "stacks"
    return sorted(folder.iterdir()) if folder.exists() else []


def _bad(change: dict[str, Any], row: int = 2) -> list[dict[str, Any]]:
    runs = grid_runs("a100")[:4]
    runs[row] = {**runs[row], **change}
    return runs


MALFORMED = [
    pytest.param(_bad({"chip": "a1000"}), "a100-2.chip", id="unknown-chip"),
    pytest.param(_bad({"chip": "", "hardware": "Some GPU"}), "a100-2.hardware", id="unmapped-hardware"),
    pytest.param(_bad({"dp": 3, "tp": 2}), "a100-2.dp", id="layout-not-chip-count"),
    pytest.param(_bad({"value": 0}), "a100-2.value", id="zero-value"),
    pytest.param(_bad({"chips": -8}), "a100-2.chips", id="negative-chips"),
    pytest.param(_bad({"seq_len": 0}), "a100-2.seq_len", id="zero-seq-len"),
    pytest.param(_bad({"unit": "s"}), "a100-2.unit", id="unit-not-the-metric"),
    pytest.param(_bad({"metric": "mfu", "unit": "tokens/s"}), "a100-2.unit", id="mfu-in-tokens"),
    pytest.param(_bad({"metric": "step_time_s", "unit": "ms"}), "a100-2.unit", id="step-time-in-ms"),
    pytest.param(_bad({"precision": "fp7"}), "a100-2.precision", id="unknown-precision"),
    pytest.param(_bad({"model": "no-such-model"}), "a100-2.model", id="unknown-model"),
    pytest.param(_bad({"global_batch": 7}), "a100-2.global_batch", id="batch-not-split"),
]


@pytest.mark.parametrize(("runs", "field"), MALFORMED)
def test_a_malformed_runs_file_exits_2_naming_row_and_field_and_writes_nothing(
    home: Path, capsys: pytest.CaptureFixture[str], runs: list[dict[str, Any]], field: str
) -> None:
    path = write_csv(home / "runs.csv", [{**r, "value": r["value"] or 0} for r in runs])
    code, _, err = run_cli(capsys, "calibrate", str(path), "--name", "team")
    assert code == 2
    assert field in err
    assert _written(home) == []


def test_a_malformed_yaml_runs_file_exits_2(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = _bad({"tp": 3})  # 8 chips: tp 3 does not divide them
    path = home / "runs.yaml"
    path.write_text(yaml.safe_dump(runs))
    code, _, err = run_cli(capsys, "calibrate", str(path), "--name", "team")
    assert code == 2 and "a100-2.chips" in err
    assert _written(home) == []


def test_a_fit_that_does_not_converge_says_so_and_writes_nothing(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from twofold.validate import calibrate as cal

    real = cal.fit
    monkeypatch.setattr(cal, "fit", lambda *a, **k: dataclasses.replace(real(*a, **k), converged=False))
    path = write_csv(home / "runs.csv", [{**r, "value": 1000.0} for r in grid_runs("a100")[:4]])
    code, out, _ = run_cli(capsys, "calibrate", str(path), "--name", "team", "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["converged"] is False and doc["written"] is None
    assert any("did not converge" in note for note in doc["notes"])
    assert _written(home) == []


def _by_hand(path: Path) -> TrainingCalibration:
    """The shipped factors with the stack file's put in place, running the file's mechanisms."""
    doc = yaml.safe_load(path.read_text())
    shipped = shipped_calibration()
    merged = {
        k: {**getattr(shipped, k), **v} if isinstance(v, dict) else v
        for k, v in doc["calibration"]["factors"].items()
    }
    plain = dataclasses.replace(get_stack("megatron"), id=doc["id"])
    return dataclasses.replace(shipped.with_factors(**merged), stack=plain)


@pytest.fixture
def team(home: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    truth = hand_set_stack("truth", {"attention_efficiency_factor": 0.6, "op_overhead_factor": 2.0})
    path, _ = generated(home / "runs.csv", truth)
    code, out, err = run_cli(capsys, "calibrate", str(path), "--name", "team", "--json")
    assert code == 0, err
    doc = json.loads(out)
    written = home / ".twofold" / "stacks" / "team.yaml"
    assert doc["written"] == str(written) and _written(home) == [written]
    stored = yaml.safe_load(written.read_text())
    assert stored["provenance"]["num_runs"] == 14
    assert len(stored["provenance"]["runs_sha256"]) == 64
    assert stored["provenance"]["twofold_version"]
    return written


def test_estimate_runs_the_written_stack(team: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from twofold.estimate import estimate_training
    from twofold.hardware.catalog import get_chip, system_for
    from twofold.parallel.layout import Layout, TrainingWorkload
    from twofold.workload import get_model

    args = ("--model", "llama2-7b", "--chip", "a100", "--chips", "8", "--zero", "3")
    args += ("--global-batch", "64", "--seq-len", "4096", "--json")
    code, out, err = run_cli(capsys, "estimate", *args, "--stack", "team")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["provenance"]["stack"] == "team"
    assert doc["uncertainty"]["evidence"]["basis"] == "calibrated on 14 runs (stack team)"
    reference = estimate_training(
        get_model("llama2-7b"),
        system_for(get_chip("a100")),
        Layout(dp=8, zero=3),
        TrainingWorkload(global_batch=64, seq_len=4096),
        calibration=_by_hand(team),
    )
    assert doc["tokens_per_s_per_chip"] == pytest.approx(reference.tokens_per_s_per_chip, rel=1e-9)
    code, out, _ = run_cli(capsys, "estimate", *args, "--stack", "megatron")
    assert json.loads(out)["tokens_per_s_per_chip"] != pytest.approx(reference.tokens_per_s_per_chip)


def test_compare_runs_the_written_stack_on_every_chip(team: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys, "compare", "llama2-7b", "--on", "a100,h100", "--chips", "8", "--stack", "team", "--json"
    )
    assert code == 0, err
    rows = {r["chip"]: r for r in json.loads(out)["rows"]}
    assert {r["stack"] for r in rows.values()} == {"team"}
    # the calibrated family has the runs' interval; the other keeps the transfer (shipped) one
    assert rows["a100"]["uncertainty"]["evidence"]["basis"].startswith("calibrated on 14 runs")
    assert not rows["h100"]["uncertainty"]["evidence"]["basis"].startswith("calibrated")


def test_sweep_runs_the_written_stack(team: Path, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from twofold.estimate import evaluate_layouts
    from twofold.hardware.catalog import get_chip, get_system
    from twofold.parallel.layout import TrainingWorkload
    from twofold.search.plan import plan_training
    from twofold.workload import get_model

    spec = {
        "name": "t",
        "top_k": 1,
        "axes": {"models": ["llama-tiny"], "chips": ["a100"], "chip_counts": [2], "seq_lens": [256],
                 "global_batches": [16]},
    }  # fmt: skip
    spec_path = home / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    args = (
        "sweep",
        str(spec_path),
        "--stack",
        "team",
        "--workers",
        "1",
        "--out",
        str(home / "s.db"),
        "--json",
    )
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    (result,) = json.loads(out)["results"]
    assert result["scenario"]["stack"] == "team"
    chip = get_chip("a100")
    plan = plan_training(
        get_model("llama-tiny"),
        get_system(result["scenario"]["system"]),
        2,
        TrainingWorkload(global_batch=16, seq_len=256, precision="bf16"),
        top_k=1,
        chip=chip,
        evaluate=partial(evaluate_layouts, calibration=_by_hand(team)),
    )
    expected = plan.to_dict()["best"]["tokens_per_s_per_chip"]
    assert result["best"]["tokens_per_s_per_chip"] == pytest.approx(expected, rel=1e-9)


def test_from_history_uses_the_steps_measure_stored_on_a_catalog_chip(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reference: the steps written to the results database the way `twofold measure` writes them
    (`measure.db.record_run`, `Kernel.params`); a CPU run has no catalog chip and is reported."""
    from twofold.measure.db import MeasurementRow, record_run
    from twofold.measure.kernels import Kernel, step_models

    model = next(iter(step_models().values()))
    steps = [
        Kernel(kind="train_step", dims={"micro_batch": b, "seq_len": s}, model=model)
        for b, s in ((1, 128), (2, 256), (4, 512), (8, 128))
    ]
    db = home / "results.db"
    for run_id, device in (("gpu-run", "NVIDIA A100-SXM4-80GB"), ("cpu-run", "cpu")):
        record_run(
            db,
            run_id=run_id,
            time="2026-12-01T00:00:00+00:00",
            device=device,
            fingerprint="f",
            versions={},
            measurements=[
                MeasurementRow(name=k.name, params=k.params, value=0.01 * (i + 1), unit="s")
                for i, k in enumerate(steps)
            ],
            profile_yaml=None,
        )
    code, out, err = run_cli(
        capsys, "calibrate", "--from-history", "--db", str(db), "--name", "local", "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["summary"]["runs"] == 4 and {r["chip"] for r in doc["runs"]} == {"a100"}
    assert any("cpu-run" in note and "not a catalog chip" in note for note in doc["history_notes"])
    assert _written(home) == [home / ".twofold" / "stacks" / "local.yaml"]
