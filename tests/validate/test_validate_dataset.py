"""The shipped dataset: typed rows, parsed notes, and the counts its own description states."""

from __future__ import annotations

import re
from collections import Counter
from importlib import resources

from twofold.validate.dataset import load_rows, parse_notes


def _md_text() -> str:
    return resources.files("twofold.validate").joinpath("data", "published_results.md").read_text()


def test_row_count_and_source_counts_match_the_dataset_description() -> None:
    # Reference: published_results.md (written with the CSV) states the totals.
    md = _md_text()
    total = int(re.search(r"^(\d+) rows of published", md, re.MULTILINE).group(1))
    rows = load_rows()
    assert len(rows) == total == 320
    by_source = Counter(r.source for r in rows)
    assert by_source["NVIDIA Megatron-Bridge performance summary"] == 166
    nemo = sum(n for s, n in by_source.items() if s.startswith("NVIDIA NeMo Framework performance summary"))
    assert nemo == 19
    assert len({r.id for r in rows}) == total


def test_columns_are_typed_as_in_the_csv_text() -> None:
    # GT0001 as written in the CSV: GPT 1.7B, 24 layers, hidden 2048, 48 H100s, value 408.8.
    row = next(r for r in load_rows() if r.id == "GT0001")
    assert (row.layers, row.hidden, row.heads, row.chips, row.global_batch) == (24, 2048, 16, 48, 192)
    assert row.value == 408.8 and row.metric == "tflops_per_chip"
    assert row.vp is None and row.micro_batch is None  # empty cells stay unknown
    assert row.note_number("mfu") == 41.0


def test_notes_split_into_pairs_and_remarks() -> None:
    values, remarks = parse_notes(
        "model_tflops_per_chip=1635; NeMo container 26.08; arch: x.yml (MLA; 3 dense layers ffn 18432); GA=32"
    )
    assert values == {"model_tflops_per_chip": "1635", "ga": "32"}
    assert remarks == ("NeMo container 26.08", "arch: x.yml (MLA; 3 dense layers ffn 18432)")


def test_trained_tokens_note_is_numeric() -> None:
    row = next(r for r in load_rows() if r.id == "GT0622")
    assert row.note_number("trained_tokens") == 1231110144.0
