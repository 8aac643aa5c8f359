"""A published row's model for `validate.mapping`: the catalog entry its name maps to
(mapping.yaml `catalog_models`, else read from the name), or a `ModelConfig` built from the row's
architecture columns (`model_from_columns`, with the `column_families`, `supplements` and
`architectures` of mapping.yaml).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from twofold.errors import InputError
from twofold.validate.dataset import PublishedRow
from twofold.validate.mapping_rules import NotExpressible, mapping_data
from twofold.validate.reading import read_model_id

_STRUCTURE_HINTS = ("MLA", "shared expert", "dense layer")


def _model(row: PublishedRow, caveats: list[str]) -> Any:
    data = mapping_data()
    reason = data["unexpressible_models"].get(row.model)
    if reason:
        raise NotExpressible(str(reason))
    catalog_id = data["catalog_models"].get(row.model)
    if not catalog_id and (catalog_id := read_model_id(row.model)):
        caveats.append(f"model {row.model!r} read as catalog {catalog_id}")
    if catalog_id:
        from twofold.workload.registry import get_model

        try:
            model = get_model(catalog_id)
        except InputError:
            if any(hint.lower() in row.notes.lower() for hint in _STRUCTURE_HINTS):
                raise NotExpressible(
                    f"model catalog has no {catalog_id!r}, and the row's columns cannot express its "
                    "structure (MLA / shared experts / leading dense layers)"
                ) from None
            caveats.append(f"model catalog has no {catalog_id!r}; built from the row's columns")
            return model_from_columns(row, caveats)
        caveats.extend(_catalog_mismatches(row, model))
        return model
    model = model_from_columns(row, caveats)
    arch = data.get("architectures", {}).get(row.model)
    if arch:
        caveats.append(f"architecture not in the row: taken from {arch['citation']}")
    return model


def _catalog_mismatches(row: PublishedRow, model: Any) -> list[str]:
    pairs = {
        "layers": model.num_layers,
        "hidden": model.hidden_size,
        "heads": model.num_attention_heads,
        "kv_heads": model.num_kv_heads,
        "vocab": model.vocab_size,
        "moe_experts": model.num_experts or None,
    }
    out = []
    for column, catalog_value in pairs.items():
        value = getattr(row, column)
        if value is not None and catalog_value is not None and value != catalog_value:
            out.append(
                f"row {column}={value} differs from catalog {model.name} ({catalog_value}); catalog used"
            )
    return out


def _supplement(row: PublishedRow, what: str) -> int | None:
    for key, block in mapping_data()["supplements"].items():
        if key.split("_")[0] == what and row.id in block["rows"]:
            return int(block["rows"][row.id])
    return None


# A model name no `column_families` rule knows (a row from elsewhere): a pre-norm decoder with
# RMSNorm and RoPE, its MLP gated (SwiGLU) or plain (GELU, two matrices) by which of the two gives
# the row's published parameter count (`params_b`); gated when the row has none.
_DECODER = {"norm": "rmsnorm", "position_embedding": "rope"}


_DECODER_RULES = (
    {"family": "llama", "mlp_gated": True, "activation": "silu", **_DECODER},
    {"family": "gpt2", "mlp_gated": False, "activation": "gelu", **_DECODER},
)


def model_from_columns(row: PublishedRow, caveats: list[str] | None = None) -> Any:
    """A ModelConfig from the row's architecture columns and the first matching `column_families`
    rule of mapping.yaml (which decides gated vs plain MLP, norm and positions; see the comment
    there). Figures the row omits come from `supplements` or `architectures` (cited there) or make
    the row unexpressible. A name no rule matches gets the decoder of `_DECODER_RULES` whose
    parameter count is nearer the row's `params_b` (a caveat says which)."""
    rule = next((r for r in mapping_data()["column_families"] if re.search(r["match"], row.model)), None)
    if rule is not None:
        return _columns_model(row, rule)
    from twofold.workload.params import param_counts

    candidates = [_columns_model(row, r) for r in _DECODER_RULES]
    chosen = candidates[0]
    why = "no published parameter count: gated (SwiGLU) assumed"
    if row.params_b:
        target = row.params_b * 1e9
        chosen = min(candidates, key=lambda m: abs(param_counts(m).total - target))
        total = param_counts(chosen).total / 1e9
        why = f"{total:.2f}B parameters against {row.params_b:g}B published"
    if caveats is not None:
        kind = "gated (SwiGLU)" if chosen.mlp_gated else "plain GELU"
        caveats.append(f"model {row.model!r} built from the columns as a {kind} RMSNorm/RoPE decoder ({why})")
    return chosen


def _columns_model(row: PublishedRow, rule: Mapping[str, Any]) -> Any:
    from twofold.workload.model import ModelConfig

    arch = mapping_data().get("architectures", {}).get(row.model, {})
    layers = row.layers or arch.get("layers")
    hidden = row.hidden or arch.get("hidden")
    heads = row.heads or _supplement(row, "heads") or arch.get("heads")
    ffn = row.ffn or arch.get("ffn")
    vocab = row.vocab or _supplement(row, "vocab") or arch.get("vocab")
    missing = [
        name
        for name, value in (
            ("layers", layers),
            ("hidden", hidden),
            ("heads", heads),
            ("ffn", ffn),
            ("vocab", vocab),
        )
        if value is None
    ]
    if missing:
        raise NotExpressible(f"architecture not published in the row ({', '.join(missing)} empty)")
    assert layers and hidden and heads and ffn and vocab  # narrowed above
    head_dim = int(rule.get("head_dim") or hidden // heads)
    moe: dict[str, Any] = {}
    if row.moe_experts:
        moe = dict(
            num_experts=row.moe_experts, num_experts_per_tok=row.moe_topk or 1, moe_intermediate_size=ffn
        )
    return ModelConfig(
        name=row.model,
        family=str(rule["family"]),
        num_layers=int(layers),
        hidden_size=int(hidden),
        num_attention_heads=int(heads),
        num_kv_heads=int(row.kv_heads or arch.get("kv_heads") or heads),
        head_dim=head_dim,
        intermediate_size=int(ffn),
        vocab_size=int(vocab),
        max_position_embeddings=max(row.seq_len or 0, 2048),
        mlp_gated=bool(rule["mlp_gated"]),
        activation=str(rule["activation"]),
        norm=str(rule["norm"]),  # type: ignore[arg-type]
        position_embedding=str(rule["position_embedding"]),  # type: ignore[arg-type]
        tie_word_embeddings=bool(arch.get("tie_word_embeddings", False)),
        source=f"published results row {row.id} columns" + (f" + {arch['citation']}" if arch else ""),
        **moe,
    )
