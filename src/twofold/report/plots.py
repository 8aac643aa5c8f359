"""Report figures as base64 PNG strings, drawn with matplotlib's object API (no pyplot state).

matplotlib is the optional `report` extra, imported on first use: without it every function here
raises an `InputError` saying to install `twofold[report]`. Unknown values (a chip without a price)
are left out of a plot and named in its caption by the caller, never drawn as zero.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

from twofold.errors import InputError

__all__ = [
    "breakdown_png",
    "claim_png",
    "pareto_png",
    "ratio_distribution_png",
    "require_matplotlib",
    "scaling_png",
    "sweep_bars_png",
]

# Grouping of the estimate's breakdown terms for the stacked bars (seconds per step).
BREAKDOWN_GROUPS: dict[str, tuple[str, ...]] = {
    "compute": ("compute_forward", "compute_backward"),
    "recompute": ("compute_recompute",),
    "tensor/context/expert comm": ("tp", "cp", "ep"),
    "pipeline comm + bubble": ("pp", "bubble"),
    "data-parallel comm": ("dp", "fsdp"),
    "optimizer + other": ("optimizer", "other"),
}
_COLOURS = ("#4c72b0", "#8172b2", "#dd8452", "#c44e52", "#55a868", "#937860")


def require_matplotlib() -> Any:
    """The `matplotlib.figure.Figure` class; InputError when matplotlib is not installed."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise InputError(
            "report",
            "matplotlib",
            f"is not installed ({exc}); install it with: pip install 'twofold[report]'",
        ) from exc
    return Figure


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def breakdown_png(rows: Sequence[tuple[str, Mapping[str, float]]]) -> str:
    """Stacked horizontal bars: each chip's step time split into BREAKDOWN_GROUPS (seconds)."""
    figure_cls = require_matplotlib()
    fig = figure_cls(figsize=(8.0, 0.7 * len(rows) + 1.6))
    ax = fig.subplots()
    labels = [label for label, _ in rows]
    left = [0.0] * len(rows)
    for (group, terms), colour in zip(BREAKDOWN_GROUPS.items(), _COLOURS, strict=True):
        widths = [sum(float(b.get(t, 0.0)) for t in terms) for _, b in rows]
        ax.barh(labels, widths, left=left, color=colour, label=group)
        left = [lft + w for lft, w in zip(left, widths, strict=True)]
    ax.set_xlabel("seconds per training step")
    ax.invert_yaxis()
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, fontsize=8, frameon=False)
    ax.set_title("Step time breakdown (best layout per chip)")
    return _png(fig)


