"""The workloads a claim is checked on: training steps and serving requests, small to frontier,
dense and MoE, short and long sequences, at several chip counts, capped so a claim takes seconds."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CLAIM_WORKLOADS", "ClaimWorkload"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ClaimWorkload:
    """One workload of the claim set: a training step, or serving requests (`phase`)."""

    label: str
    model: str
    kind: str  # "dense" or "moe"
    seq_len: int
    global_batch: int  # sequences per training step; 0 for inference (the planner searches the batch)
    chips: int
    phase: str = "training"  # or "inference"
    input_tokens: int = 0  # inference: prompt tokens per request
    output_tokens: int = 0  # inference: generated tokens per request


def _tokens_label(tokens: int) -> str:
    """`4096` -> "4k", `256` -> "256": how the labels below write a token count."""
    return f"{tokens // 1024}k" if tokens % 1024 == 0 else str(tokens)


def _train(model: str, kind: str, *, seq_len: int, global_batch: int, chips: int) -> ClaimWorkload:
    return ClaimWorkload(
        label=f"{model} {_tokens_label(seq_len)} x{chips}",
        model=model,
        kind=kind,
        seq_len=seq_len,
        global_batch=global_batch,
        chips=chips,
    )


def _serve(model: str, kind: str, *, input_tokens: int, output_tokens: int, chips: int) -> ClaimWorkload:
    """Serving requests; the sequence is the prompt plus what is generated, and the planner searches
    the batch (so `global_batch` is 0)."""
    return ClaimWorkload(
        label=f"serve {model} {_tokens_label(input_tokens)}/{_tokens_label(output_tokens)} x{chips}",
        model=model,
        kind=kind,
        seq_len=input_tokens + output_tokens,
        global_batch=0,
        chips=chips,
        phase="inference",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )


# 4M-token steps throughout (Llama 2's batch, `compare.DEFAULT_WORKLOAD`); sizes from 8B to 405B
# dense and a 235B MoE, 4k and 32k sequences, one node to 2,048 chips. Capped so a claim is
# checked in seconds; DeepSeek-V3 is left out because its layout space alone takes ~3 s per chip.
CLAIM_WORKLOADS: tuple[ClaimWorkload, ...] = (
    _train("llama3.1-8b", "dense", seq_len=4096, global_batch=1024, chips=8),
    _train("llama3.1-8b", "dense", seq_len=4096, global_batch=1024, chips=64),
    _train("llama3.1-8b", "dense", seq_len=32768, global_batch=128, chips=64),
    _train("llama3.1-70b", "dense", seq_len=4096, global_batch=1024, chips=64),
    _train("llama3.1-70b", "dense", seq_len=4096, global_batch=1024, chips=512),
    _train("llama3.1-70b", "dense", seq_len=32768, global_batch=128, chips=256),
    _train("mixtral-8x7b", "moe", seq_len=4096, global_batch=1024, chips=64),
    _train("qwen3-235b-a22b", "moe", seq_len=4096, global_batch=1024, chips=512),
    _train("llama3.1-405b", "dense", seq_len=8192, global_batch=512, chips=2048),
    _serve("llama3.1-8b", "dense", input_tokens=1024, output_tokens=256, chips=8),
    _serve("llama3.1-70b", "dense", input_tokens=1024, output_tokens=256, chips=8),
    _serve("llama3.1-70b", "dense", input_tokens=8192, output_tokens=1024, chips=8),
    _serve("mixtral-8x7b", "moe", input_tokens=1024, output_tokens=256, chips=8),
)
