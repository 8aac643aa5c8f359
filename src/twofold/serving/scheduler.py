"""A step-level event loop of one replica: continuous batching as serving engines schedule it.

Each iteration is one engine step (or a run of identical-shape decode steps, advanced at once):
1. requests that have arrived join the waiting queue (FIFO; preempted requests go to its front);
2. prefill-first (vLLM V0, `chunked_prefill=None`): if a waiting request fits (a free slot of
   `max_batch` and KV blocks for its prompt), the step prefills the waiting requests that fit
   (one per step for `neuron` context encoding and `jetstream`), and the running ones wait;
   chunked prefill (Sarathi-Serve): every step decodes all running sequences and spends the rest
   of the token budget on prompt chunks, in admission order;
3. otherwise a decode step for every running sequence. Decode steps are advanced in runs up to the
   next event (a completion, an arrival that could be admitted, a KV block shortage), each step
   priced at its own context, so a run costs one vectorised call;
4. KV blocks (`block_tokens` each; capacity from `estimate.inference`'s `kv_capacity_tokens`) are
   allocated as sequences grow; when a step needs more than are free, the newest running request
   is preempted and recomputed later (vLLM's recompute policy, Kwon et al., arXiv 2309.06180 s4.5).
   TensorRT-LLM (`engine="trtllm"`) admits by GUARANTEED_NO_EVICT instead, its default capacity
   policy: a request starts only if the blocks of every running request at its last token plus
   its own fit (`max_need`), so the running batch is at most blocks / blocks-per-request and
   nothing is preempted.

Neuron (`engine="neuron"`): the decode step runs the compiled batch (`max_batch`) whatever the
number of live sequences, at the sequence bucket (a power of two >= 128) above the longest
context; prompts are encoded one at a time padded to their bucket (NxD Inference's context
encoding and token generation models with bucketing, AWS Neuron docs "NxD Inference features:
bucketing").

Closed loop (`concurrency`): K requests are sent at time 0 and a new one each time one completes.
Open loop (`request_rate`): Poisson arrivals with the seeded generator. The dp replicas each get
1/dp of the load (random routing splits a Poisson stream into Poisson streams; a closed loop's K
into K/dp rounded up); one replica is simulated and the rates are multiplied by dp.
"""

from __future__ import annotations

import math
import time
from collections import deque

import numpy as np

from twofold.errors import InputError
from twofold.serving.config import ServingConfig
from twofold.serving.costs import StepCosts
from twofold.serving.result import LoadResult, Percentiles

__all__ = ["simulate"]

_RUN_CAP = 512  # decode steps advanced at once at most (bounds the vectorised arrays)
_NEURON_MIN_BUCKET = 128


def _lengths(rng: np.random.Generator, mean: int, std: float, n: int) -> np.ndarray:
    if std <= 0:
        return np.full(n, float(mean))
    return np.maximum(1.0, np.rint(rng.normal(mean, std, n)))


def _bucket(x: np.ndarray | float) -> np.ndarray:
    x = np.maximum(np.asarray(x, dtype=float), _NEURON_MIN_BUCKET)
    return 2.0 ** np.ceil(np.log2(x))


