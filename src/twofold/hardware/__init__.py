"""Hardware: chips, the topology that connects them, and the cited catalog of both.

`get_chip("trn2")`, `system_for(chip)` and friends read the YAML catalog in `hardware/data/` on first
use; importing this package parses nothing.
"""

from twofold.hardware.catalog import (
    Catalog,
    chip_to_dict,
    default_catalog,
    get_chip,
    get_system,
    list_chips,
    list_systems,
    load_catalog,
    price_quote_to_dict,
    single_chip_system,
    system_for,
    system_to_dict,
    systems_for_chip,
)
from twofold.hardware.types import (
    PRECISIONS,
    PRICE_KINDS,
    Chip,
    Figure,
    PriceQuote,
    Source,
    System,
    TopologyLevel,
)

__all__ = [
    "PRECISIONS",
    "PRICE_KINDS",
    "Catalog",
    "Chip",
    "Figure",
    "PriceQuote",
    "Source",
    "System",
    "TopologyLevel",
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
