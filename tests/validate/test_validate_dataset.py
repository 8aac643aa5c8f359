"""The shipped dataset: typed rows, parsed notes, and the counts its own description states."""

from __future__ import annotations

import re
from collections import Counter
from importlib import resources

from twofold.validate.dataset import DATA_FILES, load_rows, parse_notes, read_csv, row_file


def _md_text(name: str = "published_results.md") -> str:
    return resources.files("twofold.validate").joinpath("data", name).read_text()


def _file_rows(name: str):
    with resources.as_file(resources.files("twofold.validate") / "data" / name) as path:
        return read_csv(path)


def test_row_count_and_source_counts_match_the_dataset_description() -> None:
    # Reference: published_results.md (written with the CSV) states the totals.
    md = _md_text()
    total = int(re.search(r"^(\d+) rows of published", md, re.MULTILINE).group(1))
    rows = _file_rows("published_results.csv")
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


# Row counts stated by each file's notes (.md beside it): "_2" 47 rows, "_3" 155 (GT3001-GT3155),
# "_4" 59, "_5" 59 (GT5001-GT5059).
_STATED = {
    "published_results.csv": 320,
    "published_results_2.csv": 47,
    "published_results_3.csv": 155,
    "published_results_4.csv": 59,
    "published_results_5.csv": 59,
}


def test_every_shipped_file_loads_in_order_with_unique_ids() -> None:
    assert DATA_FILES == tuple(_STATED)
    per_file = {name: _file_rows(name) for name in DATA_FILES}
    assert {name: len(rows) for name, rows in per_file.items()} == _STATED
    rows = load_rows()
    assert [r.id for r in rows] == [r.id for name in DATA_FILES for r in per_file[name]]
    assert len({r.id for r in rows}) == len(rows) == sum(_STATED.values())
    assert row_file("GT3001") == "published_results_3.csv" and row_file("GT0001") == "published_results.csv"


def test_shipped_files_are_verbatim_copies_with_their_notes() -> None:
    data = resources.files("twofold.validate").joinpath("data")
    for name in DATA_FILES:
        assert data.joinpath(name.replace(".csv", ".md")).is_file(), name
    md3 = _md_text("published_results_3.md")
    assert "155 rows, GT3001–GT3155" in md3
    tasks = Counter(r.task for r in _file_rows("published_results_3.csv"))
    # published_results_3.md: "112 `train` ..., 27 `finetune-lora`, 16 `finetune-qlora`".
    assert tasks == {"train": 112, "finetune-lora": 27, "finetune-qlora": 16}
