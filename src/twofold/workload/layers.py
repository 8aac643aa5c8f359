"""Forward operators of one transformer layer (and the op constructors `graph` shares).

Conventions (derivations in docs/operators.md):

- A GEMM `(m x k) @ (k x n)` costs `2*m*n*k` FLOPs (a multiply-add is 2), as PyTorch's
  `FlopCounterMode` counts `mm`/`addmm`/`bmm` (bias adds are not counted). It reads its
  activation operand (`m*k` elements) and its weight (`k*n`, plus an `n` bias) once and writes its
  result (`m*n`) once: activations in the activation precision, weights in the weight precision.
- Attention is one fused FlashAttention-style kernel (Dao et al. 2022, "FlashAttention: Fast and
  Memory-Efficient Exact Attention with IO-Awareness", arXiv 2205.14135): it reads Q, K, V and
  writes O, and never moves the `q_len x kv_len` score matrix through HBM. Its `flops` are what
  `FlopCounterMode` counts for `scaled_dot_product_attention` (`sdpa_flop_count`):
  `2*b*h*q*kv*d_qk + 2*b*h*q*kv*d_v`, the full score matrix even when causal; `useful_flops`
  counts only the (query, key) pairs the causal mask or sliding window keeps, which is what a
  kernel that skips masked tiles executes (about half for causal self-attention).
- Norms, activations, rope, residual adds, routing: memory-bound elementwise work with a nominal
  FLOP count per element (`NORM_FLOPS`, `ACTIVATION_FLOPS`; FlopCounterMode counts none of them).
- Sharding: `tp` divides attention heads, the MLP and expert widths (Megatron-LM column/row
  parallel linears, Shoeybi et al. 2019, arXiv 1909.08053); key/value heads are divided when
  `tp <= kv_heads` and replicated (one per rank) otherwise, as Megatron-LM and vLLM do. With
  sequence parallelism (Korthikanti et al. 2022, arXiv 2205.05198) token-wise ops (norms,
  residuals, router) see `tokens/tp`. The MLA down projections are replicated across `tp`.
  `cp` (context parallel) divides the query positions of every token-wise op. Ring attention
  (`context_parallel="ring"`): each rank's queries attend to the full key length, in `cp` ring
  steps. All-to-all (DeepSpeed-Ulysses, `"all-to-all"`): an all-to-all before attention gives
  each rank the full sequence for `heads/cp` of its heads (and `kv_heads/cp`, at least one
  replicated key/value head), so one attention kernel runs on the full length with fewer heads:
  the same FLOPs per chip, a longer kernel. `ep` places `num_experts/ep` experts on a
  chip; expert parallelism spans data-parallel ranks (Megatron-Core), so a chip's experts receive
  `tokens*top_k` routed tokens in total, `tokens*top_k*ep/num_experts` each when balanced.
  Expert tensor parallelism `etp` (Megatron-Core `--expert-tensor-parallel-size`, default tp)
  splits the expert widths by etp instead of tp; with etp < tp the experts see `tokens*etp/tp`
  of the TP group's tokens at full width (same FLOPs per chip, other GEMM shapes).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from twofold.workload.model import ModelConfig
from twofold.workload.ops import EXPERT_GEMM_PREFIX, Op, OpKind

__all__ = [
    "ACTIVATION_FLOPS",
    "CP_ALGORITHMS",
    "NORM_FLOPS",
    "Plan",
    "attention_layer_ops",
    "ffn_layer_ops",
    "gemm",
    "touched_experts",
]

# Nominal FLOPs per element; these ops are memory-bound, so the figure only matters for roofline
# completeness. rmsnorm: square, accumulate, scale by 1/rms, scale by weight. layernorm: mean
# (accumulate), subtract, square+accumulate, normalize, scale, shift.
NORM_FLOPS = {"rmsnorm": 4, "layernorm": 7}
# silu: exp, add, divide, multiply; gelu (tanh form): about 8; relu: 1. Gated MLPs add 1 (the product).
ACTIVATION_FLOPS = {"silu": 4, "swish": 4, "gelu": 8, "gelu_new": 8, "gelu_pytorch_tanh": 8, "relu": 1}
_DEFAULT_ACTIVATION_FLOPS = 8
ROPE_FLOPS = 3  # x*cos + rotate(x)*sin
# How context parallelism runs attention (module docstring): ring attention (Megatron-Core CP,
# torchtitan) or the head-sharding all-to-all of DeepSpeed-Ulysses. A stack names one
# (`cost.stack`, mechanism `context_parallel`).
CP_ALGORITHMS: tuple[str, ...] = ("ring", "all-to-all")

# Unfused forms (`Op.unfused_traffic`, `Op.unfused_kernels`): what the reference Python modules of
# Hugging Face-style models run in eager PyTorch, per element, against the one fused kernel
# (read the input once, write the output once) the ops above describe. Derivations, forward, in
# bytes per element with 16-bit activations (fp32 = 4 bytes):
# - RMSNorm (transformers `LlamaRMSNorm.forward`): `.to(float32)` reads 2 writes 4; `.pow(2)` reads
#   4 writes 4; `.mean(-1)` reads 4; `x * rsqrt(var + eps)` reads 4 writes 4; `.to(bf16)` reads 4
#   writes 2; `weight * x` reads 2 writes 2: 36 bytes in 6 element-wide kernels (the rsqrt of the
#   per-row variance is negligible), against 2 + 2 fused: 9x. LayerNorm is one native kernel in
#   PyTorch (`torch.nn.LayerNorm`), so it is not unfused.
# - Rotary embedding (transformers `apply_rotary_pos_emb`, `q * cos + rotate_half(q) * sin` with
#   `rotate_half = cat(-x2, x1)`): neg reads and writes half, cat reads and writes all, the two
#   products each read and write all, the sum reads two and writes one: 10 element passes in 5
#   kernels per tensor, against 2 fused: 5x (cos/sin are per position, shared by every head).
# - Gated MLP activation (`act(gate) * up`): the activation reads and writes, the product reads two
#   and writes one: 5 passes in 2 kernels against 3 fused (5/3). An ungated activation is one kernel.
# Backward ops (`workload.backward`) take the same factors: autograd replays each primitive's
# backward, about the same passes again.
UNFUSED_RMSNORM = (9.0, 6)
UNFUSED_ROPE = (5.0, 5)
UNFUSED_GATED_ACTIVATION = (5.0 / 3.0, 2)


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """The shape of one forward pass on one chip (internal to `workload`)."""

    model: ModelConfig
    batch: int
    q_len: int  # query positions per sequence on this chip (seq_len / cp)
    kv_len: int  # keys each sequence's queries can see (full length; context in decode)
    cp: int = 1
    tp: int = 1
    ep: int = 1
    etp: int | None = None  # expert tensor parallelism (None: tp)
    dtype: str = "bf16"
    act_bytes: float = 2.0
    weight_bytes: float = 2.0
    # Low-precision training recipes run only the GEMMs in `gemm_dtype` (None: `dtype`), reading
    # activations cast to `gemm_act_bytes` per element (see `graph.GEMM_ONLY_PRECISIONS`).
    gemm_dtype: str | None = None
    gemm_act_bytes: float | None = None
    sequence_parallel: bool = False
    kv_cache_bytes: float | None = None  # inference: element bytes of the KV cache
    decode: bool = False
    expert_tokens: tuple[int, ...] | None = None  # tokens routed to each local expert
    context_parallel: str = "ring"  # one of CP_ALGORITHMS: how attention runs when cp > 1

    @property
    def tokens(self) -> int:
        return self.batch * self.q_len

    @property
    def token_wise(self) -> int:
        """Tokens of a token-wise op on this chip (divided by tp under sequence parallelism)."""
        return self.tokens // self.tp if self.sequence_parallel else self.tokens

    @property
    def heads(self) -> int:
        return self.model.num_attention_heads // self.tp

    @property
    def expert_tp(self) -> int:
        return self.tp if self.etp is None else self.etp

    @property
    def routed_tokens(self) -> int:
        """Tokens whose routed copies this chip's experts serve: the TP group's tokens when the
        experts are split over all of tp (etp = tp), 1/(tp/etp) of them otherwise (the dispatcher
        keeps tokens sequence-sharded over the ranks outside the expert TP group)."""
        return self.tokens * self.expert_tp // self.tp

    @property
    def kv_heads(self) -> int:
        return max(self.model.num_kv_heads // self.tp, 1)


def gemm(
    name: str, plan: Plan, *, m: int, n: int, k: int, count: int, batch: int = 1, bias: bool = False
) -> Op:
    """`[batch x] (m x k) @ (k x n)` with a weight operand: 2*batch*m*n*k FLOPs. Inputs in the
    plan's GEMM precision, output in its activation precision (an FP8 GEMM writes BF16)."""
    dims = {"m": m, "n": n, "k": k} | ({"batch": batch} if batch > 1 else {})
    act_in = plan.act_bytes if plan.gemm_act_bytes is None else plan.gemm_act_bytes
    read = batch * (m * k * act_in + k * n * plan.weight_bytes) + (n * plan.weight_bytes if bias else 0)
    return Op(
        name=name,
        kind="gemm",
        phase="forward",
        flops=2.0 * batch * m * n * k,
        bytes_read=read,
        bytes_written=batch * m * n * plan.act_bytes,
        count=count,
        dims=dims,
        dtype=plan.gemm_dtype or plan.dtype,
    )


