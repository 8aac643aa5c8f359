"""The sources' FLOP formulas against hand derivations and against the sources' own published pairs."""

from __future__ import annotations

import pytest

from twofold.validate.dataset import load_rows
from twofold.validate.flops import maxtext_flops, megatron_model_flops, narayanan_flops
from twofold.validate.mapping import model_from_columns
from twofold.workload.model import ModelConfig


def _gpt3() -> ModelConfig:
    return ModelConfig(
        name="gpt3-175b",
        family="gpt2",
        num_layers=96,
        hidden_size=12288,
        num_attention_heads=96,
        num_kv_heads=96,
        head_dim=128,
        intermediate_size=4 * 12288,
        vocab_size=51200,
        mlp_gated=False,
        activation="gelu",
        norm="layernorm",
        position_embedding="learned",
    )


def test_narayanan_eq3_for_gpt3_175b() -> None:
    # Narayanan et al. 2021 (arXiv 2104.04473) eq. (3), written out: F = 96 B s l h^2 (1 + s/6h + V/16lh)
    # with GPT-3 175B's B=1536, s=2048, l=96, h=12288, V=51200 (paper section 5.1 and Table 2).
    b, s, n_l, h, v = 1536, 2048, 96, 12288, 51200
    expected = 96 * b * s * n_l * h**2 * (1 + s / (6 * h) + v / (16 * n_l * h))
    assert narayanan_flops(_gpt3(), b, s) == pytest.approx(expected, rel=1e-12)
    # Section 5.1 approximates this as 8 * P FLOPs per token (eq. 4, P = 12 l h^2) when s << 6h and
    # V << 16 l h; here the bracket is 1 + 0.0278 + 0.0027.
    per_token = narayanan_flops(_gpt3(), b, s) / (b * s)
    assert per_token / (8 * 12 * n_l * h**2) == pytest.approx(1.0305, abs=5e-4)


def test_megatron_formula_is_narayanan_without_recompute_for_gpt() -> None:
    # Without recompute the forward is counted 3x instead of 4x: 72 B s l h^2 (1 + s/6h + V/12lh)
    # (Korthikanti et al. 2022, arXiv 2205.05198, section 6, "model FLOPs").
    b, s, n_l, h, v = 1536, 2048, 96, 12288, 51200
    expected = 72 * b * s * n_l * h**2 * (1 + s / (6 * h) + v / (12 * n_l * h))
    assert megatron_model_flops(_gpt3(), b, s) == pytest.approx(expected, rel=1e-12)


def test_megatron_formula_reproduces_nemo_published_model_tflops() -> None:
    # NeMo 25.0x performance tables publish tokens/s/GPU and model TFLOP/s/GPU for the same run; their
    # ratio is NeMo's FLOPs per token, which is Megatron's formula (non-causal attention).
    rows = [
        r
        for r in load_rows()
        if r.source.startswith("NVIDIA NeMo Framework performance summary")
        and r.moe_experts is None
        and r.metric == "tokens_per_s_per_chip"
    ]
    assert len(rows) >= 10
    for row in rows:
        model = model_from_columns(row)
        per_token = megatron_model_flops(model, 1, row.seq_len) / row.seq_len
        published = row.note_number("model_tflops_per_chip")
        assert per_token * row.value / 1e12 == pytest.approx(published, rel=0.012), row.id


def test_maxtext_count_on_a_tiny_model_by_hand() -> None:
    # E=4, F=8 (gated: 2 input activations), H=2 heads, G=1 kv head, D=2, V=10, L=1, B=1, S=3.
    model = ModelConfig(
        name="tiny",
        family="llama",
        num_layers=1,
        hidden_size=4,
        num_attention_heads=2,
        num_kv_heads=1,
        head_dim=2,
        intermediate_size=8,
        vocab_size=10,
    )
    ffn = 2 * 3 * 8 * 4 * 2 + 2 * 3 * 8 * 4  # 384 + 192
    qkv = 2 * 3 * 4 * (2 + 2 * 1) * 2  # 192
    proj = 2 * 3 * 4 * 2 * 2  # 96
    emb = 2 * 3 * 4 * 10  # 240
    attn = 4 * 3 * 3 * 2 * 2  # 144
    assert maxtext_flops(model, 1, 3) == 3 * (ffn + qkv + proj + emb) + 3 * attn
    assert maxtext_flops(model, 1, 3, causal=True) == 3 * (ffn + qkv + proj + emb) + 3 * attn / 2


def test_maxtext_published_mfu_and_tflops_agree_with_v5p_peak() -> None:
    # MaxText v5p rows publish TFLOP/s/chip and MFU; MFU = TFLOP/s / 459 (v5p BF16 peak, per the
    # dataset description): a check that these rows use one FLOP count for both figures.
    rows = [r for r in load_rows() if r.source == "MaxText TPU v5p high-performance configs"]
    for row in rows:
        assert row.value / 459 * 100 == pytest.approx(row.note_number("mfu"), abs=0.15), row.id
    assert len(rows) == 16


def test_six_n_and_causal_megatron_counts_by_hand() -> None:
    """GPT-3 175B as `_gpt3` writes it (layers 96, hidden 12288, vocab 51200, no biases, learned
    positions up to the config's default 4096, untied output layer): 6ND counts 6 x N x tokens with
    N every parameter; causal Megatron drops half of the 4 s^2 h attention FLOPs per layer forward
    (x3 for the backward)."""
    from twofold.validate.flops import megatron_causal_flops, six_n_flops

    m, b, s = _gpt3(), 8, 2048
    h, layers, vocab, positions = 12288, 96, 51200, m.max_position_embeddings
    per_layer = 12 * h * h + 4 * h  # q, k, v, out (4h^2), MLP (8h^2), two layernorms (2 x 2h)
    n = layers * per_layer + (vocab + positions) * h + vocab * h + 2 * h  # embeddings, head, final norm
    assert six_n_flops(m, b, s) == pytest.approx(6 * n * b * s, rel=1e-9)
    attention = 3 * 4 * b * s * s * h * layers  # QK^T and AV, forward + backward, full s x s
    assert megatron_model_flops(m, b, s) - megatron_causal_flops(m, b, s) == pytest.approx(attention / 2)


@pytest.mark.parametrize(
    ("notes", "formula"),
    [
        ("MFU from 6ND (no attention FLOPs)", "6n"),
        ("TFLOPs = 6 * N * tokens / time", "6n"),
        ("FLOP count excluding attention", "6n"),
        ("MFU counts causal attention FLOPs", "megatron_causal"),
        ("MaxText log; flops with causal attention", "maxtext_causal"),
        ("FLOP-count convention = Primus/Megatron logger (not stated)", None),
        ("stack=nanotron v0.5; 64 nodes", None),
        ("causal language model; TFLOPs per GPU from the logger", None),
    ],
)
def test_a_row_s_stated_flop_count_is_read_where_its_source_has_none(notes: str, formula: str | None) -> None:
    from twofold.validate.reading import read_flop_convention

    read = read_flop_convention(notes)
    assert (read[0] if read else None) == formula