def scaling_png(series: Mapping[str, Sequence[tuple[int, float]]], unit: str = "tokens") -> str:
    """Throughput per chip (`unit`/s: tokens or samples) against chip count, one line per chip
    (log2 x axis)."""
    figure_cls = require_matplotlib()
    fig = figure_cls(figsize=(8.0, 4.2))
    ax = fig.subplots()
    for label, points in series.items():
        if points:
            xs, ys = zip(*sorted(points), strict=True)
            ax.plot(xs, ys, marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("chips")
    ax.set_ylabel(f"{unit}/s per chip")
    ax.set_ylim(bottom=0)
    ax.set_title("Scaling with chip count (best layout at each count)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def pareto_png(
    points: Sequence[tuple[str, int, float, float]],
    front: Sequence[int],
    chip_order: Sequence[str] = (),
    *,
    unit: str = "tokens",
    price_kind: str = "on-demand",
) -> str:
    """System throughput against $ per million `unit` (tokens or samples) at `price_kind` prices;
    `points` are (chip, chips, usd_per_m, per second) and `front` indexes the Pareto-optimal ones
    (cheaper and faster than every other point). `chip_order` keeps each chip's colour the same as
    in the scaling plot."""
    figure_cls = require_matplotlib()
    fig = figure_cls(figsize=(8.0, 4.4))
    ax = fig.subplots()
    order = list(dict.fromkeys([*chip_order, *(p[0] for p in points)]))
    for label in dict.fromkeys(p[0] for p in points):
        colour = f"C{order.index(label) % 10}"  # matplotlib's default cycle, as in scaling_png
        mine = [p for p in points if p[0] == label]
        ax.scatter([p[2] for p in mine], [p[3] for p in mine], color=colour, label=label, s=30)
        for p in mine:
            ax.annotate(str(p[1]), (p[2], p[3]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if front:
        best = sorted((points[i] for i in front), key=lambda p: p[2])
        ax.step(
            [p[2] for p in best],
            [p[3] for p in best],
            where="post",
            color="black",
            lw=1,
            label="Pareto front",
        )
    ax.set_xlabel(f"$ per million {unit} ({price_kind})")
    ax.set_ylabel(f"system {unit}/s")
    ax.set_yscale("log")
    ax.set_title("Throughput against cost (labels: chip count)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def claim_png(labels: Sequence[str], ratios: Sequence[float | None], claimed: float, threshold: float) -> str:
    """Modelled ratio per workload as bars, the claimed multiplier and the threshold as lines."""
    figure_cls = require_matplotlib()
    fig = figure_cls(figsize=(8.0, 0.4 * len(labels) + 1.8))
    ax = fig.subplots()
    known = [i for i, r in enumerate(ratios) if r is not None]
    ax.barh(
        known,
        [float(ratios[i]) for i in known],  # type: ignore[arg-type]
        color=["#55a868" if float(ratios[i]) >= threshold else "#c44e52" for i in known],  # type: ignore[arg-type]
    )
    for i, r in enumerate(ratios):
        text, x = ("unknown", 0.0) if r is None else (f"{r:.2f}x", r)
        ax.annotate(text, (x, i), fontsize=8, xytext=(3, -3), textcoords="offset points")
    ax.set_yticks(range(len(labels)), list(labels))
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.axvline(claimed, color="black", lw=1.5, label=f"claimed {claimed:.3g}x")
    ax.axvline(threshold, color="black", lw=1, ls="--", label=f"holds at >= {threshold:.3g}x")
    ax.set_xlabel("modelled ratio (chip A / chip B)")
    ax.set_title("Claim: modelled ratio per workload")
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def sweep_bars_png(
    model: str, scales: Sequence[str], series: Mapping[str, Sequence[float | None]], metric: str
) -> str:
    """One model of a sweep: grouped bars, one group per scale, one bar per chip (its best plan's
    `metric`); a chip without a figure at a scale has no bar there, never a zero-height one."""
    figure_cls = require_matplotlib()
    fig = figure_cls(figsize=(8.0, 3.6))
    ax = fig.subplots()
    width = 0.8 / max(len(series), 1)
    for j, (label, values) in enumerate(series.items()):
        known = [(i, v) for i, v in enumerate(values) if v is not None]
        ax.bar(
            [i - 0.4 + width * (j + 0.5) for i, _ in known],
            [float(v) for _, v in known],
            width=width,
            color=f"C{j % 10}",
            label=label,
        )
    ax.set_xticks(range(len(scales)), list(scales), fontsize=8)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"{model}: best plan per chip and scale")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def ratio_distribution_png(ratios: Mapping[str, Sequence[float]], reference: str) -> str:
    """Each chip's ratio to `reference` across a sweep's scales: a box per chip with every ratio as
    a dot, and lines at 1x and 2x (log y axis: 0.5x and 2x are as far from parity)."""
    figure_cls = require_matplotlib()
    labels = [label for label, values in ratios.items() if values]
    fig = figure_cls(figsize=(8.0, 3.8))
    ax = fig.subplots()
    if labels:
        ax.boxplot([list(ratios[label]) for label in labels], showfliers=False)
        for i, label in enumerate(labels, start=1):
            ax.scatter([i] * len(ratios[label]), ratios[label], s=12, color="black", alpha=0.6, zorder=3)
        ax.set_xticks(range(1, len(labels) + 1), labels)
    ax.axhline(1.0, color="grey", lw=1, ls="--", label="1x (parity)")
    ax.axhline(2.0, color="#c44e52", lw=1, ls=":", label="2x")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks([0.25, 0.5, 1.0, 2.0, 4.0, 8.0])
    ax.set_ylabel(f"ratio to {reference}")
    ax.set_title(f"Ratio to {reference} across the sweep's models and scales")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)
