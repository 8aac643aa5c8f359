"""The model catalog: one Hugging Face config.json per model under `workload/catalog/`.

Each `<id>.json` is the model's config.json as published (or, for models without one, written in
the form of the closest family) plus a `"_twofold"` object: `source` (HF repository or paper),
`published_params_b` (the parameter count its authors publish, in billions; null when there is
none), `unmodelled_params_b` (the part of that count `ModelConfig` does not describe, e.g. a
vision tower; 0 when absent) and `aliases`. Adding a model is adding one file; `docs/models.md` says how.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from twofold.errors import InputError, near_matches
from twofold.workload.hf_config import from_hf_config, load_hf_config
from twofold.workload.model import ModelConfig

__all__ = [
    "TORCH_SPEC_PREFIX",
    "catalog_entry",
    "catalog_names",
    "get_model",
    "list_models",
    "model_spec_kind",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Entry:
    id: str
    model: ModelConfig
    published_params_b: float | None
    published_active_params_b: float | None
    unmodelled_params_b: float
    params_source: str
    aliases: tuple[str, ...]
    source: str
    note: str


def _parse_entry(model_id: str, text: str) -> _Entry:
    # A malformed shipped file is a bug in twofold, not a user mistake: fail loudly with the file.
    raw = json.loads(text)
    meta = raw.pop("_twofold", None)
    if not isinstance(meta, dict) or not isinstance(meta.get("source"), str) or not meta["source"]:
        raise ValueError(f"catalog/{model_id}.json: '_twofold' must be an object with a 'source'")
    keys = ("published_params_b", "published_active_params_b", "unmodelled_params_b")
    counts = {key: meta.get(key) for key in keys}
    for key, value in counts.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"catalog/{model_id}.json: {key} must be a number or null")
    aliases = meta.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise ValueError(f"catalog/{model_id}.json: aliases must be a list of strings")
    return _Entry(
        id=model_id,
        model=from_hf_config(raw, name=model_id, source=meta["source"]),
        published_params_b=_float_or_none(counts["published_params_b"]),
        published_active_params_b=_float_or_none(counts["published_active_params_b"]),
        unmodelled_params_b=float(counts["unmodelled_params_b"] or 0.0),
        params_source=str(meta.get("params_source", "")),
        aliases=tuple(aliases),
        source=meta["source"],
        note=str(meta.get("note", "")),
    )


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)


@functools.lru_cache(maxsize=1)
def _catalog() -> tuple[dict[str, _Entry], dict[str, str]]:
    """Entries by id, and lower-cased id/alias -> id. Parsed once per process."""
    entries: dict[str, _Entry] = {}
    names: dict[str, str] = {}
    folder = resources.files("twofold.workload").joinpath("catalog")
    for file in sorted(folder.iterdir(), key=lambda f: f.name):
        if not file.name.endswith(".json"):
            continue
        entry = _parse_entry(file.name.removesuffix(".json"), file.read_text(encoding="utf-8"))
        entries[entry.id] = entry
        for key in (entry.id, *entry.aliases):
            other = names.setdefault(key.lower(), entry.id)
            if other != entry.id:
                raise ValueError(f"catalog: name {key!r} is used by both {other} and {entry.id}")
    return entries, names


def catalog_names() -> dict[str, str]:
    """Every catalog id and alias (lower case) -> its catalog id."""
    return dict(_catalog()[1])


def _resolve(name: str) -> _Entry | None:
    entries, names = _catalog()
    model_id = names.get(name.strip().lower())
    return entries[model_id] if model_id is not None else None


def _unknown(name: str) -> InputError:
    entries, names = _catalog()
    pool = [*entries, *(alias for entry in entries.values() for alias in entry.aliases)]
    close = near_matches(name, pool)
    hint = f"did you mean: {', '.join(close)}" if close else f"known: {', '.join(sorted(entries))}"
    return InputError("model", name, f"unknown model (not a catalog id, alias or config.json path); {hint}")


# How a `--model` spec names its model (`model_spec_kind`; `frontends.load_model` loads it).
TORCH_SPEC_PREFIX = "torch:"


def model_spec_kind(spec: str) -> str:
    """What a model spec names, from its spelling alone (nothing is read): "onnx" for a `*.onnx`
    file, "torch" for `torch:package.module:factory` (a callable returning a PyTorch module and its
    example inputs), "catalog" for a catalog id, alias or config.json path (`get_model`)."""
    if spec.startswith(TORCH_SPEC_PREFIX):
        return "torch"
    if spec.lower().endswith(".onnx"):
        return "onnx"
    return "catalog"


def get_model(name_or_path: str) -> ModelConfig:
    """A catalog model by id or alias (case-insensitive), or the model of a config.json path.

    A name that is neither a catalog name nor an existing file or directory is reported as a
    missing file when it ends in `.json`, and otherwise as an unknown model with the closest
    catalog names (so `Qwen/Qwen3-32B` gets suggestions, not "file not found").
    """
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise InputError("model", name_or_path, "must be a catalog id, an alias or a path to a config.json")
    entry = _resolve(name_or_path)
    if entry is not None:
        return entry.model
    path = Path(name_or_path).expanduser()
    if path.exists() or name_or_path.endswith(".json"):
        return load_hf_config(path)
    raise _unknown(name_or_path)


def list_models() -> tuple[ModelConfig, ...]:
    """Every catalog model, sorted by id."""
    entries, _ = _catalog()
    return tuple(entries[model_id].model for model_id in sorted(entries))


def catalog_entry(name: str) -> dict[str, Any]:
    """What the catalog says about a model besides its architecture (a fresh dict per call)."""
    entry = _resolve(name) if isinstance(name, str) else None
    if entry is None:
        raise _unknown(str(name))
    return {
        "id": entry.id,
        "published_params_b": entry.published_params_b,
        "published_active_params_b": entry.published_active_params_b,
        "unmodelled_params_b": entry.unmodelled_params_b,
        "params_source": entry.params_source,
        "aliases": list(entry.aliases),
        "source": entry.source,
        "note": entry.note,
    }