def pointwise(
    name: str,
    plan: Plan,
    *,
    kind: OpKind,
    elements: int,
    flops_per_element: float,
    reads: float,
    writes: float,
    count: int = 1,
    extra_read_bytes: float = 0.0,
    unfused: tuple[float, int] = (1.0, 1),
) -> Op:
    """A memory-bound op over `elements`: `reads`/`writes` tensors of that size in activation bytes.
    `unfused`: (traffic multiple, kernels) of its unfused eager form (`Op.unfused_traffic`)."""
    return Op(
        name=name,
        kind=kind,
        phase="forward",
        flops=float(flops_per_element * elements),
        bytes_read=reads * elements * plan.act_bytes + extra_read_bytes,
        bytes_written=writes * elements * plan.act_bytes,
        count=count,
        dims={"elements": elements},
        dtype=plan.dtype,
        unfused_traffic=unfused[0],
        unfused_kernels=unfused[1],
    )


def norm(name: str, plan: Plan, *, tokens: int, width: int, count: int, kind: str | None = None) -> Op:
    """RMSNorm/LayerNorm over `tokens x width`: reads input and weight(s), writes output."""
    norm_kind = kind or plan.model.norm
    weights = width * (2 if norm_kind == "layernorm" else 1)
    return pointwise(
        name,
        plan,
        kind="norm",
        elements=tokens * width,
        flops_per_element=NORM_FLOPS[norm_kind],
        reads=1,
        writes=1,
        count=count,
        extra_read_bytes=weights * plan.weight_bytes,
        unfused=UNFUSED_RMSNORM if norm_kind == "rmsnorm" else (1.0, 1),
    )


