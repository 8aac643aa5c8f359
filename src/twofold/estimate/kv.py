"""KV-cache size: bytes per token and per sequence, per chip of a tensor-parallel serving layout.

A decoder keeps, for every layer and every token already seen, the keys and values its attention
will read again in later decode steps (Pope et al., "Efficiently Scaling Transformer Inference",
MLSys 2023, arXiv 2211.05102, section 2.1). Per token and layer, with e bytes per cached element:

- standard attention, GQA and MQA (Ainslie et al., "GQA", EMNLP 2023, arXiv 2305.13245):
  `2 * kv_heads * head_dim * e` (one key and one value vector per key/value head), so a model of
  L layers holds `2 * L * kv_heads * head_dim * e` bytes per token. MHA is kv_heads = heads.
- multi-head latent attention (DeepSeek-V2, arXiv 2405.04434, section 2.1.2 and table 1: the
  cache per token and layer is `(d_c + d_h^R)` elements): the compressed latent of width
  `kv_lora_rank` and the one shared rope key of width `qk_rope_head_dim`:
  `(kv_lora_rank + qk_rope_head_dim) * e`, i.e. `L * (kv_lora_rank + qk_rope_head_dim) * e` per
  token. Decode runs attention on the latent directly (weight absorption, same section).
- sliding-window layers (Mistral, gpt-oss) keep a rolling cache of the last `sliding_window`
  tokens, so a sequence of context c costs `min(c, window)` tokens on those layers.

Sharding over `tp` chips (Megatron-LM / vLLM convention, the same as `workload.layers`): key/value
heads are divided when `tp <= kv_heads`, and replicated (one head per chip) when tp exceeds them,
so a chip holds `max(kv_heads // tp, 1)` heads. The MLA latent is not split by head and every
tensor-parallel chip keeps the whole latent (as vLLM's MLA backend does).

Left out: paged-allocator block rounding (vLLM pages of 16 tokens: at most 15 tokens per sequence
and layer), quantization scales of fp8/int8 caches, and prefix sharing between sequences.
"""

from __future__ import annotations

import numpy as np

from twofold.workload.model import ModelConfig
from twofold.workload.precision import bytes_per_element

__all__ = ["kv_bytes_per_token", "kv_bytes_per_token_layer", "kv_cache_bytes"]


def kv_bytes_per_token_layer(model: ModelConfig, kv_precision: str, *, tp: int = 1) -> float:
    """Cached bytes one token adds to one layer on one chip of a `tp`-way layout (module docstring)."""
    e = bytes_per_element(kv_precision, "kv_precision")
    if model.is_mla:
        return float((model.kv_lora_rank or 0) + model.qk_rope_head_dim) * e
    heads_per_chip = max(model.num_kv_heads // tp, 1)
    return 2.0 * heads_per_chip * model.head_dim * e


def kv_bytes_per_token(model: ModelConfig, kv_precision: str) -> float:
    """Cached bytes of one token across all layers of the whole (unsharded) model: 2*L*kv*d*e (GQA/MQA),
    L*(kv_lora_rank + qk_rope_head_dim)*e (MLA); sliding-window layers included (within their window)."""
    return model.num_layers * kv_bytes_per_token_layer(model, kv_precision, tp=1)


def kv_cache_bytes(
    model: ModelConfig,
    kv_precision: str,
    *,
    context_len: np.ndarray | float,
    sequences: np.ndarray | float = 1.0,
    tp: int = 1,
    layers: float | None = None,
) -> np.ndarray:
    """KV-cache bytes on one chip: `sequences` sequences of `context_len` tokens each, over `layers`
    layers (default all) of the model's mix of full-attention and sliding-window layers.

    `layers` below `num_layers` (a pipeline stage) keeps the model's proportion of sliding-window
    layers. Vectorised over `context_len` and `sequences`.
    """
    per = kv_bytes_per_token_layer(model, kv_precision, tp=tp)
    n = max(model.num_layers, 1)
    window = model.sliding_window
    sliding = model.sliding_window_layers if window is not None else 0
    share = (n if layers is None else float(layers)) / n
    ctx = np.asarray(context_len, dtype=float)
    tokens = (n - sliding) * ctx + sliding * (
        np.minimum(ctx, window) if sliding and window is not None else 0.0
    )
    return np.asarray(share * tokens * per * np.asarray(sequences, dtype=float))
