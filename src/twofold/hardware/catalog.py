"""The hardware catalog: chips and systems from the cited YAML files in `hardware/data/`.

Look-ups accept an id or an alias, case-insensitively (`trn2`, `Trainium2`, `h100-sxm`). An unknown
name is an `InputError` listing near matches, never a silent default. The YAML is parsed once, on
first use (`default_catalog()` is cached), so importing this module costs nothing.

`get_chip("local")` and `get_chip("path/to/profile.yaml")` return the measured local device
(`twofold.hardware.local`), which has no catalog system: `system_for` gives it a single-chip one.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from twofold.errors import InputError, near_matches
from twofold.hardware._schema import FIGURE_FIELDS, parse_catalog_document
from twofold.hardware.types import PRICE_KINDS, Chip, Figure, PriceQuote, Source, System, TopologyLevel

__all__ = [
    "DATA_DIR",
    "Catalog",
    "chip_of",
    "chip_to_dict",
    "default_catalog",
    "get_chip",
    "get_system",
    "list_chips",
    "list_systems",
    "load_catalog",
    "price_quote_to_dict",
    "single_chip_system",
    "system_for",
    "system_to_dict",
    "systems_for_chip",
]

DATA_DIR = Path(__file__).parent / "data"
# Listing order of the shipped files; files not named here follow, sorted by name.
_FILE_ORDER = ("aws", "nvidia", "google", "amd", "intel", "apple")


@dataclass(frozen=True, kw_only=True, slots=True)
class Catalog:
    """Chips and systems in file order, and their look-up tables (lower-case id or alias -> entry)."""

    chips: tuple[Chip, ...]
    systems: tuple[System, ...]
    chip_index: Mapping[str, Chip]
    system_index: Mapping[str, System]


def _read_yaml(path: Path) -> object:
    import yaml  # imported here so that `import twofold.hardware` stays free of PyYAML

    from twofold.yaml_strict import UniqueKeyLoader  # C parser where present (~10x faster)

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError("catalog", str(path), f"cannot read file ({exc.strerror})") from exc
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - safe; refuses duplicate keys
    except yaml.YAMLError as exc:
        raise InputError("catalog", str(path), f"not valid YAML ({exc})") from exc


def _index(kind: str, entries: Iterable[Chip | System], origin: Mapping[str, str]) -> dict[str, Any]:
    """Lower-case id and alias -> entry; a name claimed twice is an error naming both entries."""
    index: dict[str, Any] = {}
    for entry in entries:
        for name in (entry.id, *entry.aliases):
            key = name.lower()
            other = index.get(key)
            if other is not None and other is not entry:
                raise InputError(
                    f"{origin[entry.id]}:{kind}[{entry.id}]",
                    name,
                    f"id/alias already used by {kind} {other.id}",
                )
            index[key] = entry
    return index


def load_catalog(paths: Iterable[str | Path] | None = None) -> Catalog:
    """Parse and validate catalog files (default: every `*.yaml` in `DATA_DIR`).

    Checks across files: ids and aliases are unique (case-insensitive), every system holds a known
    chip, every chip's `default_system` exists and holds that chip.
    """
    if paths is None:
        rank = {stem: i for i, stem in enumerate(_FILE_ORDER)}
        files = sorted(DATA_DIR.glob("*.yaml"), key=lambda p: (rank.get(p.stem, len(rank)), p.name))
    else:
        files = [Path(p) for p in paths]
    chips: list[Chip] = []
    systems: list[System] = []
    origin: dict[str, str] = {}
    for path in files:
        file_chips, file_systems = parse_catalog_document(path, _read_yaml(path))
        entries: tuple[Chip | System, ...] = (*file_chips, *file_systems)
        for entry in entries:
            origin.setdefault(entry.id, path.name)
        chips += file_chips
        systems += file_systems
    chip_index = _index("chips", chips, origin)
    system_index = _index("systems", systems, origin)
    for system in systems:
        chip = chip_index.get(system.chip_id.lower())
        if chip is None or chip.id != system.chip_id:
            raise InputError(
                f"{origin[system.id]}:systems[{system.id}].chip", system.chip_id, "no chip with this id"
            )
    for chip in chips:
        default = system_index.get(chip.default_system.lower())
        if default is None or default.id != chip.default_system:
            raise InputError(
                f"{origin[chip.id]}:chips[{chip.id}].default_system",
                chip.default_system,
                "no system with this id",
            )
        if default.chip_id != chip.id:
            raise InputError(
                f"{origin[chip.id]}:chips[{chip.id}].default_system",
                chip.default_system,
                f"holds {default.chip_id}",
            )
    return Catalog(
        chips=tuple(chips), systems=tuple(systems), chip_index=chip_index, system_index=system_index
    )


@functools.cache
def default_catalog() -> Catalog:
    """The shipped catalog, parsed on first use and cached."""
    return load_catalog()


def _unknown(kind: str, name: str, index: Mapping[str, Chip | System]) -> InputError:
    ids = list(dict.fromkeys(entry.id for entry in index.values()))
    close = list(dict.fromkeys(index[m].id for m in near_matches(name.lower(), index)))
    if close:
        return InputError(kind, name, f"unknown {kind}; did you mean: {', '.join(close)}?")
    return InputError(kind, name, f"unknown {kind}; known: {', '.join(ids)}")


def get_chip(name: str) -> Chip:
    """A chip by id or alias; "local" or a `.yaml`/`.yml` path loads a measured profile instead."""
    if not isinstance(name, str) or not name.strip():
        raise InputError("chip", name, "must be a chip id or alias, 'local', or a profile .yaml path")
    key = name.strip()
    if key.lower() == "local" or key.lower().endswith((".yaml", ".yml")):
        from twofold.hardware.local import load_local_chip  # measured profiles need the cost package

        return load_local_chip(key)
    catalog = default_catalog()
    chip = catalog.chip_index.get(key.lower())
    if chip is None:
        raise _unknown("chip", key, catalog.chip_index)
    return chip


def list_chips() -> tuple[Chip, ...]:
    """Every catalogued chip, in file order (AWS, NVIDIA, Google, AMD, Intel, Apple)."""
    return default_catalog().chips


def get_system(name: str) -> System:
    """A system by id or alias (`trn2.48xlarge`, `hgx-h100`, `dgx-h100`)."""
    if not isinstance(name, str) or not name.strip():
        raise InputError("system", name, "must be a system id or alias")
    catalog = default_catalog()
    system = catalog.system_index.get(name.strip().lower())
    if system is None:
        raise _unknown("system", name.strip(), catalog.system_index)
    return system


def list_systems() -> tuple[System, ...]:
    """Every catalogued system, in file order."""
    return default_catalog().systems


def systems_for_chip(chip: Chip | str) -> tuple[System, ...]:
    """The catalogued systems that hold a chip (default system first)."""
    the_chip = get_chip(chip) if isinstance(chip, str) else chip
    found = [s for s in list_systems() if s.chip_id == the_chip.id]
    return tuple(sorted(found, key=lambda s: s.id != the_chip.default_system))


def single_chip_system(chip: Chip) -> System:
    """One chip and no interconnect: the system of a chip that ships in none (the local device)."""
    return System(
        id=f"{chip.id}-single",
        name=f"single {chip.name}",
        chip_id=chip.id,
        node_chips=1,
        max_chips=1,
        levels=(),
        price_note="no price: a single device outside the catalog",
        chip=chip,
        notes=("built for a chip without a default system; holds one chip, no interconnect",),
    )


def system_for(chip: Chip, system: str | None = None) -> System:
    """The chip's default system, or the named one (which must hold this chip). A chip that is not
    the catalog's entry of its id (a what-if built with `dataclasses.replace`) travels in the
    system (`System.chip`), so that estimates price that chip and not the catalog one."""
    if system is None:
        if not chip.default_system:
            return single_chip_system(chip)
        return _carrying(get_system(chip.default_system), chip)
    found = get_system(system)
    if found.chip_id != chip.id:
        options = ", ".join(s.id for s in list_systems() if s.chip_id == chip.id) or "none in the catalog"
        raise InputError(
            "system", system, f"holds {found.chip_id}, not {chip.id} (systems for {chip.id}: {options})"
        )
    return _carrying(found, chip)


def _carrying(system: System, chip: Chip) -> System:
    """`system`, holding `chip` itself when `chip` differs from the catalog's entry of its id."""
    index = default_catalog().chip_index
    if index.get(chip.id) == chip:
        return system
    return replace(system, chip=chip)


