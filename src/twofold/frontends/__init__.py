"""Bring your own model: PyTorch modules and ONNX files as twofold operator lists, and `load_model`
for every kind of model spec.

torch and onnx are imported inside the functions that need them, never at import time; the names
here resolve lazily, so that `load_model` of a catalog model (every CLI verb) loads no importer.
"""

from __future__ import annotations

from twofold import _lazy_exports

_EXPORTS: dict[str, str] = {
    "ImportedModel": "twofold.workload.imported",
    "from_onnx": "twofold.frontends.onnx_import",
    "from_torch": "twofold.frontends.torch_import",
    "load_model": "twofold.frontends.load",
    "parse_input_shapes": "twofold.frontends.input_shapes",
}

__all__ = sorted(_EXPORTS)


__getattr__ = _lazy_exports("twofold.frontends", _EXPORTS)


def __dir__() -> list[str]:
    return __all__