class _Replica:
    """The loop's state (arrays over requests) and its steps; `run()` returns the LoadResult."""

    def __init__(self, costs: StepCosts, cfg: ServingConfig, dp: int, draft: StepCosts | None) -> None:
        self.costs, self.cfg, self.dp, self.draft = costs, cfg, dp, draft
        rng = np.random.default_rng(cfg.seed)
        n = self.n = math.ceil(cfg.num_requests / dp)
        self.n_in = _lengths(rng, cfg.input_tokens, cfg.input_std, n)
        self.n_out = _lengths(rng, cfg.output_tokens, cfg.output_std, n)
        self.arrival = np.full(n, np.inf)
        if cfg.request_rate is not None:
            self.rate = cfg.request_rate / dp
            self.arrival = np.cumsum(rng.exponential(1.0 / self.rate, n))
            self.issued = n
        else:
            k = min(math.ceil(cfg.concurrency / dp), n)  # type: ignore[operator]
            self.arrival[:k] = 0.0
            self.issued = k
            self.rate = float("nan")
        self.first = np.full(n, np.nan)
        self.finish = np.full(n, np.nan)
        self.gen = np.zeros(n)
        self.todo = np.zeros(n)  # prompt tokens still to prefill (chunked prefill)
        self.bt = float(cfg.block_tokens)
        self.total_blocks = float(costs.kv_capacity_tokens // cfg.block_tokens)
        # A running request holds ceil((prompt + generated + 1) / block) blocks: its cached tokens and
        # the slot of the next one. `full` is that at its last token, `max_need` its sum over the running.
        self.full = np.ceil((self.n_in + self.n_out + 1.0) / self.bt)
        self.max_need = 0.0
        if self.total_blocks < self.full.max():
            raise InputError(
                "input_tokens",
                int(self.n_in.max()),
                f"with the output, a request needs {int(self.full.max())} KV blocks of {cfg.block_tokens} "
                f"tokens; the replica holds {int(self.total_blocks)}",
            )
        self.t = 0.0
        self.nxt = 0  # next request to join the queue
        self.waiting: deque[int] = deque()
        self.run: list[int] = []
        self.prefilling: list[int] = []
        self.occupancy = 0.0
        self.in_flight = 0.0
        self.preemptions = 0
        self.steps = 0
        self.itl: list[np.ndarray] = []
        self.itl_w: list[float] = []
        self.g = cfg.tokens_per_verify
        self.hit = cfg.prefix_cache_hit
        self.no_evict = cfg.engine == "trtllm"  # GUARANTEED_NO_EVICT admission (module docstring)

    # -- bookkeeping -------------------------------------------------------------------------
    def _advance(self, dt: float, busy: int, steps: int = 1) -> None:
        self.occupancy += busy * dt
        self.in_flight += (len(self.run) + len(self.waiting)) * dt
        self.t += dt
        self.steps += steps

    def _arrivals(self) -> None:
        while self.nxt < self.issued and self.arrival[self.nxt] <= self.t:
            self.in_flight += self.t - self.arrival[self.nxt]  # present since it arrived, mid-step
            self.waiting.append(self.nxt)
            self.nxt += 1

    def _complete(self, ids: list[int]) -> None:
        for r in ids:
            self.finish[r] = self.t
            self.max_need -= self.full[r]
            self.run.remove(r)
            if self.cfg.concurrency is not None and self.issued < self.n:
                self.arrival[self.issued] = self.t
                self.issued += 1

    def _admit(self, limit: int) -> list[int]:
        """Waiting requests that get a slot and KV blocks for their prompt (and generated tokens)."""
        out: list[int] = []
        if not self.waiting or len(self.run) >= self.cfg.max_batch:
            return out
        used = None  # blocks held now, counted only when the bound (every sequence at its end) is short
        # and the engine admits on what is held now (vLLM); GUARANTEED_NO_EVICT stops at the bound.
        while self.waiting and len(out) < limit and len(self.run) + len(out) < self.cfg.max_batch:
            r = self.waiting[0]
            need = math.ceil((self.n_in[r] + self.gen[r] + 1) / self.bt)
            if self.max_need + self.full[r] > self.total_blocks:
                if self.no_evict:
                    break
                if used is None:  # the bound only grows: once short, count exactly from here on
                    held = sum(math.ceil((self.n_in[q] + self.gen[q] + 1) / self.bt) for q in out)
                    used = self._used() + held
                if used + need > self.total_blocks:
                    break
                used += need
            self.waiting.popleft()
            self.max_need += self.full[r]
            self.todo[r] = self.n_in[r] * (1.0 - self.hit) + self.gen[r]
            out.append(r)
        return out

    def _used(self) -> float:
        if not self.run:
            return 0.0
        ids = np.array(self.run)
        return float(np.ceil((self.n_in[ids] + self.gen[ids] + 1.0) / self.bt).sum())

    def _first_token(self, ids: list[int]) -> None:
        for r in ids:
            if np.isnan(self.first[r]):
                self.first[r] = self.t
            self.gen[r] += 1.0
            self.todo[r] = 0.0
        done = [r for r in ids if self.gen[r] >= self.n_out[r]]
        if done:
            self._complete(done)

    # -- steps -------------------------------------------------------------------------------
    def _decode_durations(self, ids: np.ndarray, seq: np.ndarray, s: int) -> np.ndarray:
        c = self.costs
        j = np.arange(s) * self.g
        b = float(len(ids))
        if self.cfg.engine == "neuron":
            return c.decode(float(self.cfg.max_batch), _bucket(seq.max() + j))
        ctx = float(seq.sum()) / b + j
        dur = c.decode(b, ctx)
        if self.draft is not None:
            k = self.cfg.spec_tokens
            extra = float(c.decode(b * (k + 1), 2.0) - c.decode(b, 2.0))  # k more rows per sequence
            dur = dur + extra + k * self.draft.decode(b, ctx)
        return dur

    def _preempt_for(self) -> bool:
        """Preempt the newest running requests until one more decode step fits; False if none ran."""
        while self.run:
            ids = np.array(self.run)
            if np.ceil((self.n_in[ids] + self.gen[ids] + self.g + 1.0) / self.bt).sum() <= self.total_blocks:
                return True
            r = self.run.pop()
            if r in self.prefilling:
                self.prefilling.remove(r)
            self.max_need -= self.full[r]
            self.waiting.appendleft(r)
            self.preemptions += 1
        return False

    def _decode_run(self) -> None:
        short = self.max_need > self.total_blocks  # the running requests may outgrow the blocks
        if short and not self._preempt_for():
            return
        ids = np.array(self.run)
        gen = self.gen[ids]
        n_out = self.n_out[ids]
        s = int(min(math.ceil(float((n_out - gen).min()) / self.g), _RUN_CAP))
        seq = self.n_in[ids] + gen
        if short:  # the most steps whose blocks fit (at least one: _preempt_for made room)
            j = np.arange(1, s + 1) * self.g
            fits = np.ceil((seq[:, None] + j[None, :] + 1.0) / self.bt).sum(axis=0) <= self.total_blocks
            s = max(int(np.argmin(fits)) if not fits.all() else s, 1)
        dur = self._decode_durations(ids, seq, s)
        cum = np.cumsum(dur)
        admissible = len(ids) < self.cfg.max_batch and not self.waiting
        if admissible and self.nxt < self.issued:
            cut = int(np.searchsorted(cum, self.arrival[self.nxt] - self.t)) + 1
            s = max(1, min(s, cut))
        dt = float(cum[s - 1])
        self.itl.append(dur[:s] if self.g == 1.0 else dur[:s] / self.g)
        self.itl_w.append(float(len(ids)) * self.g)
        self._advance(dt, len(ids), s)
        gen = gen + s * self.g
        self.gen[ids] = gen
        finished = gen >= n_out - 1e-9
        if finished.any():
            self._complete([int(r) for r in ids[finished]])

    def _prefill_first(self) -> bool:
        one_at_a_time = self.cfg.engine in ("neuron", "jetstream")
        admit = self._admit(1 if one_at_a_time else self.cfg.max_batch)
        if not admit:
            return False
        mean = float(sum(self.todo[r] for r in admit)) / len(admit)
        if self.cfg.engine == "neuron":
            dt = self.costs.prefill(1.0, float(_bucket(mean)))
        else:
            dt = self.costs.prefill(float(len(admit)), mean)
        self.run.extend(admit)
        self._advance(dt, len(self.run))
        self._first_token(admit)
        return True

    def _chunked(self) -> bool:
        """One mixed step if any prompt tokens are pending (after admitting into the budget)."""
        pending = self.prefilling  # running requests with prompt tokens left, in admission order
        if not pending and not self.waiting:
            return False
        budget = float(self.cfg.chunked_prefill or 0) - (len(self.run) - len(pending))
        if budget > sum(self.todo[r] for r in pending):
            admitted = self._admit(self.cfg.max_batch)
            self.run.extend(admitted)
            pending.extend(admitted)
        if not pending:
            return False
        decoding = [r for r in self.run if self.todo[r] <= 0]
        chunk, finished = 0.0, []
        for r in pending:
            take = min(self.todo[r], budget - chunk)
            if take <= 0:
                break
            chunk += take
            self.todo[r] -= take
            if self.todo[r] <= 0:
                finished.append(r)
        for r in finished:
            pending.remove(r)
        ctx = float(np.mean(self.n_in[decoding] + self.gen[decoding])) if decoding else 2.0
        dt = self.costs.mixed(chunk, float(len(decoding)), ctx)
        self._advance(dt, len(self.run))
        if decoding:
            ids = np.array(decoding)
            self.itl.append(np.array([dt]))
            self.itl_w.append(float(len(ids)))
            self.gen[ids] += 1.0
            done = [int(r) for r in ids[self.gen[ids] >= self.n_out[ids] - 1e-9]]
            if done:
                self._complete(done)
        self._first_token(finished)
        return True

    def run_all(self) -> LoadResult:
        started = time.perf_counter()
        n = self.n
        while True:
            self._arrivals()
            if not self.run and not self.waiting:
                if self.nxt >= self.issued:
                    break
                self.t = max(self.t, float(self.arrival[self.nxt]))
                continue
            if self.cfg.chunked_prefill is not None:
                if self._chunked():
                    continue
            elif self._prefill_first():
                continue
            if self.run:
                self._decode_run()
            else:  # waiting requests but none fits and nothing runs: cannot happen (checked at start)
                raise AssertionError("a waiting request does not fit an empty replica")
        span = float(np.nanmax(self.finish) - self.arrival.min())
        ttft = self.first - self.arrival
        e2e = self.finish - self.arrival
        multi = self.n_out > 1
        tpot = (self.finish[multi] - self.first[multi]) / (self.n_out[multi] - 1.0)
        itl = np.concatenate(self.itl) if self.itl else np.zeros(0)
        itl_w = np.repeat(self.itl_w, [len(a) for a in self.itl]) if self.itl else np.zeros(0)
        return LoadResult(
            ttft_ms=Percentiles.of(ttft, scale=1e3),
            itl_ms=Percentiles.of(itl, itl_w, scale=1e3),
            tpot_ms=Percentiles.of(tpot, scale=1e3),
            e2e_s=Percentiles.of(e2e),
            output_tokens_per_s=self.dp * float(self.n_out.sum()) / span,
            requests_per_s=self.dp * n / span,
            batch_occupancy=self.occupancy / span / self.cfg.max_batch,
            mean_in_flight=self.in_flight / span,
            arrival_rate_per_s=self.rate,
            preemptions=self.preemptions,
            steps=self.steps,
            span_s=span,
            num_requests=n * self.dp,
            replicas=self.dp,
            engine=self.cfg.engine,
            simulation_wall_s=time.perf_counter() - started,
        )


def simulate(
    costs: StepCosts, cfg: ServingConfig, *, dp: int = 1, draft: StepCosts | None = None
) -> LoadResult:
    """Serve `cfg.num_requests` requests (ceil(N/dp) on each of `dp` replicas) with the step costs of
    one replica (module docstring). `draft`: the draft model's step costs when `cfg.spec_decode` is set."""
    return _Replica(costs, cfg, dp, draft).run_all()
