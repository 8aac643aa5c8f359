"""Typed, validated access to a parsed config.json (`workload.hf_config` reads each family with it):
every missing required key or malformed value becomes an `InputError` naming the key."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from twofold.errors import InputError

__all__ = ["ConfigReader"]

_REQUIRED: Any = object()  # sentinel: the key must be present


class ConfigReader:
    """Typed access to one config.json; every bad value becomes an InputError naming its key."""

    def __init__(self, config: Mapping[str, Any], model_type: str) -> None:
        self.config = config
        self.model_type = model_type

    def has(self, key: str) -> bool:
        return key in self.config

    def _get(self, key: str, default: Any) -> Any:
        if key in self.config:
            return self.config[key]
        if default is _REQUIRED:
            raise InputError(key, None, f"required key missing from a model_type={self.model_type!r} config")
        return default

    def int(self, key: str, default: Any = _REQUIRED, *, minimum: int = 1) -> Any:
        """An integer >= minimum; `default` when the key is absent or null (unless required)."""
        value = self._get(key, default)
        if value is None and default is not _REQUIRED:
            return default
        if key not in self.config:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(key, value, "must be an integer")
        if value < minimum:
            rule = "must be positive" if minimum == 1 else f"must be >= {minimum}"
            raise InputError(key, value, rule)
        return value

    def nullable_int(self, key: str, why_null: str) -> builtins.int | None:
        """A key that must be present but may be null (e.g. DeepSeek's q_lora_rank)."""
        if key not in self.config:
            raise InputError(
                key, None, f"required key missing from a model_type={self.model_type!r} config ({why_null})"
            )
        return self.int(key, None)

    def bool(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise InputError(key, value, "must be true or false")
        return value

    def str(self, key: str, default: str) -> str:
        value = self._get(key, default)
        if not isinstance(value, str) or not value:
            raise InputError(key, value, "must be a non-empty string")
        return value

    def mapping(self, key: builtins.str) -> Mapping[builtins.str, Any]:
        value = self._get(key, {})
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise InputError(key, value, "must be a JSON object")
        return value
