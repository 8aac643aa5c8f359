"""`--input-shape name=1x3x224x224`: the shapes of an ONNX model's dynamic inputs."""

from __future__ import annotations

import re
from collections.abc import Iterable

from twofold.errors import InputError

__all__ = ["parse_input_shapes"]

_FORM = "must look like NAME=1x3x224x224 (positive integers separated by x or ,)"


def parse_input_shapes(items: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """`["pixel_values=1x3x224x224", "mask=1,128"]` -> `{"pixel_values": (1, 3, 224, 224), ...}`.

    The name is everything before the last `=` (ONNX names may contain `=`, never in a shape).
    """
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items:
        name, sep, dims = item.rpartition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError("input_shape", item, _FORM)
        parts = dims.replace(",", "x").split("x")
        if not all(re.fullmatch(r"\s*[0-9]+\s*", p) and int(p) > 0 for p in parts):
            raise InputError("input_shape", item, _FORM)
        if name in shapes:
            raise InputError("input_shape", item, f"input {name!r} is given twice")
        shapes[name] = tuple(int(p) for p in parts)
    return shapes
