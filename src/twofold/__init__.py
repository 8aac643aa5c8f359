"""twofold: predict, measure and compare deep-learning workloads across AI accelerators.

The public API is re-exported here lazily so that `import twofold` stays light (no torch, ray,
onnx or matplotlib, and no NumPy-heavy modules until they are used).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__version__ = "0.2.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "InputError": "twofold.errors",
    "ImportedModel": "twofold.workload.imported",
    "from_onnx": "twofold.frontends",
    "from_torch": "twofold.frontends",
    "load_model": "twofold.frontends",
    "get_chip": "twofold.hardware.catalog",
    "get_system": "twofold.hardware.catalog",
    "list_chips": "twofold.hardware.catalog",
    "list_systems": "twofold.hardware.catalog",
    "system_for": "twofold.hardware.catalog",
    "TrainingEstimate": "twofold.estimate.result",
    "StepArrays": "twofold.estimate.step",
    "StepTerms": "twofold.estimate.step",
    "estimate_training": "twofold.estimate.training",
    "evaluate_layouts": "twofold.estimate.training",
    "estimate_imported_training": "twofold.estimate.training",
    "plan_imported": "twofold.search.imported",
    "InferenceEstimate": "twofold.estimate.inference_result",
    "InferenceLayout": "twofold.estimate.inference_types",
    "InferenceWorkload": "twofold.estimate.inference_types",
    "estimate_inference": "twofold.estimate.inference",
    "InferencePlan": "twofold.search.infer_plan",
    "plan_inference": "twofold.search.infer_plan",
    "Layout": "twofold.parallel.layout",
    "TrainingWorkload": "twofold.parallel.layout",
    "Finetune": "twofold.workload.finetune",
    "check_layout": "twofold.parallel.rules",
    "PlanResult": "twofold.search.plan",
    "plan_training": "twofold.search.plan",
    "compare_targets": "twofold.compare.compare",
    "evaluate_claim": "twofold.compare.claim",
    "parse_claim": "twofold.compare.claim",
    "ModelConfig": "twofold.workload.model",
    "catalog_entry": "twofold.workload.registry",
    "from_hf_config": "twofold.workload.hf_config",
    "get_model": "twofold.workload.registry",
    "list_models": "twofold.workload.registry",
    "load_hf_config": "twofold.workload.hf_config",
    "CalibrationProfile": "twofold.cost",
    "op_times_s": "twofold.cost",
    "ops_time_s": "twofold.cost",
    "profile_for": "twofold.cost",
    "time_breakdown": "twofold.cost",
    "ValidationResult": "twofold.validate.run",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def _lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A package's PEP 562 `__getattr__`: each public name imported from its module on first use
    (here and in `twofold.frontends`)."""

    def attribute(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return attribute


__getattr__ = _lazy_exports("twofold", _EXPORTS)


def __dir__() -> list[str]:
    return __all__
