"""Validation: predict every shipped published measurement and report the error.

`validate()` runs the whole dataset (or a source / hardware family) and returns a frozen
`ValidationResult`; `load_rows()` gives the typed dataset; `express()` says how (or why not) a row
maps onto a chip, a system, a model and a layout.
"""

from twofold.validate.dataset import PublishedRow, load_rows
from twofold.validate.mapping import Case, Unexpressible, express
from twofold.validate.run import RowResult, Summary, ValidationResult, validate

__all__ = [
    "Case",
    "PublishedRow",
    "RowResult",
    "Summary",
    "Unexpressible",
    "ValidationResult",
    "express",
    "load_rows",
    "validate",
]
