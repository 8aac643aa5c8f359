"""User-facing errors.

Every mistake a user can make (a flag, a YAML field, a config.json key) is reported as an
`InputError` that names the field, the value and the rule it breaks. The CLI turns it into a
one-line message and exit code 2; the Python API lets it propagate as a `ValueError`.

A valid question that has no answer (nothing fits in memory, no layout is valid on that many
chips, no layout meets the serving targets, the reference of a comparison cannot run) is a
`NoAnswer`: the CLI prints the verb's usual output, then `no answer: <reason>` on one line of
stderr, and exits 1. One rule for every verb: 0 answered, 1 no answer, 2 bad input.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["InputError", "NoAnswer", "near_matches"]


class InputError(ValueError):
    """A user input broke a rule: `field=value` and the rule, in one line."""

    def __init__(self, field: str, value: object, rule: str) -> None:
        self.field = field
        self.value = value
        self.rule = rule
        super().__init__(f"{field}={value!r}: {rule}")


class NoAnswer(Exception):
    """A valid question without an answer; the message is the reason, one line (module docstring)."""


def near_matches(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """Candidates that look like `name` (for 'did you mean' messages)."""
    pool = sorted(set(candidates))
    close = difflib.get_close_matches(name, pool, n=n, cutoff=0.5)
    if len(close) < n:
        close += [c for c in pool if name.lower() in c.lower() and c not in close][: n - len(close)]
    return close
