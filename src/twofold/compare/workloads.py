"""The workloads a claim is checked on: training steps and serving requests, small to frontier,
dense and MoE, short and long sequences, at several chip counts, capped so a claim takes seconds."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CLAIM_WORKLOADS", "ClaimWorkload"]


@dataclass(frozen=True, kw_only=True)
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


# 4M-token steps throughout (Llama 2's batch, `compare.DEFAULT_WORKLOAD`); sizes from 8B to 405B
# dense and a 235B MoE, 4k and 32k sequences, one node to 2,048 chips. Capped so a claim is
# checked in seconds; DeepSeek-V3 is left out because its layout space alone takes ~3 s per chip.
CLAIM_WORKLOADS: tuple[ClaimWorkload, ...] = (
    ClaimWorkload(
        label="llama3.1-8b 4k x8", model="llama3.1-8b", kind="dense", seq_len=4096, global_batch=1024, chips=8
    ),
    ClaimWorkload(
        label="llama3.1-8b 4k x64",
        model="llama3.1-8b",
        kind="dense",
        seq_len=4096,
        global_batch=1024,
        chips=64,
    ),
    ClaimWorkload(
        label="llama3.1-8b 32k x64",
        model="llama3.1-8b",
        kind="dense",
        seq_len=32768,
        global_batch=128,
        chips=64,
    ),
    ClaimWorkload(
        label="llama3.1-70b 4k x64",
        model="llama3.1-70b",
        kind="dense",
        seq_len=4096,
        global_batch=1024,
        chips=64,
    ),
    ClaimWorkload(
        label="llama3.1-70b 4k x512",
        model="llama3.1-70b",
        kind="dense",
        seq_len=4096,
        global_batch=1024,
        chips=512,
    ),
    ClaimWorkload(
        label="llama3.1-70b 32k x256",
        model="llama3.1-70b",
        kind="dense",
        seq_len=32768,
        global_batch=128,
        chips=256,
    ),
    ClaimWorkload(
        label="mixtral-8x7b 4k x64",
        model="mixtral-8x7b",
        kind="moe",
        seq_len=4096,
        global_batch=1024,
        chips=64,
    ),
    ClaimWorkload(
        label="qwen3-235b-a22b 4k x512",
        model="qwen3-235b-a22b",
        kind="moe",
        seq_len=4096,
        global_batch=1024,
        chips=512,
    ),
    ClaimWorkload(
        label="llama3.1-405b 8k x2048",
        model="llama3.1-405b",
        kind="dense",
        seq_len=8192,
        global_batch=512,
        chips=2048,
    ),
    ClaimWorkload(
        label="serve llama3.1-8b 1k/256 x8",
        model="llama3.1-8b",
        kind="dense",
        seq_len=1280,
        global_batch=0,
        chips=8,
        phase="inference",
        input_tokens=1024,
        output_tokens=256,
    ),
    ClaimWorkload(
        label="serve llama3.1-70b 1k/256 x8",
        model="llama3.1-70b",
        kind="dense",
        seq_len=1280,
        global_batch=0,
        chips=8,
        phase="inference",
        input_tokens=1024,
        output_tokens=256,
    ),
    ClaimWorkload(
        label="serve llama3.1-70b 8k/1k x8",
        model="llama3.1-70b",
        kind="dense",
        seq_len=9216,
        global_batch=0,
        chips=8,
        phase="inference",
        input_tokens=8192,
        output_tokens=1024,
    ),
    ClaimWorkload(
        label="serve mixtral-8x7b 1k/256 x8",
        model="mixtral-8x7b",
        kind="moe",
        seq_len=1280,
        global_batch=0,
        chips=8,
        phase="inference",
        input_tokens=1024,
        output_tokens=256,
    ),
)
