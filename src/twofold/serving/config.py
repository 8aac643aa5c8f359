"""What a serving simulation is asked: the load, the request shapes and the engine's scheduler."""

from __future__ import annotations

from dataclasses import dataclass

from twofold.checks import fraction, non_negative, one_of, positive_int
from twofold.errors import InputError

__all__ = ["ENGINES", "ServingConfig"]

# vllm: continuous batching, prefill-first (vLLM V0 default) or chunked prefill mixed into decode
#   steps (Sarathi-Serve; vLLM V1 and TensorRT-LLM with chunked context), paged KV blocks, preemption
#   by recomputation of the newest request when blocks run out (Kwon et al., "PagedAttention",
#   SOSP 2023, arXiv 2309.06180, section 4.5).
# trtllm: TensorRT-LLM in-flight batching: the same steps, admitted by the default capacity policy
#   GUARANTEED_NO_EVICT (`SchedulerConfig.capacity_scheduler_policy`, TensorRT-LLM docs "Scheduler"):
#   a request starts only when KV blocks for its prompt and all its output tokens are free beside
#   those reserved for the running requests, so none is ever evicted (no preemption).
# neuron: NxD Inference: the decode ("token generation") graph compiled for one batch size and
#   sequence buckets; a step runs the whole compiled batch, padded, at the bucket above the longest
#   context; prompts are encoded one at a time ("context encoding" batch 1), padded to their bucket.
# jetstream: JetStream on TPU: one prompt prefilled per step, inserted into a decode slot.
ENGINES: tuple[str, ...] = ("vllm", "trtllm", "neuron", "jetstream")


@dataclass(frozen=True, kw_only=True, slots=True)
class ServingConfig:
    """A load on one served model.

    Exactly one of `concurrency` (closed loop: K requests in flight, a new one sent when one ends,
    as guidellm and LLMPerf drive a server) and `request_rate` (open loop: Poisson arrivals, requests
    per second over the whole system) is given. `max_batch`: the engine's most sequences in a step
    per replica (vLLM `max_num_seqs`). Prompt and output lengths are normal with the given standard
    deviations (0 = fixed), rounded and at least 1, drawn with `seed`. `chunked_prefill`: the token
    budget of a mixed step (None = prefill-first). `prefix_cache_hit`: the fraction of each prompt
    found in the prefix cache (not recomputed). Speculative decoding: `spec_decode` names the draft
    model, which proposes `spec_tokens` tokens that the target accepts each with `accept_rate`.
    `block_tokens`: tokens per KV block (vLLM's default 16).
    """

    max_batch: int
    concurrency: int | None = None
    request_rate: float | None = None
    num_requests: int = 1000
    input_tokens: int = 1024
    output_tokens: int = 256
    input_std: float = 0.0
    output_std: float = 0.0
    chunked_prefill: int | None = None
    prefix_cache_hit: float = 0.0
    spec_decode: str | None = None
    spec_tokens: int = 0
    accept_rate: float = 0.0
    engine: str = "vllm"
    block_tokens: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_batch", "num_requests", "input_tokens", "output_tokens", "block_tokens"):
            positive_int(name, getattr(self, name))
        if (self.concurrency is None) == (self.request_rate is None):
            raise InputError(
                "concurrency", self.concurrency, "give exactly one of --concurrency and --request-rate"
            )
        if self.concurrency is not None:
            positive_int("concurrency", self.concurrency)
        if self.request_rate is not None and not self.request_rate > 0:
            raise InputError("request_rate", self.request_rate, "must be > 0 requests per second")
        for name in ("input_std", "output_std"):
            non_negative(name, getattr(self, name), "must be >= 0")
        if self.chunked_prefill is not None:
            positive_int("chunked_prefill", self.chunked_prefill)
            if self.chunked_prefill <= self.max_batch:
                raise InputError(
                    "chunked_prefill",
                    self.chunked_prefill,
                    f"must exceed max_batch={self.max_batch} (each decoding sequence takes one token)",
                )
        fraction("prefix_cache_hit", self.prefix_cache_hit)
        one_of("engine", self.engine, ENGINES)
        if self.spec_decode is None:
            if self.spec_tokens or self.accept_rate:
                raise InputError("spec_tokens", self.spec_tokens, "needs --spec-decode DRAFT")
        else:
            positive_int("spec_tokens", self.spec_tokens)
            fraction("accept_rate", self.accept_rate)

    @property
    def tokens_per_verify(self) -> float:
        """Expected tokens a sequence gains per target step with speculation: (1 - a^(k+1)) / (1 - a)
        for k drafted tokens each accepted with probability a, the first rejection ending the run
        (Leviathan et al., "Fast Inference from Transformers via Speculative Decoding", ICML 2023,
        arXiv 2211.17192, equation 1). 1 without speculation."""
        if self.spec_decode is None:
            return 1.0
        a, k = self.accept_rate, self.spec_tokens
        return (1.0 - a ** (k + 1)) / (1.0 - a)
