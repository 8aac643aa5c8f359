"""`twofold estimate`: one training step for a given parallel layout (with --infer: serving)."""

from __future__ import annotations

import typer

from twofold.checks import positive_ints
from twofold.cli._app import app, emit_json
from twofold.cli._options import (
    BASE_PRECISION_OPTION,
    DEFAULT_GLOBAL_BATCH,
    DEFAULT_SEQ_LEN,
    FINETUNE_OPTION,
    GLOBAL_BATCH_HELP,
    HEADROOM_HELP,
    LORA_RANK_OPTION,
    LORA_TARGETS_OPTION,
    SERVING_DEFAULTS,
    STACK_HELP,
    check_stack,
    finetune_of,
    headroom,
    load_cli_model,
    refuse_serving_flags,
    resolve_dp,
)
from twofold.cli._render import render_training_estimate, with_usable_memory

__all__ = ["estimate"]


@app.command("estimate")
def estimate(
    model: str = typer.Option(
        ...,
        "--model",
        help="Catalog model id, config.json, MODEL.onnx (with --input-shape) or torch:module:factory.",
    ),
    chip: str = typer.Option(..., "--chip", help="Chip id or alias (implies its standard system)."),
    system: str | None = typer.Option(None, "--system", help="Another catalog system for the chip."),
    chips: int | None = typer.Option(None, "--chips", help="Number of chips (dp is derived when omitted)."),
    dp: int | None = typer.Option(None, "--dp", help="Data-parallel ranks (default: chips / (tp*pp*cp))."),
    tp: int = typer.Option(1, "--tp", help="Tensor-parallel ranks."),
    pp: int = typer.Option(1, "--pp", help="Pipeline stages."),
    vp: int = typer.Option(1, "--vp", help="Virtual (interleaved) stages per pipeline rank."),
    cp: int = typer.Option(1, "--cp", help="Context-parallel ranks (ring attention)."),
    ep: int = typer.Option(1, "--ep", help="Expert-parallel ranks (MoE)."),
    zero: int | None = typer.Option(
        None, "--zero", help="ZeRO stage 0-3 (3 = FSDP); default 1, or the stack's nearest (maxtext: 3)."
    ),
    shard: int | None = typer.Option(
        None, "--shard", help="With --zero 3: hybrid sharding (HSDP) within groups of N dp ranks."
    ),
    micro_batch: int | None = typer.Option(
        None, "--micro-batch", help="Sequences per micro-batch per dp rank (default 1)."
    ),
    global_batch: int | None = typer.Option(None, "--global-batch", help=GLOBAL_BATCH_HELP),
    seq_len: int = typer.Option(DEFAULT_SEQ_LEN, "--seq-len", help="Tokens per sequence."),
    allow_long_context: bool = typer.Option(
        False, "--allow-long-context", help="Allow --seq-len past the model's max_position_embeddings."
    ),
    recompute: str = typer.Option("none", "--recompute", help="none, selective or full."),
    precision: str = typer.Option("bf16", "--precision", help="fp32, bf16, fp8, mxfp8, fp4."),
    sequence_parallel: bool = typer.Option(
        True, "--sequence-parallel/--no-sequence-parallel", help="Sequence parallelism with tp > 1."
    ),
    infer: bool = typer.Option(False, "--infer", help="Estimate inference instead of training."),
    batch: int | None = typer.Option(
        None, "--batch", help="--infer: sequences served together per replica (default 1)."
    ),
    input_tokens: int | None = typer.Option(
        None, "--input-tokens", help="--infer: prompt tokens per sequence (default 1024)."
    ),
    output_tokens: int | None = typer.Option(
        None, "--output-tokens", help="--infer: generated tokens per sequence (default 256)."
    ),
    weight_precision: str | None = typer.Option(None, "--weight-precision", help="--infer: int8, fp8, ..."),
    kv_precision: str | None = typer.Option(None, "--kv-precision", help="--infer: KV-cache format."),
    pad_heads: bool = typer.Option(False, "--pad-heads", help="--infer: pad heads/FFN to a multiple of tp."),
    max_batch: int | None = typer.Option(None, "--max-batch", help="--infer load: sequences per step."),
    concurrency: int | None = typer.Option(None, "--concurrency", help="--infer: requests in flight."),
    request_rate: float | None = typer.Option(None, "--request-rate", help="--infer: Poisson requests/s."),
    num_requests: int = typer.Option(1000, "--num-requests", help="--infer under load: requests simulated."),
    input_std: float = typer.Option(0.0, "--input-std", help="--infer under load: prompt length std."),
    output_std: float = typer.Option(0.0, "--output-std", help="--infer under load: output length std."),
    chunked_prefill: int | None = typer.Option(None, "--chunked-prefill", help="--infer: step token budget."),
    prefix_cache_hit: float = typer.Option(0.0, "--prefix-cache-hit", help="--infer: prompt share cached."),
    spec_decode: str | None = typer.Option(None, "--spec-decode", help="--infer: draft model id."),
    spec_tokens: int = typer.Option(0, "--spec-tokens", help="--infer: tokens drafted per step."),
    accept_rate: float = typer.Option(0.0, "--accept-rate", help="--infer: per-token acceptance."),
    engine: str = typer.Option("vllm", "--engine", help="--infer: vllm, trtllm, neuron or jetstream."),
    neuron_cores: int | None = typer.Option(
        None, "--neuron-cores", help="--infer on Neuron: tp as logical NeuronCores (AWS docs' TP_DEGREE)."
    ),
    lnc: int | None = typer.Option(None, "--lnc", help="--infer: logical NeuronCore config (trn2: 2)."),
    price: list[str] = typer.Option(  # noqa: B008 - typer's repeatable option
        [], "--price", help="--infer: USD per chip-hour, CHIP=USD; overrides the catalog."
    ),
    price_kind: str = typer.Option(
        "on-demand", "--price-kind", help="--infer: on-demand, capacity-block, spot, committed-1y or -3y."
    ),
    min_quality: str | None = typer.Option(
        None, "--min-quality", help="--infer: only catalog prices of grade A, B or C or better."
    ),
    input_shape: list[str] = typer.Option(  # noqa: B008 - typer's repeatable option
        [], "--input-shape", help="--model X.onnx: shape of a dynamic input, NAME=8x3x224x224 (repeatable)."
    ),
    stack: str = typer.Option("auto", "--stack", help=STACK_HELP),
    mem_headroom: float | None = typer.Option(None, "--mem-headroom", help=HEADROOM_HELP),
    finetune: str = FINETUNE_OPTION,
    lora_rank: int = LORA_RANK_OPTION,
    lora_targets: str = LORA_TARGETS_OPTION,
    base_precision: str | None = BASE_PRECISION_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Estimate one training step: step time, tokens/s/chip, MFU, memory per chip, and where the time goes."""
    # lazy: start-up time (the estimator, catalogs and models load only once a verb runs)
    from twofold.estimate.training import estimate_training
    from twofold.hardware.catalog import get_chip, system_for
    from twofold.parallel.layout import Layout, TrainingWorkload

    if infer:  # serving: twofold.estimate.inference (training-only flags do not apply)
        from twofold.cli._inference import estimate_infer, refuse_training_flags  # lazy: start-up time
        from twofold.economics.prices import check_min_quality, parse_chip_values  # lazy: start-up time

        refuse_training_flags(
            seq_len=(seq_len, DEFAULT_SEQ_LEN), global_batch=(global_batch, None), vp=(vp, 1),
            cp=(cp, 1), zero=(zero, None), micro_batch=(micro_batch, None), recompute=(recompute, "none"),
            finetune=(finetune, "full"),
        )  # fmt: skip
        batch = SERVING_DEFAULTS["batch"] if batch is None else batch
        input_tokens = SERVING_DEFAULTS["input_tokens"] if input_tokens is None else input_tokens
        output_tokens = SERVING_DEFAULTS["output_tokens"] if output_tokens is None else output_tokens
        return estimate_infer(
            model=model, chip=chip, system=system, chips=chips, dp=dp, tp=tp, pp=pp, ep=ep, batch=batch,
            input_tokens=input_tokens, output_tokens=output_tokens, precision=precision, as_json=as_json,
            weight_precision=weight_precision, kv_precision=kv_precision, pad_heads=pad_heads,
            mem_headroom=headroom(mem_headroom),
            load=dict(max_batch=max_batch, concurrency=concurrency, request_rate=request_rate,
                      num_requests=num_requests, input_std=input_std, output_std=output_std,
                      chunked_prefill=chunked_prefill, prefix_cache_hit=prefix_cache_hit,
                      spec_decode=spec_decode, spec_tokens=spec_tokens, accept_rate=accept_rate,
                      engine=engine),
            neuron_cores=neuron_cores, lnc=lnc, price_kind=price_kind,
            prices=parse_chip_values(price, "price", "USD per chip-hour"),
            min_quality=check_min_quality(min_quality),
        )  # fmt: skip
    refuse_serving_flags(
        batch=batch, input_tokens=input_tokens, output_tokens=output_tokens,
        weight_precision=weight_precision, kv_precision=kv_precision, pad_heads=pad_heads or None,
        max_batch=max_batch, concurrency=concurrency, request_rate=request_rate,
        num_requests=None if num_requests == 1000 else num_requests, input_std=input_std or None,
        output_std=output_std or None, chunked_prefill=chunked_prefill,
        prefix_cache_hit=prefix_cache_hit or None, spec_decode=spec_decode, spec_tokens=spec_tokens or None,
        accept_rate=accept_rate or None, engine=None if engine == "vllm" else engine,
        neuron_cores=neuron_cores, lnc=lnc, price=",".join(price) or None,
        price_kind=None if price_kind == "on-demand" else price_kind, min_quality=min_quality,
    )  # fmt: skip
    the_headroom = headroom(mem_headroom)
    the_finetune = finetune_of(finetune, lora_rank, lora_targets, base_precision)
    positive_ints(global_batch=global_batch, seq_len=seq_len, micro_batch=micro_batch)
    the_model, the_seq_len = load_cli_model(model, input_shape, precision, seq_len)
    # --micro-batch defaults to 1, or to the batch an imported model was recorded with.
    micro_batch = (the_model.fixed_micro_batch or 1) if micro_batch is None else micro_batch
    the_dp, check_chips = resolve_dp(chips, dp, tp, pp, cp)
    if global_batch is None:  # one default for every verb, never derived from --micro-batch
        global_batch = DEFAULT_GLOBAL_BATCH
    the_chip = get_chip(chip)
    the_stack = check_stack(stack)
    if zero is None:  # the stack's default stage (`cost.stack.Stack.default_zero`)
        from twofold.cost.calibration import shipped_calibration  # lazy: start-up time

        zero = shipped_calibration().with_stack(the_stack).default_zero_on(the_chip)
    layout = Layout(
        dp=the_dp,
        tp=tp,
        pp=pp,
        vp=vp,
        cp=cp,
        ep=ep,
        zero=zero,
        micro_batch=micro_batch,
        recompute=recompute,  # type: ignore[arg-type]  # a flag string; check_layout refuses other values
        sequence_parallel=sequence_parallel,
        shard=shard,
    )
    result = estimate_training(
        the_model,
        system_for(the_chip, system),
        layout,
        TrainingWorkload(
            global_batch=global_batch, seq_len=the_seq_len, precision=precision, finetune=the_finetune
        ),
        chip=the_chip,
        chips=check_chips,
        stack=the_stack,
        mem_headroom=the_headroom,
        allow_long_context=allow_long_context,
    )
    d = with_usable_memory(result.to_dict(), the_headroom)
    if as_json:
        emit_json(d)
    else:
        render_training_estimate(d)