def activation(name: str, plan: Plan, *, elements: int, count: int) -> Op:
    """MLP activation over `elements` outputs; gated: act(gate) * up reads two inputs."""
    per = ACTIVATION_FLOPS.get(plan.model.activation, _DEFAULT_ACTIVATION_FLOPS)
    gated = plan.model.mlp_gated
    return pointwise(
        name,
        plan,
        kind="elementwise",
        elements=elements,
        flops_per_element=per + (1 if gated else 0),
        reads=2 if gated else 1,
        writes=1,
        count=count,
        unfused=UNFUSED_GATED_ACTIVATION if gated else (1.0, 1),
    )


def residual(name: str, plan: Plan, *, count: int) -> Op:
    return pointwise(
        name,
        plan,
        kind="elementwise",
        elements=plan.token_wise * plan.model.hidden_size,
        flops_per_element=1,
        reads=2,
        writes=1,
        count=count,
    )


def visible_pairs(q_len: int, kv_len: int, *, causal: bool, window: int | None) -> int:
    """(query, key) pairs attention keeps, for `q_len` queries at the end of `kv_len` keys.

    Query i (0-based) sits at position `kv_len - q_len + i` and, when causal, sees `P + i + 1` keys
    (`P = kv_len - q_len`), at most `window`: the sum of min(v, window) for v in P+1 .. P+q_len.
    """
    if not causal:
        return q_len * (kv_len if window is None else min(kv_len, window))
    first, last = kv_len - q_len + 1, kv_len
    if window is None or window >= last:
        return (first + last) * q_len // 2
    if window < first:
        return q_len * window
    return (first + window) * (window - first + 1) // 2 + (last - window) * window


