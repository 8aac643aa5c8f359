"""`TrainingModel`: what the estimator and the search read from a model, whatever it came from.

Two kinds of model satisfy it: a catalog architecture (`workload.model.ModelConfig`, from a catalog
name or a Hugging Face config.json), whose operators the estimator builds for any sharding
(`workload.graph`), and an imported one (`workload.imported.ImportedModel`, a PyTorch trace or an
ONNX graph), whose operators were recorded for one micro-batch on one chip. Both go through one
estimator (`estimate.training.evaluate_layouts`) and one search (`search.plan.plan_training`); what
differs is said here, by the model:

- `parallel_axes`: the layout axes the model can be split along (`PARALLEL_AXES`). A catalog model
  takes every one; an imported model only those that replicate or shard it whole (data parallel,
  ZeRO 0-3 and hybrid sharding), since tensor, pipeline, context and expert parallelism of an
  arbitrary graph are not derived. A layout that sets an axis the model does not take is refused
  naming the axis (`parallel.rules.check_layout`), and the search never enumerates it.
- `num_layers`: the repeated blocks, what a pipeline stage holds a share of and what FSDP wraps one
  unit of (PyTorch's `transformer_auto_wrap_policy`: one unit per block).
- `fixed_micro_batch` / `fixed_seq_len`: what the model's operators were recorded with (None: free).
- `counts_tokens`: whether throughput is counted in tokens (False: samples, a model without a token
  input such as a CNN).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["ALL_AXES", "DATA_PARALLEL_AXES", "PARALLEL_AXES", "TrainingModel"]

# Every axis of `parallel.layout.Layout` a model may or may not take (sp: sequence parallelism; etp:
# expert tensor parallelism; shard: hybrid sharding within ZeRO-3).
PARALLEL_AXES: tuple[str, ...] = (
    "dp",
    "zero",
    "shard",
    "tp",
    "sp",
    "pp",
    "vp",
    "cp",
    "ep",
    "etp",
    "recompute",
)
ALL_AXES: frozenset[str] = frozenset(PARALLEL_AXES)
# Replicas or shards of the whole model: what any operator graph admits.
DATA_PARALLEL_AXES: frozenset[str] = frozenset({"dp", "zero", "shard"})


@runtime_checkable
class TrainingModel(Protocol):
    """A model the training estimator and the search take (module docstring)."""

    @property
    def name(self) -> str: ...

    @property
    def num_layers(self) -> int: ...

    @property
    def parallel_axes(self) -> frozenset[str]: ...

    @property
    def fixed_micro_batch(self) -> int | None: ...

    @property
    def fixed_seq_len(self) -> int | None: ...

    @property
    def counts_tokens(self) -> bool: ...
