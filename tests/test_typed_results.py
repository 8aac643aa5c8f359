"""Typed results are a rule, not a hope: search, compare and report read the estimator's terms as
fields of `estimate.StepTerms` / `StepArrays`, never by indexing a result with a string key.

Reference: STYLE.md habit 12 and CONTRIBUTING.md ("Results and data"). The check parses the
source with `ast` (nothing is imported) and flags every `x["name"]`, `x.get("name")` and
`x.pop("name")` whose name is a field of the estimator's result. `tokens_per_s_per_chip` is never
allowed; another field name only where `ALLOWED` says why (a different result that happens to
share the name). The list only shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from twofold.estimate.step import STEP_FIELDS

ROOT = Path(__file__).resolve().parents[1] / "src" / "twofold"
PACKAGES = ("search", "compare", "report")
NEVER = "tokens_per_s_per_chip"

# (module path under src/twofold, key) -> why it is still indexed by name.
ALLOWED: dict[tuple[str, str], str] = {
    ("search/infer_plan.py", "fits"): "the serving estimator's arrays (`estimate.inference`), still a "
    "dict: typing them is the serving half of issue 18",
    ("search/infer_plan.py", "memory_per_chip_bytes"): "same serving arrays as above",
    ("report/html.py", "step_time_s"): "the report renders `CompareResult.to_dict()`, the compare JSON",
    ("report/html.py", "mfu"): "same compare JSON as above",
    ("report/html.py", "memory_per_chip_gib"): "same compare JSON as above",
}


def _string_indexes(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, key) of every subscript, `.get` or `.pop` with a constant string key."""
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            key = node.slice.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "pop")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            key = node.args[0].value
        if isinstance(key, str):
            yield node.lineno, key


def _uses() -> list[tuple[str, int, str]]:
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = path.relative_to(ROOT).as_posix()
            for line, key in _string_indexes(ast.parse(path.read_text(encoding="utf-8"))):
                if key in STEP_FIELDS:
                    out.append((module, line, key))
    return out


def test_no_module_indexes_a_result_with_tokens_per_s_per_chip() -> None:
    found = [f"{m}:{line}" for m, line, key in _uses() if key == NEVER]
    assert not found, f'indexed with "{NEVER}" (read the field instead): {", ".join(found)}'


def test_estimator_terms_are_read_as_fields() -> None:
    found = [f"{m}:{line} [{key!r}]" for m, line, key in _uses() if (m, key) not in ALLOWED]
    assert not found, "read the StepTerms/StepArrays field instead: " + ", ".join(found)


def test_the_allowed_list_only_shrinks() -> None:
    used = {(m, key) for m, _, key in _uses()}
    stale = sorted(set(ALLOWED) - used)
    assert not stale, f"no longer indexed by name, remove from ALLOWED: {stale}"


def test_the_check_sees_what_it_forbids() -> None:
    code = 'a["tokens_per_s_per_chip"]; b.get("mfu", 0.0); c.pop("fits"); d.tokens_per_s_per_chip'
    assert [k for _, k in _string_indexes(ast.parse(code))] == ["tokens_per_s_per_chip", "mfu", "fits"]
