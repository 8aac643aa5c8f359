"""The serving simulation against hand derivations, the static estimate and queueing identities.

References: a lone request's TTFT is its prefill (`estimate_inference` at batch 1); a closed loop
of concurrency 1 completes 1 / e2e requests per second; when every request arrives at once with
equal lengths, continuous batching is the static batch (`estimate_inference` at that batch);
Little's law, L = lambda W (Little, Operations Research 9(3), 1961), on the simulated trace; vLLM's
preemption when KV blocks run out (Kwon et al., arXiv 2309.06180, section 4.5).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from twofold.errors import InputError
from twofold.estimate.inference import estimate_inference
from twofold.estimate.inference_types import InferenceLayout, InferenceWorkload
from twofold.hardware.catalog import get_chip, system_for
from twofold.serving import ServingConfig, StepCosts, simulate, simulate_serving
from twofold.workload.registry import get_model

CHIP = get_chip("h100")
SYSTEM = system_for(CHIP)
MODEL = get_model("llama3.1-8b")
LAYOUT = InferenceLayout(tp=1)
PRECISIONS = InferenceWorkload(batch=1, input_tokens=1, output_tokens=1)


def _serve(**kw: object):
    return simulate_serving(MODEL, SYSTEM, LAYOUT, PRECISIONS, ServingConfig(**kw), chip=CHIP)


def _static(batch: int, n_in: int, n_out: int):
    w = InferenceWorkload(batch=batch, input_tokens=n_in, output_tokens=n_out)
    return estimate_inference(MODEL, SYSTEM, LAYOUT, w, chip=CHIP)


def _toy_costs(kv_tokens: int, max_batch: int = 8, scale: float = 1.0) -> StepCosts:
    """Round-number tables: decode 10 ms + 1 ms per sequence + 1 us per key; prefill 1 ms per 100 tokens."""
    batches = np.arange(1.0, max_batch + 1)
    contexts = np.array([2.0, 100000.0])
    decode = 0.010 + 0.001 * batches[:, None] + 1e-6 * contexts[None, :] * batches[:, None]
    lengths = np.array([1.0, 100000.0])
    prefill = 1e-5 * lengths[None, :] * batches[:, None] + 0.0 * batches[:, None]
    return StepCosts(
        decode_batches=batches,
        decode_contexts=contexts,
        decode_s=decode * scale,
        prefill_batches=batches,
        prefill_lengths=lengths,
        prefill_s=prefill,
        kv_capacity_tokens=kv_tokens,
    )


def test_one_request_alone_ttft_is_its_prefill() -> None:
    static, load = _serve(max_batch=8, concurrency=1, num_requests=1, input_tokens=2048, output_tokens=64)
    alone = _static(1, 2048, 64)
    assert load.ttft_ms.p50 == pytest.approx(alone.ttft_s * 1e3, rel=1e-6)
    # Its TPOT is the decode step averaged over the output: the static TPOT at the mean context.
    assert load.tpot_ms.p50 == pytest.approx(alone.tpot_s * 1e3, rel=2e-3)
    assert static.kv_capacity_tokens > 0


def test_closed_loop_of_one_completes_one_over_e2e() -> None:
    _, load = _serve(max_batch=8, concurrency=1, num_requests=20, input_tokens=512, output_tokens=128)
    assert load.requests_per_s == pytest.approx(1.0 / load.e2e_s.mean, rel=1e-9)
    assert load.output_tokens_per_s == pytest.approx(128 / load.e2e_s.mean, rel=1e-9)
    assert load.batch_occupancy == pytest.approx(1 / 8, rel=1e-9)


def test_everyone_at_once_with_equal_lengths_is_the_static_batch() -> None:
    # 32 requests sent together, max batch 32, prefill-first: one prefill of all 32 prompts (the static
    # TTFT), then 127 decode steps of all 32 (the static TPOT at the mean context, to interpolation).
    _, load = _serve(max_batch=32, concurrency=32, num_requests=32, input_tokens=1024, output_tokens=128)
    static = _static(32, 1024, 128)
    assert load.ttft_ms.p50 == pytest.approx(static.ttft_s * 1e3, rel=1e-6)
    assert load.e2e_s.p50 == pytest.approx(static.e2e_latency_s, rel=2e-3)
    assert load.output_tokens_per_s == pytest.approx(static.output_tokens_per_s, rel=2e-3)


def test_littles_law_in_steady_state() -> None:
    rate = 8.0
    _, load = _serve(
        max_batch=64, request_rate=rate, num_requests=3000, input_tokens=512, output_tokens=256, output_std=64
    )
    assert load.requests_per_s == pytest.approx(rate, rel=0.05)
    assert load.mean_in_flight == pytest.approx(rate * load.e2e_s.mean, rel=0.05)
    assert 0.0 < load.batch_occupancy < 1.0


def test_preemption_when_kv_blocks_run_out() -> None:
    # 8 sequences of 100 + 400 tokens need 8 x 32 blocks of 16 at the end; 150 blocks cannot hold them.
    cfg = ServingConfig(max_batch=8, concurrency=8, num_requests=16, input_tokens=100, output_tokens=400)
    tight = simulate(_toy_costs(kv_tokens=150 * 16), cfg)
    roomy = simulate(_toy_costs(kv_tokens=10**6), cfg)
    assert tight.preemptions > 0 and roomy.preemptions == 0
    assert tight.num_requests == 16 and np.isfinite(tight.e2e_s.p99)
    assert tight.e2e_s.mean > roomy.e2e_s.mean  # recomputation and a smaller batch cost time


def test_a_request_larger_than_the_cache_is_refused() -> None:
    cfg = ServingConfig(max_batch=8, concurrency=1, num_requests=1, input_tokens=100, output_tokens=400)
    with pytest.raises(InputError, match="KV blocks"):
        simulate(_toy_costs(kv_tokens=16 * 10), cfg)


def test_chunked_prefill_lets_decodes_run_beside_a_long_prompt() -> None:
    base = dict(max_batch=8, request_rate=5.0, num_requests=200, input_tokens=4000, output_tokens=200)
    first = simulate(_toy_costs(10**6), ServingConfig(**base))
    chunked = simulate(_toy_costs(10**6), ServingConfig(**base, chunked_prefill=512))
    # Prefill-first stalls every running sequence for a whole 4000-token prompt; chunks of 512 do not.
    assert chunked.itl_ms.p99 < first.itl_ms.p99


def test_neuron_decodes_the_compiled_batch() -> None:
    # One sequence alone still pays for the compiled batch of 8 (toy decode: + 1 ms per sequence).
    cfg = ServingConfig(max_batch=8, concurrency=1, num_requests=2, input_tokens=100, output_tokens=50)
    vllm = simulate(_toy_costs(10**6), cfg)
    neuron = simulate(_toy_costs(10**6), replace(cfg, engine="neuron"))
    assert neuron.itl_ms.p50 > vllm.itl_ms.p50 + 6.0


def test_speculative_decoding_gains_tokens_per_step() -> None:
    # k = 3 drafted tokens accepted with a = 0.8: (1 - 0.8^4) / 0.2 = 2.952 tokens per target step.
    cfg = ServingConfig(
        max_batch=8, concurrency=1, num_requests=1, input_tokens=100, output_tokens=300,
        spec_decode="toy-draft", spec_tokens=3, accept_rate=0.8,
    )  # fmt: skip
    assert cfg.tokens_per_verify == pytest.approx((1 - 0.8**4) / 0.2)
    plain = simulate(_toy_costs(10**6), replace(cfg, spec_decode=None, spec_tokens=0, accept_rate=0.0))
    # A draft step at a tenth of the target's: 3 drafts + a 4-row verify per 2.95 tokens beat a step a token.
    spec = simulate(_toy_costs(10**6), cfg, draft=_toy_costs(10**6, scale=0.1))
    assert spec.e2e_s.mean < plain.e2e_s.mean
    # As costly as the target, drafting three tokens for 2.95 does not pay.
    assert simulate(_toy_costs(10**6), cfg, draft=_toy_costs(10**6)).e2e_s.mean > plain.e2e_s.mean


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(max_batch=8), "concurrency"),
        (dict(max_batch=8, concurrency=2, request_rate=1.0), "concurrency"),
        (dict(max_batch=8, concurrency=2, engine="sglang"), "engine"),
        (dict(max_batch=8, concurrency=2, accept_rate=0.5), "spec_tokens"),
        (dict(max_batch=8, concurrency=2, chunked_prefill=4), "chunked_prefill"),
        (dict(max_batch=8, concurrency=2, prefix_cache_hit=1.0), "prefix_cache_hit"),
        (dict(max_batch=0, concurrency=2), "max_batch"),
    ],
)
def test_bad_configs_name_the_field(kw: dict, field: str) -> None:
    with pytest.raises(InputError) as info:
        ServingConfig(**kw)
    assert info.value.field == field


def test_a_chunk_longer_than_any_request_is_priced_at_its_tokens() -> None:
    # By hand: 8 prompts of 1024 tokens, one output token each, budget 8192: one mixed step prefills
    # all 8192 prompt tokens at once, priced as one 8192-token prefill (serving.costs), so every TTFT
    # is estimate_inference's TTFT of an 8192-token prompt, not of the longest request (1026 tokens).
    _, load = _serve(
        max_batch=8, concurrency=8, num_requests=8, input_tokens=1024, output_tokens=1, chunked_prefill=8192
    )
    assert load.ttft_ms.p50 == pytest.approx(_static(1, 8192, 1).ttft_s * 1e3, rel=1e-6)


def test_trtllm_admits_only_requests_it_can_finish() -> None:
    # TensorRT-LLM's default GUARANTEED_NO_EVICT: by hand, a request of 100 + 100 tokens holds
    # ceil(201 / 16) = 13 blocks at its end; a pool of 39 blocks runs exactly 3 at a time (max batch 8),
    # so 6 equal requests go in two waves of 3: occupancy 3/8 throughout and no preemption. vLLM's
    # admission (what the prompt needs now) starts more and preempts when they outgrow the pool.
    base = dict(max_batch=8, concurrency=6, num_requests=6, input_tokens=100, output_tokens=100)
    trt = simulate(_toy_costs(39 * 16), ServingConfig(**base, engine="trtllm"))
    assert trt.preemptions == 0
    assert trt.batch_occupancy == pytest.approx(3 / 8, rel=1e-9)
    vllm = simulate(_toy_costs(39 * 16), ServingConfig(**base, engine="vllm"))
    assert vllm.preemptions > 0


def test_running_batch_never_exceeds_the_engine_cap() -> None:
    # 20 equal requests at once, max batch 4 (vLLM max_num_seqs, TensorRT-LLM max_batch_size), KV for
    # all: five waves of exactly 4, so the time-mean of running sequences is the cap itself.
    for engine in ("vllm", "trtllm"):
        cfg = ServingConfig(
            max_batch=4, concurrency=20, num_requests=20, input_tokens=64, output_tokens=32, engine=engine
        )
        assert simulate(_toy_costs(10**6), cfg).batch_occupancy == pytest.approx(1.0, rel=1e-9)
