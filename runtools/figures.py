"""Figures as both halves of the project draw them: PNG + PDF with deterministic bytes (save_figure), and the
colours of an ordered series (series_colors). Torch-free; matplotlib is imported on use."""

from __future__ import annotations

import os


SERIES_RANGE = (0.0, 0.8)               # viridis without its last fifth: no yellow on white


def series_colors(n: int) -> list:
    """n colours of one ordered series (a parameter sweep, a set of methods), readable on white."""
    import matplotlib
    cmap = matplotlib.colormaps["viridis"]
    lo, hi = SERIES_RANGE
    return [cmap(lo + (hi - lo) * i / max(n - 1, 1)) for i in range(n)]


def save_figure(fig, out_dir: str, name: str, written: list | None = None, dpi: int = 140,
                top_inches: float | None = None) -> list:
    """Save a matplotlib `fig` as <out_dir>/<name>.png and .pdf (deterministic bytes for the same figure), close
    it, and return (or extend) the list of paths. `top_inches` keeps that much room above the axes (a suptitle)."""
    import matplotlib.pyplot as plt

    written = [] if written is None else written
    if top_inches:
        fig.tight_layout(rect=(0.0, 0.0, 1.0, 1.0 - top_inches / fig.get_figheight()))
    else:
        fig.tight_layout()
    for ext in ("png", "pdf"):
        path = os.path.join(out_dir, f"{name}.{ext}")
        # no creation date in the PDF: redrawing unchanged results rewrites byte-identical files
        fig.savefig(path, dpi=dpi, metadata={"CreationDate": None} if ext == "pdf" else None)
        written.append(path)
    plt.close(fig)
    return written
