"""The shared input checks (`twofold.checks`): the rule text each one writes, and the values each one
lets through. Reference: the messages the inline checks wrote before they were shared (the CLI tests
of every verb still match them), and CONTRIBUTING.md's error rule: field, value and rule, one line."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twofold.checks import fraction, non_negative, one_of, positive, positive_int, positive_ints
from twofold.errors import InputError


def _message(call: object) -> str:
    with pytest.raises(InputError) as info:
        call()  # type: ignore[operator]
    return str(info.value)


def test_messages_name_the_field_the_value_and_the_rule() -> None:
    assert _message(lambda: positive_int("chips", 0)) == "chips=0: must be a positive integer"
    assert _message(lambda: positive_int("rounds", 0, "must be >= 1")) == "rounds=0: must be >= 1"
    assert _message(lambda: positive_ints(tp=2, pp=0, cp=0)) == "pp=0: must be a positive integer"
    assert _message(lambda: one_of("recompute", "most", ("none", "full"))) == (
        "recompute='most': must be one of none, full"
    )
    assert _message(lambda: fraction("tolerance", 1.0)) == "tolerance=1.0: must be in [0, 1)"
    assert _message(lambda: fraction("mem_headroom", 2, "a fraction of the memory")) == (
        "mem_headroom=2: must be a fraction of the memory in [0, 1)"
    )
    assert _message(lambda: fraction("x", 1.5, "a fraction", closed=True)) == (
        "x=1.5: must be a fraction in [0, 1]"
    )
    assert _message(lambda: positive("ratio", 0)) == "ratio=0: must be a positive number"
    assert _message(lambda: non_negative("std", -1.0, "must be >= 0")) == "std=-1.0: must be >= 0"


def test_values_that_keep_the_rule_come_back_unchanged() -> None:
    assert positive_int("n", np.int64(3)) == 3
    assert positive_ints(a=None, b=1) is None
    assert fraction("f", 0.0) == 0.0
    assert fraction("f", 1, closed=True) == 1
    assert fraction("f", np.float32(0.5)) == np.float32(0.5)
    assert positive("p", float("inf")) == float("inf")
    assert non_negative("n", 0) == 0
    assert one_of("k", "b", ["a", "b"]) == "b"


@pytest.mark.parametrize(
    "check",
    [
        lambda: positive_int("n", True),
        lambda: positive_int("n", 2.0),
        lambda: positive("p", True),
        lambda: positive("p", float("inf"), finite=True),
        lambda: positive("p", float("nan")),
        lambda: fraction("f", False),
        lambda: fraction("f", "0.5"),
        lambda: non_negative("n", None),
    ],
)
def test_booleans_strings_and_non_finite_values_are_refused(check: object) -> None:
    with pytest.raises(InputError):
        check()  # type: ignore[operator]


def test_finite_refuses_infinity_where_asked() -> None:
    assert non_negative("grid", math.inf) == math.inf  # the default admits it
    with pytest.raises(InputError, match="grid=inf: must be a non-negative number"):
        non_negative("grid", math.inf, finite=True)
    with pytest.raises(InputError, match="tokens=inf"):
        positive("tokens", math.inf, finite=True)
