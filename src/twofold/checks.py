"""The input checks every layer shares: one implementation of each rule, one message for each.

Each function takes the field's name and the value, returns the value when it keeps the rule and
raises `InputError(field, value, rule)` when it does not, so a flag, a YAML key and an API argument
that break the same rule read the same ("global_batch=0: must be a positive integer"). Checks of
one field's meaning (a tp that divides the heads, a deadline's units) stay where that meaning lives.
Booleans are never numbers here: `True` is not a count of chips.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import TypeVar

from twofold.errors import InputError

__all__ = ["fraction", "non_negative", "one_of", "positive", "positive_int", "positive_ints"]

T = TypeVar("T")


def _real_and(value: object, test: Callable[[float], bool]) -> bool:
    """A real number (Python or NumPy, not a bool) for which `test` holds."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and test(float(value))


def positive_int(field: str, value: T, rule: str = "must be a positive integer") -> T:
    """An integer >= 1 (Python or NumPy, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InputError(field, value, rule)
    return value


def positive_ints(**values: object) -> None:
    """`positive_int` on each value given (None is "not given"), in the order given."""
    for field, value in values.items():
        if value is not None:
            positive_int(field, value)


def positive(field: str, value: T, rule: str = "must be a positive number", *, finite: bool = False) -> T:
    """A real number > 0 (and finite, with `finite=True`)."""
    if not _real_and(value, lambda x: x > 0 and (math.isfinite(x) or not finite)):
        raise InputError(field, value, rule)
    return value


def non_negative(
    field: str, value: T, rule: str = "must be a non-negative number", *, finite: bool = False
) -> T:
    """A real number >= 0 (and finite, with `finite=True`)."""
    if not _real_and(value, lambda x: x >= 0 and (math.isfinite(x) or not finite)):
        raise InputError(field, value, rule)
    return value


def fraction(field: str, value: T, noun: str = "", *, closed: bool = False) -> T:
    """A real number in [0, 1), or in [0, 1] with `closed=True`; the rule reads "must be in [0, 1)",
    or with a noun "must be a fraction of the memory in [0, 1)"."""
    interval = "[0, 1]" if closed else "[0, 1)"
    if not _real_and(value, lambda x: 0.0 <= x <= 1.0 if closed else 0.0 <= x < 1.0):
        raise InputError(field, value, f"must be {noun + ' ' if noun else ''}in {interval}")
    return value


def one_of(field: str, value: T, choices: Iterable[object]) -> T:
    """One of `choices`; the rule lists them in their order: "must be one of none, selective, full"."""
    options = list(choices)
    if value not in options:
        raise InputError(field, value, f"must be one of {', '.join(map(str, options))}")
    return value
