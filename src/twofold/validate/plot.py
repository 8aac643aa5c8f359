"""Predicted against published, log-log, one colour per hardware family (matplotlib, imported lazily)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from twofold.errors import InputError
from twofold.outputs import check_output_path
from twofold.validate.run import ValidationResult

__all__ = ["PLOT_SUFFIXES", "plot_predicted_vs_published", "require_matplotlib"]

# The formats matplotlib's Agg, PDF, PS and SVG backends write (Pillow, a matplotlib dependency,
# writes the JPEG); the suffix picks the format.
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".eps", ".ps")


def require_matplotlib(path: Path | str) -> None:
    """`InputError` naming what to install unless matplotlib imports."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError("plot", str(path), "needs matplotlib: pip install 'twofold[report]'") from None


def plot_predicted_vs_published(result: ValidationResult, path: Path | str) -> Path:
    """Write a scatter of predicted vs published figures (each row relative to its own unit, so
    rows of different metrics share the axes) with the y = x line and +-15% bands, to `path`
    (`twofold.outputs` rules, a suffix of `PLOT_SUFFIXES`) through a temporary file and a rename."""
    out = check_output_path(path, field="plot", suffixes=PLOT_SUFFIXES)
    require_matplotlib(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result.rows if r.predicted > 0]
    if not rows:
        raise InputError("--plot", str(path), "no predicted rows to plot")
    fig, ax = plt.subplots(figsize=(7, 6))
    for family in sorted({r.family for r in rows}):
        sel = [r for r in rows if r.family == family]
        ax.scatter(
            [r.published for r in sel], [r.predicted for r in sel], s=14, label=f"{family} ({len(sel)})"
        )
    low = min(min(r.published, r.predicted) for r in rows) / 1.5
    high = max(max(r.published, r.predicted) for r in rows) * 1.5
    ax.plot([low, high], [low, high], color="black", linewidth=0.8)
    for factor in (0.85, 1.15):
        ax.plot([low, high], [low * factor, high * factor], color="grey", linewidth=0.5, linestyle="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("published (row's own unit)")
    ax.set_ylabel("predicted by twofold")
    overall = result.overall
    title = "twofold validate"
    if overall is not None:
        title += f": training-throughput MAPE {overall.mean_ape_pct:.1f}% over {overall.rows} rows"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
        os.replace(tmp, out)
    except OSError as exc:
        raise InputError("plot", str(path), f"cannot be written: {exc.strerror}") from None
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return out