def chip_of(system: System) -> Chip:
    """The chip a system holds: the one it was built with (`System.chip`), else the catalog's."""
    return system.chip if system.chip is not None else get_chip(system.chip_id)


def _source_dict(source: Source) -> dict[str, str]:
    return {"key": source.key, "title": source.title, "url": source.url, "date": source.date}


def _figure_dict(figure: Figure) -> dict[str, Any]:
    return {
        "value": figure.value,
        "sources": list(figure.sources),
        "note": figure.note,
        "confidence": figure.confidence,
        "alternatives": [dict(alt) for alt in figure.alternatives],
    }


def chip_to_dict(chip: Chip) -> dict[str, Any]:
    """A JSON-ready record of a chip: identity, every spec field, sources and per-figure provenance."""
    return {
        "id": chip.id,
        "aliases": list(chip.aliases),
        "vendor": chip.vendor,
        "name": chip.name,
        "family": chip.family,
        "architecture": chip.architecture,
        **{name: getattr(chip, name) for name in FIGURE_FIELDS},
        "default_system": chip.default_system,
        "notes": list(chip.notes),
        "sources": [_source_dict(s) for s in chip.sources],
        "figures": {name: _figure_dict(fig) for name, fig in chip.figures.items()},
    }


def _level_dict(level: TopologyLevel) -> dict[str, Any]:
    return {
        "name": level.name,
        "kind": level.kind,
        "domain_chips": level.domain_chips,
        "bandwidth_gb_s_per_chip": level.bandwidth_gb_s_per_chip,
        "latency_us": level.latency_us,
        "torus_dims": list(level.torus_dims),
        "assumed": level.assumed,
        "note": level.note,
        "sources": list(level.sources),
    }