def attention_core(
    name: str,
    plan: Plan,
    *,
    heads: int,
    kv_heads: int,
    d_qk: int,
    d_v: int,
    kv_len: int,
    window: int | None,
    count: int,
    shared_kv: bool = False,
) -> Op:
    """FlashAttention forward: FLOPs as FlopCounterMode's sdpa formula, IO = Q, K, V in, O out.

    `shared_kv`: K and V are one cached tensor (absorbed MLA decode), read once. In inference the
    keys come from the KV cache in `plan.kv_cache_bytes`. With context parallelism the useful
    pairs are those of the whole sequence divided by `cp` (load-balanced chunks, Megatron-LM).
    """
    b, q = plan.batch, plan.q_len
    causal = plan.model.causal
    pairs = visible_pairs(q * plan.cp, kv_len, causal=causal, window=window) / plan.cp
    per_pair = 2.0 * b * heads * (d_qk + d_v)
    kv_bytes = plan.kv_cache_bytes if plan.kv_cache_bytes is not None else plan.act_bytes
    kv_elements = b * kv_len * kv_heads * (d_qk if shared_kv else d_qk + d_v)
    dims = {
        "batch": b,
        "heads": heads,
        "kv_heads": kv_heads,
        "q_len": q,
        "kv_len": kv_len,
        "head_dim": d_qk,
        "v_head_dim": d_v,
    }
    return Op(
        name=name,
        kind="attention",
        phase="forward",
        flops=per_pair * q * kv_len,
        useful_flops=per_pair * pairs,
        bytes_read=b * q * heads * d_qk * plan.act_bytes + kv_elements * kv_bytes,
        bytes_written=b * q * heads * d_v * plan.act_bytes,
        count=count,
        dims=dims,
        dtype=plan.dtype,
        causal=causal,
    )


def _core_ops(plan: Plan, *, heads: int, kv_heads: int, d_qk: int, d_v: int, shared_kv: bool) -> list[Op]:
    """Attention core per layer type: full-attention layers and sliding-window layers apart."""
    model = plan.model
    window = model.sliding_window
    sliding = model.sliding_window_layers if window is not None else 0
    kw: dict[str, Any] = {
        "heads": heads,
        "kv_heads": kv_heads,
        "d_qk": d_qk,
        "d_v": d_v,
        "shared_kv": shared_kv,
    }
    if plan.cp > 1 and not plan.decode and plan.context_parallel == "all-to-all":
        # After the all-to-all each rank holds the whole sequence for heads/cp query heads and
        # kv_heads/cp key/value heads (one replicated head when cp exceeds them), one kernel each.
        cp = plan.cp
        plan = replace(plan, q_len=plan.q_len * cp, cp=1)
        kw["heads"], kw["kv_heads"] = heads // cp, max(kv_heads // cp, 1)
    ops = []
    if model.num_layers - sliding:
        ops.append(
            attention_core(
                "layer.attn.core",
                plan,
                kv_len=plan.kv_len,
                window=None,
                count=model.num_layers - sliding,
                **kw,
            )
        )
    if sliding:
        # A decode step reads a rolling cache of the window; training/prefill mask a full-length one.
        assert window is not None  # sliding > 0 only with a window
        kv = min(plan.kv_len, window) if plan.decode else plan.kv_len
        ops.append(
            attention_core("layer.attn.core.sliding", plan, kv_len=kv, window=window, count=sliding, **kw)
        )
    if plan.cp > 1 and not plan.decode:
        ops = _ring_steps(ops, plan, d_v=d_v, heads=heads)
    return ops


