"""Parse a vendor claim ("trn2 is 4x trn1") into chip A, a multiplier, chip B and a metric.

The metric: throughput (default; "faster", "training"), perf-per-dollar ("price-performance",
"perf/$", "cheaper"), perf-per-watt ("perf/W", "energy efficient") or latency ("latency",
"responses"). "N x", "N times" and "P% better/more/faster/higher" give multiplier N or 1 + P/100;
"P% cheaper/lower/less" gives 1 / (1 - P/100) (30% lower cost is 1/0.7 = 1.43x perf per dollar).
`compare.claim` checks the parsed claim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from twofold.checks import one_of
from twofold.errors import InputError

__all__ = ["CLAIM_METRICS", "EXPECTED_FORM", "Claim", "parse_claim"]

CLAIM_METRICS: dict[str, str] = {
    "throughput": "throughput_per_chip",
    "perf-per-dollar": "perf_per_dollar",
    "perf-per-watt": "perf_per_watt",
    "latency": "throughput_per_chip",
}
EXPECTED_FORM = (
    'expected "<chip A> is <N>x [metric] <chip B>", e.g. "trn2 is 4x trn1", "trn3 has 2x perf/W of trn2", '
    '"trn2 has 30% better price-performance than h100"'
)

# Ordered: the first pattern found names the metric ("energy efficient" before "efficient").
_METRIC_WORDS: tuple[tuple[str, str], ...] = (
    (
        r"perf(ormance)?\s*(/|per)\s*(w\b|watt)|energy[\s-]*efficien|power[\s-]*efficien|efficien",
        "perf-per-watt",
    ),
    (r"price[\s/-]*perf|perf(ormance)?\s*(/|per)\s*(\$|dollar|usd)|cheaper|\bcost", "perf-per-dollar"),
    (r"latency|respon", "latency"),
    (r"faster|throughput|training|\bspeed", "throughput"),
)
_TIMES = re.compile(r"(-?\d+(?:\.\d+)?)\s*(?:x\b|×|times\b)")
_PERCENT = re.compile(r"(-?\d+(?:\.\d+)?)\s*%\s*(better|more|faster|higher|greater|cheaper|lower|less)")
_TOKEN = re.compile(r"[a-z0-9][a-z0-9._-]*(?:@[a-z0-9][a-z0-9._-]*)?")


@dataclass(frozen=True, kw_only=True, slots=True)
class Claim:
    """`chip_a` is `multiplier` times `chip_b` on `metric` (a key of CLAIM_METRICS)."""

    text: str
    chip_a: str
    chip_b: str
    multiplier: float
    metric: str


def _chips_in(text: str) -> list[str]:
    """Catalog chip ids in the order the text names them; two-word names ("tpu v5p",
    "trainium 2", "a100 40gb") are tried before single words. `chip@system` names a chip in a
    catalog system other than its standard one (checked when the target is built)."""
    from twofold.hardware.catalog import default_catalog

    index = default_catalog().chip_index
    tokens = [t.strip("._-") for t in _TOKEN.findall(text)]
    found: list[str] = []
    i = 0
    while i < len(tokens):
        chip, sep, system = tokens[i].partition("@")
        if sep and chip in index:
            found.append(f"{index[chip].id}@{system}")
            i += 1
            continue
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        pairs = [f"{tokens[i]}-{nxt}", f"{tokens[i]}{nxt}"] if nxt else []
        hit = next((p for p in pairs if p in index), None)
        if hit is not None:
            found.append(index[hit].id)
            i += 2
            continue
        if tokens[i] in index and tokens[i] != "local":
            found.append(index[tokens[i]].id)
        i += 1
    return list(dict.fromkeys(found))


def parse_claim(text: str, *, metric: str | None = None) -> Claim:
    """Parse a claim (module docstring); `metric` overrides the metric the text names."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("claim", text, EXPECTED_FORM)
    low = text.strip().lower()
    chips = _chips_in(low)
    if len(chips) != 2:
        named = f"names {len(chips)} catalog chip(s) ({', '.join(chips) or 'none'})"
        raise InputError("claim", text, f"{named}; {EXPECTED_FORM}")
    times, percent = _TIMES.search(low), _PERCENT.search(low)
    if times is not None:
        multiplier = float(times.group(1))
    elif percent is not None:
        p = float(percent.group(1)) / 100.0
        if p <= 0.0:
            raise InputError("claim", text, "the percentage must be positive ('30% better')")
        if percent.group(2) in ("cheaper", "lower", "less"):
            if p >= 1.0:
                raise InputError("claim", text, "a reduction of 100% or more is not a ratio")
            multiplier = 1.0 / (1.0 - p)
        else:
            multiplier = 1.0 + p
    else:
        raise InputError("claim", text, f"no multiplier ('4x', '2 times', '30% better'); {EXPECTED_FORM}")
    if multiplier <= 0:
        raise InputError("claim", text, "the multiplier must be positive")
    if metric is None:
        metric = next((name for pattern, name in _METRIC_WORDS if re.search(pattern, low)), "throughput")
    else:
        one_of("metric", metric, CLAIM_METRICS)
    return Claim(text=text.strip(), chip_a=chips[0], chip_b=chips[1], multiplier=multiplier, metric=metric)
