"""Workloads: model architectures (catalog, Hugging Face config.json import) and their operators."""

from twofold.workload.hf_config import from_hf_config, load_hf_config
from twofold.workload.model import ModelConfig
from twofold.workload.registry import catalog_entry, get_model, list_models

__all__ = [
    "ModelConfig",
    "catalog_entry",
    "from_hf_config",
    "get_model",
    "list_models",
    "load_hf_config",
]