def _ring_steps(ops: list[Op], plan: Plan, *, d_v: int, heads: int) -> list[Op]:
    """Context parallelism runs each layer's attention as `cp` ring steps (Liu et al., "Ring
    Attention with Blockwise Transformers", 2023; Megatron-Core / Transformer Engine
    `AttnFuncWithCPAndKVP2P`): one FlashAttention kernel per step on the local queries and the K/V
    chunk that arrived (the same FLOPs in total; Q re-read every step, K/V once), each writing a
    partial output and its log-sum-exp in fp32, then one kernel that rescales and sums the partial
    outputs into the layer's output. Backward: one attention-backward kernel per step
    (`workload.backward`) and the merge's backward."""
    cp = plan.cp
    out: list[Op] = []
    merged = 0
    for op in ops:
        q_bytes = plan.batch * plan.q_len * heads * op.dims["head_dim"] * plan.act_bytes
        kv_bytes = op.bytes_read - q_bytes
        partial = plan.batch * plan.q_len * heads * (d_v + 1) * 4.0  # fp32 output + lse per step
        out.append(
            replace(
                op,
                flops=op.flops / cp,
                useful_flops=None if op.useful_flops is None else op.useful_flops / cp,
                bytes_read=q_bytes + kv_bytes / cp,
                bytes_written=partial,
                count=op.count * cp,
                dims={**op.dims, "kv_len": op.dims["kv_len"] // cp},
            )
        )
        merged += op.count
    partials = cp * plan.batch * plan.q_len * heads * (d_v + 1) * 4.0  # every step's output + lse
    out.append(
        pointwise(
            "layer.attn.cp_merge",
            plan,
            kind="elementwise",
            elements=plan.batch * plan.q_len * heads * d_v,
            flops_per_element=3 * cp,
            reads=0,
            writes=1,
            count=merged,
            extra_read_bytes=partials,
        )
    )
    return out


def _kv_cache_write(plan: Plan, *, elements_per_token: int, count: int) -> Op:
    """Appends this step's keys/values to the cache, cast to the cache precision."""
    elements = plan.tokens * elements_per_token
    return Op(
        name="layer.attn.kv_cache_write",
        kind="elementwise",
        phase="forward",
        flops=0.0,
        bytes_read=elements * plan.act_bytes,
        bytes_written=elements * (plan.kv_cache_bytes or plan.act_bytes),
        count=count,
        dims={"elements": elements},
        dtype=plan.dtype,
    )


def attention_layer_ops(plan: Plan) -> list[Op]:
    """Norm, projections, rope, (KV cache write), core, output projection, residual; every layer."""
    model, t, count = plan.model, plan.tokens, plan.model.num_layers
    h, heads = model.hidden_size, plan.heads
    ops = [norm("layer.attn.norm", plan, tokens=plan.token_wise, width=h, count=count)]
    if model.is_mla:
        ops += _mla_ops(plan)
    else:
        d, kv_heads = model.head_dim, plan.kv_heads
        ops.append(
            gemm(
                "layer.attn.qkv",
                plan,
                m=t,
                k=h,
                n=(heads + 2 * kv_heads) * d,
                count=count,
                bias=model.qkv_bias,
            )
        )
        if model.qk_norm:
            ops.append(
                norm(
                    "layer.attn.qk_norm",
                    plan,
                    tokens=t * (heads + kv_heads),
                    width=d,
                    count=count,
                    kind="rmsnorm",
                )
            )
        if model.position_embedding == "rope":
            ops.append(
                pointwise(
                    "layer.attn.rope",
                    plan,
                    kind="elementwise",
                    elements=t * (heads + kv_heads) * d,
                    flops_per_element=ROPE_FLOPS,
                    reads=1,
                    writes=1,
                    count=count,
                    # q and k: 5 kernels each
                    unfused=(UNFUSED_ROPE[0], 2 * UNFUSED_ROPE[1]),
                )
            )
        if plan.kv_cache_bytes is not None:
            ops.append(_kv_cache_write(plan, elements_per_token=2 * kv_heads * d, count=count))
        ops += _core_ops(plan, heads=heads, kv_heads=kv_heads, d_qk=d, d_v=d, shared_kv=False)
        ops.append(gemm("layer.attn.out", plan, m=t, k=heads * d, n=h, count=count, bias=model.attn_out_bias))
    ops.append(residual("layer.attn.residual", plan, count=count))
    return ops


def _mla_ops(plan: Plan) -> list[Op]:
    """Multi-head latent attention (DeepSeek-V2 arXiv 2405.04434 section 2.1; V3 2412.19437 2.1.1).

    Training and prefill expand the latent into per-head keys and values (kv up projection) and
    run ordinary attention with q/k width nope+rope and v width v_head_dim. Decode uses the
    absorbed form (DeepSeek-V2 section 2.1.3): the kv up projection's key half multiplies into the
    query (`q_absorb`, per head nope -> kv_lora_rank) and its value half into the output
    (`v_absorb`, kv_lora_rank -> v_head_dim), so attention runs over the cached latent
    (kv_lora_rank + rope, one head shared by all query heads) and the cache is never expanded.
    """
    model, t, count = plan.model, plan.tokens, plan.model.num_layers
    h, heads = model.hidden_size, plan.heads
    rope, nope, dv = model.qk_rope_head_dim, model.qk_nope_head_dim, model.v_head_dim
    rank = model.kv_lora_rank or 0
    bias = model.qkv_bias
    ops = []
    if model.q_lora_rank:
        ops.append(gemm("layer.attn.q_down", plan, m=t, k=h, n=model.q_lora_rank, count=count, bias=bias))
        ops.append(
            norm("layer.attn.q_norm", plan, tokens=t, width=model.q_lora_rank, count=count, kind="rmsnorm")
        )
        ops.append(
            gemm("layer.attn.q_up", plan, m=t, k=model.q_lora_rank, n=heads * (nope + rope), count=count)
        )
    else:
        ops.append(gemm("layer.attn.q", plan, m=t, k=h, n=heads * (nope + rope), count=count, bias=bias))
    ops.append(gemm("layer.attn.kv_down", plan, m=t, k=h, n=rank + rope, count=count, bias=bias))
    ops.append(norm("layer.attn.kv_norm", plan, tokens=t, width=rank, count=count, kind="rmsnorm"))
    ops.append(
        pointwise(
            "layer.attn.rope",
            plan,
            kind="elementwise",
            elements=t * (heads + 1) * rope,
            flops_per_element=ROPE_FLOPS,
            reads=1,
            writes=1,
            count=count,
        )
    )
    if plan.decode:
        ops.append(gemm("layer.attn.q_absorb", plan, m=t, k=nope, n=rank, batch=heads, count=count))
        ops.append(_kv_cache_write(plan, elements_per_token=rank + rope, count=count))
        ops += _core_ops(plan, heads=heads, kv_heads=1, d_qk=rank + rope, d_v=rank, shared_kv=True)
        ops.append(gemm("layer.attn.v_absorb", plan, m=t, k=rank, n=dv, batch=heads, count=count))
    else:
        ops.append(gemm("layer.attn.kv_up", plan, m=t, k=rank, n=heads * (nope + dv), count=count))
        if plan.kv_cache_bytes is not None:
            ops.append(_kv_cache_write(plan, elements_per_token=rank + rope, count=count))
        ops += _core_ops(plan, heads=heads, kv_heads=heads, d_qk=nope + rope, d_v=dv, shared_kv=False)
    ops.append(gemm("layer.attn.out", plan, m=t, k=heads * dv, n=h, count=count, bias=model.attn_out_bias))
    return ops


def _mlp(prefix: str, plan: Plan, *, tokens: int, width: int, count: int) -> list[Op]:
    """Gated: fused gate+up GEMM (n = 2*width, Megatron-LM linear_fc1), activation, down GEMM."""
    model, h = plan.model, plan.model.hidden_size
    up = "up_gate" if model.mlp_gated else "up"
    n_up = 2 * width if model.mlp_gated else width
    return [
        gemm(f"{prefix}.{up}", plan, m=tokens, k=h, n=n_up, count=count, bias=model.mlp_bias),
        activation(f"{prefix}.act", plan, elements=tokens * width, count=count),
        gemm(f"{prefix}.down", plan, m=tokens, k=width, n=h, count=count, bias=model.mlp_bias),
    ]


def touched_experts(num_experts: int, top_k: int, tokens: float) -> float:
    """Expected number of distinct experts of one MoE layer that `tokens` tokens route to.

    Under uniform routing each token picks `top_k` of `num_experts` experts, so a given expert is
    missed by one token with probability 1 - k/E and by all of them with (1 - k/E)^B; the expected
    number touched is E * (1 - (1 - k/E)^B): k at B = 1, approaching E as B grows, never falling
    with B (linearity of expectation; the per-token choices are taken as independent across
    tokens, which treats the k draws of one token as independent too, exact at B = 1). Real
    routers are skewed (popular experts), which touches fewer experts than this; left out.
    """
    if tokens <= 0:
        return 0.0
    return num_experts * (1.0 - (1.0 - top_k / num_experts) ** tokens)


def expert_token_counts(plan: Plan) -> dict[int, int]:
    """{tokens routed to an expert: number of local experts with that many}, zero-token experts left out.

    Default: balanced routing of the chip's `tokens * top_k` assignments over its `E/ep` experts
    (as even as integers allow); `plan.expert_tokens` gives observed per-expert counts instead.
    Decode: a step's few tokens touch only some experts, and only those experts' weights are read.
    The assignments are spread evenly over the expected number touched (`touched_experts` of the
    EP group's `routed_tokens * ep` tokens, times this chip's share `1/ep` of the experts, rounded
    to a whole expert), so expert weight bytes follow that count.
    """
    model = plan.model
    if plan.expert_tokens is not None:
        counts: dict[int, int] = {}
        for m in plan.expert_tokens:
            if m:
                counts[m] = counts.get(m, 0) + 1
        return counts
    local = model.num_experts // plan.ep
    assigned = plan.routed_tokens * model.num_experts_per_tok
    used = local
    if plan.decode and assigned:
        expected = touched_experts(model.num_experts, model.num_experts_per_tok, plan.routed_tokens * plan.ep)
        used = min(local, assigned, max(1, round(expected / plan.ep)))
    q, r = divmod(assigned, max(used, 1))
    return {m: n for m, n in ((q + 1, r), (q, used - r)) if m and n}


def ffn_layer_ops(plan: Plan) -> list[Op]:
    """Norm, MLP (dense layers) or router + routed experts + shared experts (MoE layers), residual."""
    model, t, h = plan.model, plan.tokens, plan.model.hidden_size
    ops: list[Op] = []
    if model.num_dense_layers:
        n = model.num_dense_layers
        ops.append(norm("layer.mlp.norm", plan, tokens=plan.token_wise, width=h, count=n))
        ops += _mlp("layer.mlp", plan, tokens=t, width=model.intermediate_size // plan.tp, count=n)
        ops.append(residual("layer.mlp.residual", plan, count=n))
    if model.num_moe_layers:
        n, e, k = model.num_moe_layers, model.num_experts, model.num_experts_per_tok
        tw = plan.token_wise
        ops.append(norm("layer.moe.norm", plan, tokens=tw, width=h, count=n))
        ops.append(gemm("layer.moe.router", plan, m=tw, k=h, n=e, count=n, bias=model.router_bias))
        ops.append(
            pointwise(
                "layer.moe.route",
                plan,
                kind="router",
                elements=tw * e,
                flops_per_element=5,
                reads=1,
                writes=1,
                count=n,
            )
        )  # softmax/sigmoid + top-k over the logits
        ops.append(
            pointwise(
                "layer.moe.dispatch",
                plan,
                kind="router",
                elements=tw * k * h,
                flops_per_element=0,
                reads=1,
                writes=1,
                count=n,
            )
        )  # permute each token to its k experts
        width = model.moe_intermediate_size // plan.expert_tp
        routed = expert_token_counts(plan)
        for m, experts in sorted(routed.items(), reverse=True):
            ops += [
                op
                for op in _mlp(EXPERT_GEMM_PREFIX.rstrip("."), plan, tokens=m, width=width, count=n * experts)
                if op.kind == "gemm"
            ]
        assigned = sum(m * experts for m, experts in routed.items())
        if assigned:
            ops.append(activation("layer.moe.experts.act", plan, elements=assigned * width, count=n))
        ops.append(
            pointwise(
                "layer.moe.combine",
                plan,
                kind="router",
                elements=tw * k * h,
                flops_per_element=2,
                reads=1,
                writes=1.0 / k,
                count=n,
            )
        )  # weighted sum of the k expert outputs
        if model.num_shared_experts:
            width = model.num_shared_experts * model.shared_expert_intermediate_size // plan.tp
            ops += _mlp("layer.moe.shared", plan, tokens=t, width=width, count=n)
        ops.append(residual("layer.moe.residual", plan, count=n))
    return ops
