"""Bring your own model: PyTorch modules and ONNX files as twofold operator lists.

torch and onnx are imported inside the functions that need them, never at import time.
"""

from twofold.frontends.input_shapes import parse_input_shapes
from twofold.frontends.onnx_import import from_onnx
from twofold.frontends.torch_import import from_torch
from twofold.workload.imported import ImportedModel

__all__ = ["ImportedModel", "from_onnx", "from_torch", "parse_input_shapes"]
