"""One self-contained HTML file: inline CSS, figures as base64 PNG `data:` URIs, tables as HTML.

Nothing is fetched when the page opens (no scripts, fonts or stylesheets from the network), so it
can be mailed and opened offline. Unknown figures print as "unknown", never as 0. The file is
written atomically: to a temporary file in the target directory, then renamed over the target,
so a failure leaves either the old file or none, never half a report.
"""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from twofold.compare.claim import ClaimResult
from twofold.compare.metrics import metric_names
from twofold.compare.result import CompareResult
from twofold.errors import InputError
from twofold.outputs import check_output_path
from twofold.report import plots
from twofold.report.build import ReportData, pareto_indices

__all__ = ["fmt", "render_html", "write_atomic"]

_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1100px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f0f0f0; } td.l, th.l { text-align: left; }
.unknown { color: #999; font-style: italic; } .holds { color: #1a7f37; } .fails { color: #b42318; }
figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #555; }
img { max-width: 100%; } .note { font-size: 0.85em; color: #555; }
"""


def fmt(value: float | None, spec: str = ".3g") -> str:
    """A number for a table, or the marked word "unknown" for None."""
    if value is None:
        return '<span class="unknown">unknown</span>'
    return html.escape(format(value, spec))


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], left: int = 1) -> str:
    head = "".join(
        f'<th class="{"l" if i < left else ""}">{html.escape(h)}</th>' for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(png_b64: str, caption: str) -> str:
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{png_b64}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _layout(layout: Mapping[str, object] | None) -> str:
    if not layout:
        return '<span class="unknown">no fitting layout</span>'
    keys = ("dp", "tp", "pp", "vp", "cp", "ep")
    parts = [f"{k}{layout[k]}" for k in keys if layout[k] != 1 or k == "dp"]
    return html.escape(
        " ".join(parts) + f" z{layout['zero']} mb{layout['micro_batch']} rc:{layout['recompute']}"
    )


def _compare_section(result: CompareResult) -> str:
    d = result.to_dict()
    w = d["workload"]
    unit = d["unit"]  # "tokens", or "samples" for an imported model without a token input
    one, short, k = unit[:-1], "tok" if unit == "tokens" else "smp", metric_names(unit)
    per_step = f"{w['seq_len']} tokens" if unit == "tokens" else "samples"
    budget = d["tokens"] if unit == "tokens" else d["samples"]
    out = [
        "<h2>Side by side</h2>",
        f"<p>{html.escape(d['model'])}, global batch {w['global_batch']} x {per_step}, "
        f"{html.escape(w['precision'])}; mode {html.escape(d['mode'])}; {one} budget "
        f"{'unknown' if budget is None else format(budget, '.3g')}; prices {html.escape(d['price_kind'])}; "
        f"reference {html.escape(d['reference'])}.</p>",
    ]
    header = [
        "chip",
        "chips",
        "layout",
        "step s",
        f"{unit}/s/chip",
        "MFU",
        "GiB/chip",
        "days",
        f"$/M {unit}",
        "$ total",
        "kWh",
        f"{short}/J",
        f"{short}/$",
        "x ref",
    ]
    rows = []
    for r in d["rows"]:
        rows.append(
            [
                html.escape(r["chip"]),
                str(r["chips"]),
                _layout(r["layout"]),
                fmt(r.get("step_time_s")),
                fmt(r.get(k["thr"]), ",.0f"),
                fmt(r.get("mfu"), ".1%"),
                fmt(r.get("memory_per_chip_gib"), ".1f"),
                fmt(r.get("time_to_train_days"), ".1f"),
                fmt(r.get(k["usd"]), ".3f"),
                fmt(r.get("cost_usd"), ",.0f"),
                fmt(r.get("energy_kwh"), ",.0f"),
                fmt(r.get(k["per_watt"]), ".3g"),
                fmt(r.get(k["per_dollar"]), ",.0f"),
                fmt(r["ratio_to_reference"].get("throughput_per_chip"), ".3f"),
            ]
        )
    out.append(_table(header, rows, left=3))
    out.append(f"<h2>Why: throughput per chip against {html.escape(d['reference'])}, factor by factor</h2>")
    names = list(next((f for r in d["rows"] if (f := r["factors"].get("throughput_per_chip"))), {}).keys())
    frows = []
    for r in d["rows"]:
        f = r["factors"].get("throughput_per_chip") or {}
        frows.append(
            [
                html.escape(r["chip"]),
                *(fmt(f.get(n), ".3f") for n in names),
                fmt(r["ratio_to_reference"].get("throughput_per_chip"), ".3f"),
            ]
        )
    out.append(_table(["chip", *names, "= total"], frows))
    out.append('<p class="note">The factors multiply to the total exactly (docs/compare.md).</p>')
    notes = [n for r in d["rows"] for n in (f"{r['chip']}: {x}" for x in r["notes"])] + list(d["notes"])
    out.extend(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    breakdown = [
        (r["chip"], {k[: -len("_s")]: v for k, v in r["breakdown"].items()})
        for r in d["rows"]
        if r["breakdown"]
    ]
    if breakdown:
        out.append(_figure(plots.breakdown_png(breakdown), "Step-time breakdown per chip (seconds per step)"))
    return "\n".join(out)


def _scaling_section(data: ReportData) -> str:
    points = data.scaling
    unit = points[0].unit if points else "tokens"
    kind = data.compare.price_kind if data.compare is not None else "on-demand"
    series: dict[str, list[tuple[int, float]]] = {}
    for p in points:
        series.setdefault(p.chip, []).append((p.chips, p.per_chip_per_s))
    out = [
        "<h2>Scaling and cost</h2>",
        _figure(plots.scaling_png(series, unit), f"{unit.capitalize()}/s per chip against chip count"),
    ]
    priced, front = pareto_indices(points)
    unpriced = sorted({p.chip for p in points if p.usd_per_million is None})
    missing = f" Price unknown, not placed: {', '.join(unpriced)}." if unpriced else ""
    if priced:
        tuples = [
            (points[i].chip, points[i].chips, points[i].usd_per_million or 0.0, points[i].system_per_s)
            for i in priced
        ]
        order = list(dict.fromkeys(p.chip for p in points))
        out.append(
            _figure(
                plots.pareto_png(tuples, front, order, unit=unit, price_kind=kind),
                "Throughput against cost, Pareto front." + missing,
            )
        )
    else:
        out.append(
            f'<p class="note">No Pareto plot of cost: no compared chip has a price.{html.escape(missing)}</p>'
        )
    rows = [
        [
            html.escape(p.chip),
            str(p.chips),
            fmt(p.per_chip_per_s, ",.0f"),
            fmt(p.system_per_s, ",.0f"),
            fmt(p.usd_per_million, ".3f"),
        ]
        for p in points
    ]
    out.append(_table(["chip", "chips", f"{unit}/s/chip", f"system {unit}/s", f"$/M {unit} ({kind})"], rows))
    return "\n".join(out)


def _claim_section(result: ClaimResult) -> str:
    d = result.to_dict()
    c = d["claim"]
    out = [
        f"<h2>Claim: &ldquo;{html.escape(c['text'])}&rdquo;</h2>",
        f"<p><b>{html.escape(d['verdict'])}</b></p>",
        f"<p>Read as: {html.escape(c['chip_a'])} = {c['multiplier']:.3g} x {html.escape(c['chip_b'])} "
        f"on {html.escape(c['metric'])}; holds where the modelled ratio is at least {d['threshold']:.3g} "
        f"(tolerance {d['tolerance']:.0%}).</p>",
    ]
    labels = [r["workload"]["label"] for r in d["rows"]]
    ratios = [r["ratio"] for r in d["rows"]]
    out.append(
        _figure(
            plots.claim_png(labels, ratios, c["multiplier"], d["threshold"]), "Modelled ratio per workload"
        )
    )
    rows = []
    for r in d["rows"]:
        verdict = "unknown" if r["holds"] is None else ("holds" if r["holds"] else "does not hold")
        cls = "unknown" if r["holds"] is None else ("holds" if r["holds"] else "fails")
        rows.append(
            [
                html.escape(r["workload"]["label"]),
                html.escape(r["workload"]["kind"]),
                fmt(r["ratio"], ".3f"),
                f'<span class="{cls}">{verdict}</span>',
                html.escape(r["dominant_cause"] or ""),
                html.escape(r["secondary_cause"] or ""),
                html.escape(r["note"]),
            ]
        )
    out.append(_table(["workload", "kind", "ratio", "verdict", "main cause", "next cause", "note"], rows))
    if d["summary"]:
        s = d["summary"]
        out.append(
            f"<p>Ratio distribution: min {s['min']:.3f}, median {s['median']:.3f}, max {s['max']:.3f}.</p>"
        )
    out.extend(f'<p class="note">{html.escape(n)}</p>' for n in d["notes"])
    return "\n".join(out)


def render_html(data: ReportData) -> str:
    """The whole page as one string (figures drawn here; needs matplotlib)."""
    plots.require_matplotlib()
    from twofold import __version__

    sections = []
    if data.compare is not None:
        sections.append(_compare_section(data.compare))
    if data.scaling:
        sections.append(_scaling_section(data))
    if data.claim is not None:
        sections.append(_claim_section(data.claim))
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(data.title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(data.title)}</h1>{body}"
        f'<p class="note">Generated by twofold {__version__}: modelled estimates, not measurements.</p>'
        "</body></html>\n"
    )


def write_atomic(path: str | Path, text: str, *, field: str = "out") -> Path:
    """Write `text` to `path` through a temporary file in the same directory and a rename."""
    target = check_output_path(path, field=field)  # the one rule for output paths (`twofold.outputs`)
    directory = target.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise InputError(field, str(path), f"cannot write in {directory}: {exc.strerror}") from None
    umask = os.umask(0)
    os.umask(umask)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; a report is an ordinary file
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise InputError(field, str(path), f"cannot be written: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