def price_quote_to_dict(quote: PriceQuote) -> dict[str, Any]:
    """A JSON-ready record of one published price (`usd_per_chip_hour` null: unknown, `note` why)."""
    return {
        "kind": quote.kind,
        "usd_per_chip_hour": quote.usd_per_chip_hour,
        "quality": quote.quality or None,
        "provider": quote.provider,
        "usd_per_instance_hour": quote.usd_per_instance_hour,
        "instance": quote.instance,
        "instance_chips": quote.instance_chips,
        "region": quote.region,
        "as_of": quote.as_of,
        "valid_until": quote.valid_until,
        "sources": list(quote.sources),
        "note": quote.note,
    }


def system_to_dict(system: System) -> dict[str, Any]:
    """A JSON-ready record of a system with its topology levels, innermost first."""
    return {
        "id": system.id,
        "aliases": list(system.aliases),
        "name": system.name,
        "chip_id": system.chip_id,
        "node_chips": system.node_chips,
        "max_chips": system.max_chips,
        "price_usd_per_chip_hour": system.price_usd_per_chip_hour,
        "price_note": system.price_note,
        "prices": {kind: price_quote_to_dict(system.price(kind)) for kind in PRICE_KINDS},
        "levels": [_level_dict(level) for level in system.levels],
        "notes": list(system.notes),
        "sources": [_source_dict(s) for s in system.sources],
    }
