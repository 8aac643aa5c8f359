"""A sweep's results as tables: the best chip per model and scale, and ratios between chips.

`compare_by_scale` groups the stored results of a spec by (model, scale), a scale being every axis
but the hardware (chip count, sequence length or tokens, batch, precision), and puts each
hardware's per-chip throughput of its best plan side by side. `render_html` writes that as one
self-contained HTML page (inline CSS, no scripts, no external assets), with the distribution of
each chip's throughput ratio to the first chip of the spec.

The figure compared is the best plan's throughput per chip: `tokens_per_s_per_chip` for training,
`output_tokens_per_s_per_chip` for inference. A scenario whose plan found no fitting layout, or
that was rejected, has no figure and shows why instead of a number.
"""

from __future__ import annotations

import html
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twofold.sweep.spec import Scenario, SweepSpec
from twofold.sweep.store import StoredResult

__all__ = ["ScaleRow", "compare_by_scale", "hardware_label", "ratio_summary", "render_html", "write_html"]

_METRIC = {"training": "tokens_per_s_per_chip", "inference": "output_tokens_per_s_per_chip"}
_SCALE_FIELDS = ("chips", "seq_len", "global_batch", "input_tokens", "output_tokens", "precision")


@dataclass(frozen=True, kw_only=True)
class ScaleRow:
    """One model at one scale: each hardware's figure (None: no fitting plan) and the best one."""

    model: str
    scale: tuple[tuple[str, Any], ...]  # (field, value) for the scale fields the mode uses
    values: tuple[tuple[str, float | None, str], ...]  # (hardware label, figure, why no figure)
    best: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            **dict(self.scale),
            "best": self.best,
            "per_chip": {label: value for label, value, _ in self.values},
        }


def hardware_label(spec: SweepSpec) -> dict[tuple[str, str], str]:
    """(chip, system) -> column label: the chip id, or the system id when a chip is in twice."""
    chips = [chip for chip, _ in spec.hardware]
    return {(c, s): (s if chips.count(c) > 1 else c) for c, s in spec.hardware}


def _figure(row: StoredResult | None, mode: str) -> tuple[float | None, str]:
    if row is None:
        return None, "not run yet"
    if row.status != "ok" or row.result is None:
        return None, row.message or row.status
    best = row.result.get("best")
    if best is None:
        reasons = row.result.get("explanation") or ["no fitting layout"]
        return None, str(reasons[0])
    value = best.get(_METRIC[mode])
    return (float(value), "") if value is not None else (None, "no figure")


def compare_by_scale(spec: SweepSpec, rows: Sequence[StoredResult]) -> list[ScaleRow]:
    """Rows in spec order; `rows` are the store's results for the spec (any order, any subset)."""
    by_scenario: dict[Scenario, StoredResult] = {r.scenario: r for r in rows}
    labels = hardware_label(spec)
    groups: dict[tuple[str, tuple[tuple[str, Any], ...]], list[tuple[str, float | None, str]]] = {}
    for scenario in spec.scenarios():
        d = scenario.to_dict()
        scale = tuple((f, d[f]) for f in _SCALE_FIELDS if d[f] is not None)
        value, why = _figure(by_scenario.get(scenario), spec.mode)
        label = labels[(scenario.chip, scenario.system)]
        groups.setdefault((scenario.model, scale), []).append((label, value, why))
    out = []
    for (model, scale), values in groups.items():
        scored = [(v, label) for label, v, _ in values if v is not None]
        out.append(
            ScaleRow(model=model, scale=scale, values=tuple(values), best=max(scored)[1] if scored else None)
        )
    return out


def ratio_summary(rows: Sequence[ScaleRow]) -> list[dict[str, Any]]:
    """Per hardware, its figure over the first hardware's, across every row where both have one:
    count, min, median, max, and in how many rows the ratio is at least 2."""
    if not rows:
        return []
    reference = rows[0].values[0][0]
    ratios: dict[str, list[float]] = {label: [] for label, _, _ in rows[0].values[1:]}
    for row in rows:
        figures = {label: value for label, value, _ in row.values}
        ref = figures.get(reference)
        for label in ratios:
            if ref and figures.get(label) is not None:
                ratios[label].append(figures[label] / ref)
    return [
        {
            "hardware": label,
            "reference": reference,
            "count": len(values),
            "min": min(values) if values else None,
            "median": statistics.median(values) if values else None,
            "max": max(values) if values else None,
            "at_least_2x": sum(v >= 2 for v in values),
        }
        for label, values in ratios.items()
    ]


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f3f3f3}td.l{text-align:left}td.best{background:#dff0d8;font-weight:bold}
td.none{color:#999;font-size:.85em;text-align:left}
"""


def _num(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:,.{digits}g}" if value < 1000 else f"{value:,.0f}"


def render_html(spec: SweepSpec, rows: Sequence[StoredResult], *, version: str) -> str:
    """The whole report as one HTML string."""
    table_rows = compare_by_scale(spec, rows)
    labels = list(dict.fromkeys(hardware_label(spec).values()))
    metric = _METRIC[spec.mode]
    done = sum(r.status == "ok" for r in rows)
    e = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>twofold sweep {e(spec.name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Sweep {e(spec.name)}</h1>",
        f"<p>{spec.mode} sweep, objective {e(spec.objective)}; {len(rows)} of {len(spec)} scenarios "
        f"stored ({done} planned, {len(rows) - done} rejected); twofold {e(version)}.</p>",
        f"<h2>Best chip per model and scale</h2><p>{e(metric)} of each chip's best plan; "
        "the best chip of each row is highlighted.</p>",
        "<table><tr><th>model</th>",
    ]
    scale_fields = [f for f, _ in table_rows[0].scale] if table_rows else []
    parts += [f"<th>{e(f)}</th>" for f in scale_fields]
    parts += [f"<th>{e(label)}</th>" for label in labels] + ["<th>best</th></tr>"]
    for row in table_rows:
        parts.append(f"<tr><td class='l'>{e(row.model)}</td>")
        parts += [f"<td>{e(str(v))}</td>" for _, v in row.scale]
        for label, value, why in row.values:
            if value is None:
                parts.append(f"<td class='none'>{e(why)}</td>")
            else:
                cls = " class='best'" if label == row.best else ""
                parts.append(f"<td{cls}>{_num(value)}</td>")
        parts.append(f"<td class='l'>{e(row.best or 'none fits')}</td></tr>")
    parts.append("</table>")
    summary = ratio_summary(table_rows)
    if summary:
        ref = e(summary[0]["reference"])
        parts += [
            f"<h2>Ratio to {ref}</h2><p>{e(metric)} over {ref}'s, across the rows where both plan.</p>",
            "<table><tr><th>chip</th><th>rows</th><th>min</th><th>median</th><th>max</th>"
            "<th>&ge; 2x</th></tr>",
        ]
        for s in summary:
            parts.append(
                f"<tr><td class='l'>{e(s['hardware'])}</td><td>{s['count']}</td><td>{_num(s['min'])}</td>"
                f"<td>{_num(s['median'])}</td><td>{_num(s['max'])}</td><td>{s['at_least_2x']}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_html(path: str | Path, spec: SweepSpec, rows: Sequence[StoredResult], *, version: str) -> Path:
    """Write `render_html` to `path` (its folder is created), atomically through the report
    package's writer, so a failure leaves the old file or none; returns the path written."""
    from twofold.errors import InputError
    from twofold.report.html import write_atomic

    path = Path(path).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_atomic(path, render_html(spec, rows, version=version))
    except OSError as exc:
        raise InputError("report", str(path), f"cannot be written ({exc.strerror})") from None
