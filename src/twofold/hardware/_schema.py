"""Parse and validate one hardware catalog YAML file into `Chip` and `System` objects.

A file has three sections: `sources` (key -> {title, url, date}), `chips` and `systems`. Every
mistake is an `InputError` whose field names the file, the entry and the field
(`aws.yaml:chips[trn2].bf16_dense_tflops`), so that a broken entry is found without a traceback.
Rules checked here concern one file; rules across files (unique ids and aliases, default systems
that exist) are checked in `catalog.py`.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from twofold.checks import one_of, positive, positive_int
from twofold.errors import InputError
from twofold.hardware.types import PRICE_QUALITIES, Chip, Figure, PriceQuote, Source, System, TopologyLevel

__all__ = ["FIGURE_FIELDS", "parse_catalog_document"]

# Chip fields that hold a sourced figure, with the Python type of their value. Derived from the
# dataclass so that a numeric field added to `Chip` can be used in YAML at once.
_NUMERIC_ANNOTATIONS = {"float": float, "float | None": float, "int": int, "int | None": int}
FIGURE_FIELDS: dict[str, type] = {
    f.name: _NUMERIC_ANNOTATIONS[str(f.type)]
    for f in dataclasses.fields(Chip)
    if str(f.type) in _NUMERIC_ANNOTATIONS
}
_REQUIRED_FIGURES = ("hbm_capacity_gib", "hbm_bandwidth_tb_s")
_CHIP_STRINGS = ("id", "name", "vendor", "family", "architecture", "default_system")
_CHIP_LISTS = ("aliases", "sources", "notes")
_ARCHITECTURES = ("gpu", "systolic", "cpu")
_FIGURE_KEYS = frozenset({"value", "src", "note", "confidence", "alternatives"})
_ALTERNATIVE_KEYS = frozenset({"value", "src", "note", "confidence"})
_CONFIDENCE = ("high", "medium", "low")
_SYSTEM_KEYS = frozenset(
    {"id", "name", "chip", "aliases", "node_chips", "max_chips", "sources", "levels", "notes"} | {"prices"}
)
# YAML key (as in shared/data/hardware_research.yaml) -> price kind (`types.PRICE_KINDS`).
_PRICE_KEYS = {
    "on_demand": "on-demand",
    "capacity_block": "capacity-block",
    "spot": "spot",
    "committed_1y": "committed-1y",
    "committed_3y": "committed-3y",
}
_QUOTE_KEYS = frozenset(
    {"usd_per_chip_hour", "usd_per_instance_hour", "instance", "instance_chips", "region"}
    | {"as_of", "valid_until", "src", "note", "provider", "quality"}
)
# Published per-chip prices are rounded to a tenth of a cent; a larger gap is a typo.
_PRICE_ROUNDING_USD = 5e-4
_LEVEL_KEYS = frozenset(
    {"name", "kind", "domain_chips", "bandwidth_gb_s_per_chip", "latency_us", "torus_dims", "note", "sources"}
    | {"assumed"}
)
_LEVEL_KINDS = ("switched", "torus", "mesh", "network")


class _Where:
    """Builds the `file:section[entry].field` names that error messages carry."""

    def __init__(self, file: str, section: str, entry: str) -> None:
        self.prefix = f"{file}:{section}[{entry}]"

    def __call__(self, *fields: object) -> str:
        return self.prefix + "".join(f"[{f}]" if isinstance(f, int) else f".{f}" for f in fields)


def _positive(where: str, value: object, kind: type = float) -> float | int:
    if kind is int:
        return positive_int(where, cast(int, value))  # any YAML value: the check refuses a non-integer
    return float(positive(where, cast(float, value), finite=True))


def _string(where: str, value: object, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise InputError(where, value, "must be a non-empty string" if required else "must be a string")
    return value


def _strings(where: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InputError(where, value, "must be a list of non-empty strings")
    return tuple(value)


def _unknown_keys(where: str, raw: Mapping[str, Any], allowed: frozenset[str] | set[str]) -> None:
    extra = sorted(set(raw) - set(allowed))
    if extra:
        raise InputError(where, extra[0], f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _source(where: str, key: str, raw: object) -> Source:
    if not isinstance(raw, dict):
        raise InputError(where, raw, "a source must be a mapping {title, url, date}")
    _unknown_keys(where, raw, {"key", "title", "url", "date"})
    date = raw.get("date", "")
    if isinstance(date, datetime.date):  # YAML reads 2024-12-03 as a date
        date = date.isoformat()
    return Source(
        key=key,
        title=_string(f"{where}.title", raw.get("title")),
        url=_string(f"{where}.url", raw.get("url", ""), required=False),
        date=_string(f"{where}.date", str(date) if date else "", required=False),
    )


def _source_keys(where: str, value: object, known: Mapping[str, Source]) -> tuple[str, ...]:
    keys = _strings(where, value)
    for key in keys:
        if key not in known:
            raise InputError(
                where, key, f"unknown source key (this entry lists: {', '.join(known) or 'none'})"
            )
    return keys


def _figure_value(where: str, value: object, kind: type) -> float | int | None:
    if value is None:
        return None
    return _positive(where, value, kind)


def _figure(where: _Where, name: str, raw: object, sources: Mapping[str, Source]) -> Figure:
    """One sourced figure: `{value, src, note, confidence, alternatives}`; a bare null means unknown."""
    kind = FIGURE_FIELDS[name]
    if raw is None:
        return Figure(value=None)
    if not isinstance(raw, dict):
        raise InputError(
            where(name), raw, "must be a mapping {value, src, note, ...} (every figure needs a source)"
        )
    _unknown_keys(where(name), raw, _FIGURE_KEYS)
    if "value" not in raw:
        raise InputError(where(name, "value"), None, "missing (write `value: null` for an unknown figure)")
    value = _figure_value(where(name, "value"), raw["value"], kind)
    keys = _source_keys(where(name, "src"), raw.get("src"), sources)
    if value is not None and not keys:
        raise InputError(
            where(name, "src"), raw.get("src"), "a figure with a value needs at least one source key"
        )
    confidence = raw.get("confidence", "high")
    one_of(where(name, "confidence"), confidence, _CONFIDENCE)
    alternatives = raw.get("alternatives") or []
    if not isinstance(alternatives, list):
        raise InputError(where(name, "alternatives"), alternatives, "must be a list of {value, src, note}")
    alts: list[dict[str, object]] = []
    for i, alt in enumerate(alternatives):
        if not isinstance(alt, dict):
            raise InputError(where(name, "alternatives", i), alt, "must be a mapping {value, src, note}")
        _unknown_keys(where(name, "alternatives", i), alt, _ALTERNATIVE_KEYS)
        alt_value = _figure_value(where(name, "alternatives", i, "value"), alt.get("value"), kind)
        if alt_value is None:
            raise InputError(where(name, "alternatives", i, "value"), None, "an alternative needs a value")
        alt_keys = _source_keys(where(name, "alternatives", i, "src"), alt.get("src"), sources)
        if not alt_keys:
            raise InputError(
                where(name, "alternatives", i, "src"), alt.get("src"), "needs at least one source key"
            )
        entry: dict[str, object] = {"value": alt_value, "sources": alt_keys}
        entry["note"] = _string(where(name, "alternatives", i, "note"), alt.get("note", ""), required=False)
        alt_confidence = alt.get("confidence", "high")
        if alt_confidence not in _CONFIDENCE:
            raise InputError(
                where(name, "alternatives", i, "confidence"), alt_confidence, "must be high, medium or low"
            )
        entry["confidence"] = alt_confidence
        alts.append(entry)
    return Figure(
        value=value,
        sources=keys,
        note=_string(where(name, "note"), raw.get("note", ""), required=False),
        alternatives=tuple(alts),
        confidence=confidence,
    )


def _chip_sources(where: _Where, raw: object, table: Mapping[str, Source]) -> dict[str, Source]:
    """The chip's `sources`: keys into the file's table, or inline `{key, title, url, date}` mappings."""
    if not isinstance(raw, list) or not raw:
        raise InputError(where("sources"), raw, "must be a non-empty list of source keys")
    out: dict[str, Source] = {}
    for i, item in enumerate(raw):
        if isinstance(item, str):
            if item not in table:
                raise InputError(where("sources", i), item, "not in the file's `sources` table")
            out[item] = table[item]
        elif isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = _source(where("sources", i), item["key"], item)
        else:
            raise InputError(
                where("sources", i), item, "must be a source key or a mapping {key, title, url, date}"
            )
    return out


def _chip(file: str, index: int, raw: object, table: Mapping[str, Source]) -> Chip:
    if not isinstance(raw, dict):
        raise InputError(f"{file}:chips[{index}]", raw, "must be a mapping")
    where = _Where(file, "chips", str(raw.get("id") or f"#{index}"))
    _unknown_keys(where(), raw, {*_CHIP_STRINGS, *_CHIP_LISTS, *FIGURE_FIELDS})
    strings = {name: _string(where(name), raw.get(name)) for name in _CHIP_STRINGS}
    if strings["architecture"] not in _ARCHITECTURES:
        raise InputError(
            where("architecture"), strings["architecture"], f"must be one of {', '.join(_ARCHITECTURES)}"
        )
    sources = _chip_sources(where, raw.get("sources"), table)
    for name in _REQUIRED_FIGURES:
        if not isinstance(raw.get(name), dict) or raw[name].get("value") is None:
            raise InputError(where(name), raw.get(name), "required figure (a mapping with a value and src)")
    figures = {name: _figure(where, name, raw[name], sources) for name in FIGURE_FIELDS if name in raw}
    return Chip(
        **strings,  # type: ignore[arg-type]
        aliases=_strings(where("aliases"), raw.get("aliases")),
        notes=_strings(where("notes"), raw.get("notes")),
        sources=tuple(sources.values()),
        figures=figures,
        **{name: fig.value for name, fig in figures.items()},  # type: ignore[arg-type]
    )


def _level(where: _Where, i: int, raw: object, sources: Mapping[str, Source], inner: int) -> TopologyLevel:
    if not isinstance(raw, dict):
        raise InputError(where("levels", i), raw, "must be a mapping")
    _unknown_keys(where("levels", i), raw, _LEVEL_KEYS)
    kind = raw.get("kind")
    if kind not in _LEVEL_KINDS:
        raise InputError(where("levels", i, "kind"), kind, f"must be one of {', '.join(_LEVEL_KINDS)}")
    domain = raw.get("domain_chips")
    if domain is not None:
        domain = _positive(where("levels", i, "domain_chips"), domain, int)
        if domain <= inner or domain % inner:
            raise InputError(
                where("levels", i, "domain_chips"),
                domain,
                f"must be a multiple of the inner level's {inner}, larger",
            )
    dims = raw.get("torus_dims") or []
    if not isinstance(dims, list):
        raise InputError(where("levels", i, "torus_dims"), dims, "must be a list of positive integers")
    dims = [_positive(where("levels", i, "torus_dims", j), d, int) for j, d in enumerate(dims)]
    if dims and kind != "torus":
        raise InputError(where("levels", i, "torus_dims"), dims, "only a torus level has torus_dims")
    if dims and (domain is None or math.prod(dims) * inner != domain):
        # torus_dims are the dimensions this level adds to the inner one: prod(dims) x inner = domain.
        raise InputError(
            where("levels", i, "torus_dims"),
            dims,
            f"product x inner domain ({inner}) must equal domain_chips={domain}",
        )
    assumed = raw.get("assumed", False)
    if not isinstance(assumed, bool):
        raise InputError(where("levels", i, "assumed"), assumed, "must be true or false")
    if assumed and not str(raw.get("note") or "").strip():
        raise InputError(
            where("levels", i, "note"), None, "an assumed level needs a note saying what is assumed"
        )
    return TopologyLevel(
        assumed=assumed,
        name=_string(where("levels", i, "name"), raw.get("name")),
        kind=kind,
        domain_chips=domain,  # type: ignore[arg-type]
        bandwidth_gb_s_per_chip=_positive(
            where("levels", i, "bandwidth_gb_s_per_chip"), raw.get("bandwidth_gb_s_per_chip")
        ),
        latency_us=_positive(where("levels", i, "latency_us"), raw.get("latency_us")),
        torus_dims=tuple(dims),
        note=_string(where("levels", i, "note"), raw.get("note", ""), required=False),
        sources=_source_keys(where("levels", i, "sources"), raw.get("sources"), sources),
    )


def _date(where: str, value: object) -> str:
    if isinstance(value, datetime.date):  # YAML reads 2025-01-01 as a date
        return value.isoformat()
    return _string(where, None if value is None else str(value), required=False)


def _quote(
    where: _Where, key: str, raw: object, sources: Mapping[str, Source], node_chips: int
) -> PriceQuote:
    """One published price `{usd_per_chip_hour, usd_per_instance_hour, instance, ..., src, note}`;
    `usd_per_chip_hour: null` with a `note` (the reason) for a price that is not published."""
    kind = _PRICE_KEYS[key]
    if not isinstance(raw, dict):
        raise InputError(
            where("prices", key),
            raw,
            "must be a mapping {usd_per_chip_hour, src, ...} (null price: a note why)",
        )
    _unknown_keys(where("prices", key), raw, _QUOTE_KEYS)
    note = _string(where("prices", key, "note"), raw.get("note", ""), required=False)
    per_chip = raw.get("usd_per_chip_hour")
    if per_chip is None:
        if not note.strip():
            raise InputError(where("prices", key, "note"), None, "an unknown price needs a note saying why")
        return PriceQuote(kind=kind, usd_per_chip_hour=None, note=note)  # type: ignore[arg-type]
    per_chip = _positive(where("prices", key, "usd_per_chip_hour"), per_chip)
    quality = raw.get("quality")
    if quality not in PRICE_QUALITIES:
        raise InputError(
            where("prices", key, "quality"),
            quality,
            f"a price needs a quality grade, one of {', '.join(PRICE_QUALITIES)} (prices_power.md)",
        )
    provider = _string(where("prices", key, "provider"), raw.get("provider"))
    keys = _source_keys(where("prices", key, "src"), raw.get("src"), sources)
    if not keys:
        raise InputError(where("prices", key, "src"), raw.get("src"), "a price needs at least one source key")
    chips = raw.get("instance_chips", node_chips)
    chips = _positive(where("prices", key, "instance_chips"), chips, int)
    per_instance = raw.get("usd_per_instance_hour")
    if per_instance is not None:
        per_instance = _positive(where("prices", key, "usd_per_instance_hour"), per_instance)
        if abs(per_instance / chips - per_chip) > _PRICE_ROUNDING_USD + 1e-9:
            raise InputError(
                where("prices", key, "usd_per_chip_hour"),
                per_chip,
                f"must be usd_per_instance_hour / instance_chips = {per_instance} / {chips} (to 1/10 cent)",
            )
    return PriceQuote(
        kind=kind,  # type: ignore[arg-type]
        usd_per_chip_hour=per_chip,
        provider=provider,
        quality=quality,
        usd_per_instance_hour=per_instance,
        instance=_string(where("prices", key, "instance"), raw.get("instance", ""), required=False),
        instance_chips=chips,  # type: ignore[arg-type]
        region=_string(where("prices", key, "region"), raw.get("region", ""), required=False),
        as_of=_date(where("prices", key, "as_of"), raw.get("as_of")),
        valid_until=_date(where("prices", key, "valid_until"), raw.get("valid_until")),
        sources=keys,
        note=note,
    )


def _prices(
    where: _Where, raw: Mapping[str, Any], sources: Mapping[str, Source], node_chips: int
) -> tuple[float | None, str, dict[str, PriceQuote]]:
    """(on-demand USD per chip-hour, its note, quotes by kind), from `prices:`; the on-demand quote
    is required (a null price with a note saying why when none is published)."""
    table = raw.get("prices")
    if not isinstance(table, dict):
        raise InputError(where("prices"), table, f"must be a mapping with keys {', '.join(_PRICE_KEYS)}")
    _unknown_keys(where("prices"), table, frozenset(_PRICE_KEYS))
    if "on_demand" not in table:
        raise InputError(
            where("prices", "on_demand"), None, "required (usd_per_chip_hour: null and a note if unknown)"
        )
    quotes = {_PRICE_KEYS[k]: _quote(where, k, v, sources, node_chips) for k, v in table.items()}
    on_demand = quotes["on-demand"]
    return on_demand.usd_per_chip_hour, on_demand.describe().removeprefix("on-demand: "), quotes


def _system(file: str, index: int, raw: object, table: Mapping[str, Source]) -> System:
    if not isinstance(raw, dict):
        raise InputError(f"{file}:systems[{index}]", raw, "must be a mapping")
    where = _Where(file, "systems", str(raw.get("id") or f"#{index}"))
    _unknown_keys(where(), raw, _SYSTEM_KEYS)
    sources = _chip_sources(where, raw.get("sources"), table)
    node_chips = _positive(where("node_chips"), raw.get("node_chips"), int)
    max_chips = raw.get("max_chips")
    if max_chips is not None:
        max_chips = _positive(where("max_chips"), max_chips, int)
    raw_levels = raw.get("levels")
    if not isinstance(raw_levels, list):
        raise InputError(where("levels"), raw_levels, "must be a list (empty for a single chip)")
    levels: list[TopologyLevel] = []
    inner = 1
    for i, raw_level in enumerate(raw_levels):
        if inner is None:
            raise InputError(
                where("levels", i), raw_level, "no level may follow an unbounded (domain_chips: null) one"
            )
        levels.append(_level(where, i, raw_level, sources, inner))
        inner = levels[-1].domain_chips  # type: ignore[assignment]
    # Chips beyond the outermost bounded domain have no way to talk: max_chips must say so.
    if inner is not None and (max_chips is None or max_chips > inner or node_chips > inner):
        raise InputError(
            where("max_chips"),
            max_chips,
            f"the outermost level holds {inner} chips; max_chips and node_chips must be <= it",
        )
    if max_chips is not None and max_chips < node_chips:
        raise InputError(where("max_chips"), max_chips, f"must be >= node_chips={node_chips}")
    price, price_note, quotes = _prices(where, raw, sources, node_chips)  # type: ignore[arg-type]
    return System(
        id=_string(where("id"), raw.get("id")),
        name=_string(where("name"), raw.get("name")),
        chip_id=_string(where("chip"), raw.get("chip")),
        aliases=_strings(where("aliases"), raw.get("aliases")),
        node_chips=node_chips,  # type: ignore[arg-type]
        max_chips=max_chips,  # type: ignore[arg-type]
        levels=tuple(levels),
        price_usd_per_chip_hour=price,
        price_note=price_note,
        prices=quotes,
        notes=_strings(where("notes"), raw.get("notes")),
        sources=tuple(sources.values()),
    )


def parse_catalog_document(path: Path, doc: object) -> tuple[list[Chip], list[System]]:
    """Chips and systems of one parsed YAML document; `path` names the file in error messages."""
    file = path.name
    if not isinstance(doc, dict):
        raise InputError(
            file, type(doc).__name__, "a catalog file must be a mapping with sources, chips, systems"
        )
    _unknown_keys(file, doc, {"sources", "chips", "systems"})
    raw_sources = doc.get("sources") or {}
    if not isinstance(raw_sources, dict):
        raise InputError(f"{file}:sources", raw_sources, "must be a mapping key -> {title, url, date}")
    table = {str(k): _source(f"{file}:sources[{k}]", str(k), v) for k, v in raw_sources.items()}
    sections: dict[str, list[Any]] = {}
    for section in ("chips", "systems"):
        raw = doc.get(section) or []
        if not isinstance(raw, list):
            raise InputError(f"{file}:{section}", raw, "must be a list")
        sections[section] = raw
    chips = [_chip(file, i, raw, table) for i, raw in enumerate(sections["chips"])]
    systems = [_system(file, i, raw, table) for i, raw in enumerate(sections["systems"])]
    return chips, systems
