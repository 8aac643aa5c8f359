"""YAML loading that refuses a duplicate mapping key instead of letting the last one win.

PyYAML's loaders keep the last of two equal keys (`chip_counts: [8]` then `chip_counts: [64]` in
one mapping reads as `[64]`), so a spec that is "validated whole" would silently drop half of
what its author wrote. These loaders subclass the safe loaders (C-accelerated where libyaml is
present) and raise `DuplicateKeyError`, a `yaml.YAMLError`, naming the key and both lines; every
caller that already turns a `yaml.YAMLError` into an `InputError` (exit 2) reports it unchanged.
Merge keys (`<<: *anchor`) may still be overridden by an explicit key, as YAML 1.1 intends.

PyYAML is imported lazily by the callers (`import twofold.sweep` and `twofold.hardware` stay
free of it), so this module is imported inside their loading functions.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["DuplicateKeyError", "UniqueKeyLoader", "load"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(yaml.YAMLError):
    """A mapping names the same key twice: "duplicate key 'chip_counts' on line 7 (first on line 4)"."""


class _UniqueKeys:
    """Mixin over a safe constructor: check the keys of each mapping node before building it."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)  # type: ignore[attr-defined]
                line = key_node.start_mark.line + 1
                try:
                    seen = first.get(key)
                except TypeError:  # an unhashable key: the base constructor reports it
                    continue
                if seen is not None:
                    raise DuplicateKeyError(f"duplicate key {key!r} on line {line} (first on line {seen})")
                first[key] = line
        return super().construct_mapping(node, deep=deep)  # type: ignore[misc]


class UniqueKeyLoader(_UniqueKeys, getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader (libyaml's C parser where installed), refusing duplicate keys."""


def load(text: str) -> Any:
    """`yaml.safe_load` that raises `DuplicateKeyError` on a duplicate mapping key."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a safe loader
