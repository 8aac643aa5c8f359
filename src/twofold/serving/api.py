"""`simulate_serving`: a load on one served model, from the catalog objects to the LoadResult."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from twofold.cost.calibration import TrainingCalibration
from twofold.cost.profile import CalibrationProfile
from twofold.errors import InputError
from twofold.estimate.inference import estimate_inference
from twofold.estimate.inference_result import InferenceEstimate
from twofold.estimate.inference_types import InferenceLayout, InferenceWorkload
from twofold.hardware.types import Chip, System
from twofold.parallel.memory import DEFAULT_MEM_HEADROOM
from twofold.serving.config import ServingConfig
from twofold.serving.costs import step_costs
from twofold.serving.result import LoadResult
from twofold.serving.scheduler import simulate
from twofold.workload.model import ModelConfig

__all__ = ["simulate_serving"]


def simulate_serving(
    model: ModelConfig,
    system: System,
    layout: InferenceLayout,
    workload: InferenceWorkload,
    config: ServingConfig,
    *,
    chip: Chip | None = None,
    profile: CalibrationProfile | None = None,
    calibration: TrainingCalibration | None = None,
    mem_headroom: float = DEFAULT_MEM_HEADROOM,
    draft_model: ModelConfig | None = None,
) -> tuple[InferenceEstimate, LoadResult]:
    """The static estimate of `max_batch` sequences of the mean request and the simulated load.

    The KV block pool is the KV capacity beside the weights and one step's activations: `max_batch`
    prompts prefill-first, the chunk's prompts (chunk / prompt tokens) with chunked prefill.
    `workload` gives the precisions; the request shapes come from `config`. `draft_model`: the
    speculative draft (required when `config.spec_decode`)."""
    ep = layout.ep
    batch = max(ep, config.max_batch - config.max_batch % ep)
    static_workload = replace(
        workload, batch=batch, input_tokens=config.input_tokens, output_tokens=config.output_tokens
    )
    kw: dict[str, Any] = dict(chip=chip, profile=profile, calibration=calibration)
    static = estimate_inference(model, system, layout, static_workload, mem_headroom=mem_headroom, **kw)
    kv_tokens = static.kv_capacity_tokens
    if config.chunked_prefill is not None:  # a step's activations are those of its token budget
        per_step = math.ceil(config.chunked_prefill / config.input_tokens)
        sizing = max(ep, min(batch, per_step - per_step % ep))
        sized = replace(static_workload, batch=sizing)
        kv_tokens = estimate_inference(
            model, system, layout, sized, mem_headroom=mem_headroom, **kw
        ).kv_capacity_tokens
    if kv_tokens <= 0:
        raise InputError(
            "max_batch", config.max_batch, f"leaves no memory for the KV cache on {static.chip} ({layout})"
        )
    spread_in = math.ceil(4 * config.input_std)
    spread_out = math.ceil(4 * config.output_std)
    max_context = config.input_tokens + config.output_tokens + spread_in + spread_out + 2
    exact = (static.decode_context_len, config.input_tokens + 1)
    tables: dict[str, Any] = dict(
        max_batch=batch,
        max_context=max_context,
        # A mixed step prefills up to the whole token budget: the prefill table must reach it (the
        # tables clamp past their ends, so a shorter one would price every chunk as the longest prompt).
        max_prompt=max(max_context, config.chunked_prefill or 0),
        exact_contexts=exact,
        exact_prompts=(config.input_tokens,),
        kv_capacity_tokens=kv_tokens,
        **kw,
    )
    costs = step_costs(model, system, layout, static_workload, **tables)
    draft = None
    if config.spec_decode is not None:
        if draft_model is None:
            raise InputError("spec_decode", config.spec_decode, "names no draft model")
        draft = step_costs(draft_model, system, layout, static_workload, **tables)
    return static, simulate(costs, replace(config, max_batch=batch), dp=layout.dp, draft=draft)
