"""A sweep's results as tables: the best chip per model and scale, and ratios between chips.

`compare_by_scale` groups the stored results of a spec by (model, scale), a scale being every axis
but the hardware (chip count, sequence length or tokens, batch, precision), and puts each
hardware's per-chip throughput of its best plan side by side. `render_html` writes that as one
self-contained HTML page (inline CSS, no scripts, no external assets), with the distribution of
each chip's throughput ratio to the first chip of the spec, and plots of both as inline PNGs
(`report.plots`; without matplotlib the page keeps its tables and says why it has no plots).
`spec_from_rows` rebuilds specs from a store's rows, for a report on a store without its spec.

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

__all__ = [
    "NOT_RUN",
    "ScaleRow",
    "compare_by_scale",
    "hardware_label",
    "ratio_summary",
    "ratio_values",
    "render_html",
    "spec_from_rows",
    "write_html",
]

_METRIC = {"training": "tokens_per_s_per_chip", "inference": "output_tokens_per_s_per_chip"}
_PLOTTED_MODELS = 12  # one bar chart per model; more are in the tables only
_SCALE_FIELDS = ("chips", "seq_len", "global_batch", "input_tokens", "output_tokens", "precision")


# Why a hardware has no figure when the store holds no row for its scenario.
NOT_RUN = "not run yet"


@dataclass(frozen=True, kw_only=True, slots=True)
class ScaleRow:
    """One model at one scale: each hardware's figure (None: no fitting plan) and the best one."""

    model: str
    scale: tuple[tuple[str, Any], ...]  # (field, value) for the scale fields the mode uses
    values: tuple[tuple[str, float | None, str], ...]  # (hardware label, figure, why no figure)
    best: str | None

    @property
    def not_run(self) -> tuple[str, ...]:
        """The hardware whose scenario the store does not hold (an interrupted or unfinished sweep)."""
        return tuple(label for label, value, why in self.values if value is None and why == NOT_RUN)

    @property
    def verdict(self) -> str:
        """The "best" cell: the best hardware; "not run" when nothing that ran has a figure and some
        scenarios never ran (never "none fits", which would claim they were planned and did not fit);
        "none fits" only when every scenario ran; the best of those run, saying so, otherwise."""
        missing = self.not_run
        if self.best is None:
            return "not run" if missing else "none fits"
        return f"{self.best} (of those run)" if missing else self.best

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            **dict(self.scale),
            "best": self.best,
            "per_chip": {label: value for label, value, _ in self.values},
            "not_run": list(self.not_run),
        }


def hardware_label(spec: SweepSpec) -> dict[tuple[str, str], str]:
    """(chip, system) -> column label: the chip id, or the system id when a chip is in twice."""
    chips = [chip for chip, _ in spec.hardware]
    return {(c, s): (s if chips.count(c) > 1 else c) for c, s in spec.hardware}


def _figure(row: StoredResult | None, mode: str) -> tuple[float | None, str]:
    if row is None:
        return None, NOT_RUN
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


def ratio_values(rows: Sequence[ScaleRow]) -> tuple[str | None, dict[str, list[float]]]:
    """(reference, per hardware its figure over the reference's in every row where both have one);
    the reference is the first hardware of the spec."""
    if not rows:
        return None, {}
    reference = rows[0].values[0][0]
    ratios: dict[str, list[float]] = {label: [] for label, _, _ in rows[0].values[1:]}
    for row in rows:
        figures = {label: value for label, value, _ in row.values}
        ref = figures.get(reference)
        for label in ratios:
            value = figures.get(label)
            if ref and value is not None:
                ratios[label].append(value / ref)
    return reference, ratios


