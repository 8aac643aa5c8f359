"""The default token budget of a training run: the Chinchilla-optimal 20 tokens per parameter.

Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models", arXiv 2203.15556. Active
parameters for MoE models, an assumption since that fit is for dense models; all the parameters of
an imported model (its experts, if any, are not known as such). The search's time-to-train
objective and `compare` use it when no `tokens` is given.
"""

from __future__ import annotations

from twofold.workload.imported import ImportedModel
from twofold.workload.model import ModelConfig
from twofold.workload.params import param_counts

__all__ = ["CHINCHILLA_TOKENS_PER_PARAM", "default_tokens"]

CHINCHILLA_TOKENS_PER_PARAM = 20.0


def default_tokens(model: ModelConfig | ImportedModel) -> float:
    """Chinchilla-optimal token budget: 20 x (active) parameters (module docstring); all the
    parameters of an imported model (its experts, if any, are not known as such)."""
    if isinstance(model, ImportedModel):
        return CHINCHILLA_TOKENS_PER_PARAM * float(model.param_count)
    return CHINCHILLA_TOKENS_PER_PARAM * float(param_counts(model).active)
