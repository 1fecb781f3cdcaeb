"""The metastable-escape figure (fig9): mean first-passage times vs m and vs 1/eta, from every escape panel of the
escape study."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from runtools.figures import save_figure, series_colors
from sde.escape import KRAMERS_MIN, kramers_where_valid
from sde.stats import Z95


def fig_escape(res, study, out_dir, written):
    """(a) MFPT vs constant m at each eta; (b) MFPT vs 1/eta; discrete Monte Carlo (95 % CI) against the exact MFPT
    of both SDEs and Kramers."""
    rows = [it for p in res.of_kind(study, "escape") for it in p["items"]]
    if not rows:
        return
    fig, axes = plt.subplots(1, 2, figsize=(13.0, 5.6))
    etas = sorted({r["eta"] for r in rows})
    ax = axes[0]
    for eta, col in zip(etas, series_colors(len(etas))):
        sub = sorted([r for r in rows if r["eta"] == eta and r["constant"] is not None], key=lambda r: r["constant"])
        cs = [r["constant"] for r in sub]
        ax.errorbar(cs, [r["discrete"]["mean"] for r in sub], yerr=[Z95 * r["discrete"]["stderr"] for r in sub],
                    fmt="o", color=col, ms=5, capsize=2, label=f"discrete PGPO, $\\eta$ = {eta:g}")
        ax.plot(cs, [r["exact"]["matched"] for r in sub], "-", color=col, lw=1.2)
        ax.plot(cs, [r["exact"]["paper"] for r in sub], "--", color=col, lw=1.2)
        for sde in ("matched", "paper"):               # NaN (not drawn) outside Kramers' range
            ax.plot(cs, [kramers_where_valid(r, sde) or np.nan for r in sub], ":", color=col, lw=0.8)
    ax.plot([], [], "k-", label="matched SDE (exact MFPT)")
    ax.plot([], [], "k--", label="paper SDE (exact MFPT)")
    ax.plot([], [], "k:", lw=0.8, label=rf"Kramers / Eyring (where $\Delta V / T_{{eff}} \geq$ {KRAMERS_MIN:g})")
    ax.set_yscale("log")
    ax.set_xlabel("constant multiplier m")
    ax.set_ylabel("mean first-passage time (SDE time)")
    ax.set_title("(a) escape time vs m (constant)", fontsize=9.5)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)
    ax = axes[1]
    specs = []
    for r in rows:
        key = (r["constant"], None if r["constant"] is not None else r["multiplier_spec"]["shape"])
        if key not in specs:
            specs.append(key)
    cmap = plt.get_cmap("tab10")
    for i, (c, shape) in enumerate(specs):
        sub = sorted([r for r in rows if r["constant"] == c and (c is not None or r["multiplier_spec"]["shape"] == shape)],
                     key=lambda r: r["eta"])
        x = [1.0 / r["eta"] for r in sub]
        lab = f"m = {c:g}" if c is not None else f"{'clipped' if shape == 'clipped_linear' else 'smooth'} m(I)"
        ax.errorbar(x, [r["discrete"]["mean"] for r in sub], yerr=[Z95 * r["discrete"]["stderr"] for r in sub],
                    fmt="o", color=cmap(i), ms=4, capsize=2, label=f"{lab}: discrete")
        ax.plot(x, [r["exact"]["matched"] for r in sub], "-", color=cmap(i), lw=1.1)
        ax.plot(x, [r["exact"]["paper"] for r in sub], "--", color=cmap(i), lw=1.1)
    ax.set_yscale("log")
    ax.set_xlabel(r"$1/\eta$")
    ax.set_ylabel("mean first-passage time (SDE time)")
    ax.set_title(r"(b) escape time vs $1/\eta$ (solid: matched SDE, dashed: paper SDE, exact)", fontsize=9.5)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)
    rat_m = [r["discrete"]["mean"] / r["exact"]["matched"] for r in rows]
    rat_p = [r["discrete"]["mean"] / r["exact"]["paper"] for r in rows]
    cens = max(r["discrete"]["censored_fraction"] for r in rows)
    fig.suptitle(f"Metastable escape on the double well: discrete / matched-SDE MFPT from {min(rat_m):.2f} to "
                 f"{max(rat_m):.2f}; discrete / paper-SDE MFPT from {min(rat_p):.2g} to {max(rat_p):.2g}; censored paths at most "
                 f"{100 * cens:.2g} %\n(discrete: Monte Carlo, 95 % CI; SDEs: exact quadrature; Kramers for constant m)",
                 fontsize=10)
    save_figure(fig, out_dir, "fig9_escape", written)