def ratio_summary(rows: Sequence[ScaleRow]) -> list[dict[str, Any]]:
    """Per hardware, its figure over the first hardware's, across every row where both have one:
    count, min, median, max, and in how many rows the ratio is at least 2."""
    reference, ratios = ratio_values(rows)
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
.note{color:#555;font-size:.9em}img{max-width:100%}figcaption{font-size:.85em;color:#555}
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
        parts.append(f"<td class='l'>{e(row.verdict)}</td></tr>")
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
    parts += _plots(spec, table_rows, labels, metric)
    parts.append("</body></html>\n")
    return "".join(parts)


def _plots(spec: SweepSpec, table_rows: Sequence[ScaleRow], labels: Sequence[str], metric: str) -> list[str]:
    """The figures as inline PNGs (`report.plots`), or a note when matplotlib is missing: the
    tables above already hold every number, so a sweep report never fails for want of plots."""
    from twofold.errors import InputError
    from twofold.report import plots

    if not table_rows:
        return []
    try:
        plots.require_matplotlib()
    except InputError:
        return [
            "<p class='note'>Plots need matplotlib, which is not installed "
            "(pip install 'twofold[report]'); the tables above hold every figure.</p>"
        ]
    parts = ["<h2>Plots</h2>"]
    reference, ratios = ratio_values(table_rows)
    if reference is not None and any(ratios.values()):
        png = plots.ratio_distribution_png(ratios, reference)
        parts.append(_img(png, f"{metric} over {reference}'s, one dot per model and scale"))
    models = list(dict.fromkeys(r.model for r in table_rows))
    for model in models[:_PLOTTED_MODELS]:
        mine = [r for r in table_rows if r.model == model]
        varying = [f for f, _ in mine[0].scale if len({dict(r.scale)[f] for r in mine}) > 1]
        scales = [", ".join(f"{f}={dict(r.scale)[f]}" for f in varying) or "all" for r in mine]
        series = {
            label: [dict((lb, v) for lb, v, _ in r.values).get(label) for r in mine] for label in labels
        }
        parts.append(_img(plots.sweep_bars_png(model, scales, series, metric), f"{model}: {metric} per chip"))
    if len(models) > _PLOTTED_MODELS:
        parts.append(
            f"<p class='note'>{len(models) - _PLOTTED_MODELS} more models are in the tables only.</p>"
        )
    return parts


def _img(png_b64: str, caption: str) -> str:
    e = html.escape(caption)
    return (
        f"<figure><img alt='{e}' src='data:image/png;base64,{png_b64}'><figcaption>{e}</figcaption></figure>"
    )


def spec_from_rows(rows: Sequence[StoredResult], *, name: str = "stored") -> list[SweepSpec]:
    """Specs that cover stored rows (`twofold report --sweep DB` without the spec): one per mode,
    objective, top_k and latency targets, each axis the values stored, sorted (a store keeps no
    spec order, so the ratio reference is the first chip id alphabetically; give the spec for its
    order). A combination no row holds shows as "not run yet" in the report."""
    groups: dict[tuple[Any, ...], list[Scenario]] = {}
    for r in sorted(rows, key=lambda r: r.scenario.canonical_json()):
        s = r.scenario
        groups.setdefault((s.mode, s.objective, s.top_k, s.max_ttft_ms, s.max_tpot_ms), []).append(s)
    specs = []
    for (mode, objective, top_k, ttft, tpot), scenarios in groups.items():

        def axis(field: str, group: list[Scenario] = scenarios) -> tuple[Any, ...]:
            return tuple(dict.fromkeys(getattr(s, field) for s in group))

        models = tuple(sorted(dict.fromkeys((s.model, s.model_digest) for s in scenarios)))
        fields = ("seq_len", "global_batch") if mode == "training" else ("input_tokens", "output_tokens")
        targets = tuple((k, v) for k, v in (("max_ttft_ms", ttft), ("max_tpot_ms", tpot)) if v is not None)
        specs.append(
            SweepSpec(
                name=name if len(groups) == 1 else f"{name} ({mode}, {objective})",
                mode=mode,
                objective=objective,
                top_k=top_k,
                models=tuple(m for m, _ in models),
                model_digests=tuple(d for _, d in models),
                hardware=tuple(sorted(dict.fromkeys((s.chip, s.system) for s in scenarios))),
                chip_counts=tuple(sorted(axis("chips"))),
                precisions=tuple(sorted(axis("precision"))),
                workload_axes=tuple((f, tuple(sorted(axis(f)))) for f in fields),
                targets=targets,
            )
        )
    return specs


def write_html(path: str | Path, spec: SweepSpec, rows: Sequence[StoredResult], *, version: str) -> Path:
    """Write `render_html` to `path` (its folder must exist: `twofold.outputs`), atomically through
    the report package's writer, so a failure leaves the old file or none; returns the path written."""
    from twofold.report.html import write_atomic

    return write_atomic(Path(path).expanduser(), render_html(spec, rows, version=version), field="report")
