"""A sequence length past the model's trained context is refused, naming both, unless allowed.

Reference: the catalog config (Llama 3.1's config.json: max_position_embeddings = 131072) and the
rule of `parallel.rules.check_context_length`; before it, `--seq-len 1000000000` on llama3.1-70b
printed 0 tokens/s and 21,991,113 GiB per chip.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import run_cli  # noqa: E402
from twofold.errors import InputError  # noqa: E402
from twofold.estimate import estimate_training  # noqa: E402
from twofold.hardware.catalog import get_chip, system_for  # noqa: E402
from twofold.parallel.layout import Layout, TrainingWorkload  # noqa: E402
from twofold.parallel.rules import check_context_length  # noqa: E402
from twofold.search.plan import plan_training  # noqa: E402
from twofold.workload.registry import get_model  # noqa: E402

LLAMA31_CONTEXT = 131072  # config.json of meta-llama/Llama-3.1-70B


def test_the_limit_is_the_models_own() -> None:
    model = get_model("llama3.1-70b")
    assert model.max_position_embeddings == LLAMA31_CONTEXT
    check_context_length(model, LLAMA31_CONTEXT)  # the trained context itself is fine
    with pytest.raises(
        InputError, match=f"seq_len={LLAMA31_CONTEXT + 1}: exceeds max_position_embeddings=131072"
    ):
        check_context_length(model, LLAMA31_CONTEXT + 1)
    check_context_length(model, 10**9, allow_long_context=True)


def test_estimate_and_plan_refuse_it_and_take_the_override() -> None:
    model = get_model("llama3.1-8b")
    system = system_for(get_chip("h100"))
    long = TrainingWorkload(global_batch=8, seq_len=2 * LLAMA31_CONTEXT)
    with pytest.raises(InputError, match="max_position_embeddings"):
        estimate_training(model, system, Layout(dp=8), long)
    with pytest.raises(InputError, match="max_position_embeddings"):
        plan_training(model, system, 8, long)
    est = estimate_training(model, system, Layout(dp=8, recompute="full"), long, allow_long_context=True)
    assert est.tokens_per_s_per_chip > 0


@pytest.mark.parametrize("verb", ["estimate", "plan"])
def test_cli_exits_2_naming_both(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = (verb, "--model", "llama3.1-70b", "--chip", "h100", "--chips", "64", "--seq-len", "1000000000")
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and out == ""
    assert err.strip() == (
        "error: seq_len=1000000000: exceeds max_position_embeddings=131072 of llama3.1-70b; "
        "--allow-long-context (allow_long_context=True) prices a context-extended model anyway"
    )
