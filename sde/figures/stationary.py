"""The stationary-regime figure (fig8): the floors vs c in closed form, and the floor differences vs eta, from every
stationary panel of the stationary study."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from runtools.figures import save_figure, series_colors
from sde.figures.common import finish
from sde.plotting import LEGEND_FONTSIZE, MARKER_NOTE, SDE_LABEL, SDE_STYLE, fit_text, mult_text, plot_curve


def fig_stationary(res, study, out_dir, written):
    """(a) the floor vs c at one eta (closed form), with the leading-order lines; (b) the floor difference vs eta for
    every constant c and SDE; (c) Monte Carlo panels: the floor difference vs eta."""
    from sde.stationary import leading_floor
    from sde.problems import get_problem
    panels = res.of_kind(study, "stationary")
    exact = [p for p in panels if p["spec"]["method"] == "closed_form"]
    mc = [p for p in panels if p["spec"]["method"] != "closed_form"]
    n_ax = len(mc) + (2 if exact else 0)
    n_rows = math.ceil(n_ax / 2)
    fig, axes = plt.subplots(n_rows, 2, figsize=(13.0, 6.0 * n_rows), squeeze=False)
    axes = [ax for row in axes for ax in row]
    for ax in axes[n_ax:]:
        ax.set_visible(False)
    lines = []
    if exact:
        p = exact[0]
        eta_f = p["spec"]["floor_eta"] or min(p["spec"]["etas"])
        j = p["spec"]["etas"].index(eta_f)
        loss = [c for c in p["items"] if c["g"] == "loss"]
        cs = sorted({c["constant"] for c in loss})
        ax = axes.pop(0)
        disc = [next(c for c in loss if c["constant"] == k)["floor_discrete"][j] for k in cs]
        ax.plot(cs, disc, "ko-", lw=1.5, label="discrete PGPO (exact)")
        for sde in p["spec"]["sdes"]:
            ys = [next(c for c in loss if c["constant"] == k and c["sde"] == sde)["floor_sde"][j] for k in cs]
            ax.plot(cs, ys, marker=SDE_STYLE[sde]["marker"], color=SDE_STYLE[sde]["color"],
                    label=f"{SDE_LABEL[sde]} (exact)")
        prob = get_problem(p["spec"]["problem"])
        grid = np.linspace(min(cs), max(cs), 100)
        for sde in ("matched", "paper"):
            ax.plot(grid, [leading_floor(prob, eta_f, k, sde) for k in grid], color=SDE_STYLE[sde]["color"],
                    ls=":", lw=0.9, label=rf"leading order: $\eta\,{'c' if sde == 'matched' else '/c'}\,"
                                          r"\mathrm{tr}(\Sigma)/4$")
        ax.set_xlabel("constant multiplier c")
        ax.set_ylabel(r"stationary floor $E_\infty L - L^*$")
        ax.set_yscale("log")
        ax.set_title(f"(a) {p['spec']['problem']}, $\\eta$ = {eta_f:g}: floor vs c", fontsize=9.5)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=LEGEND_FONTSIZE)
        i4 = cs.index(max(cs))
        lines.append(f"at c={max(cs):g}, $\\eta$ = {eta_f:g}: discrete {disc[i4]:.3g}, matched "
                     f"{next(c for c in loss if c['constant'] == max(cs) and c['sde'] == 'matched')['floor_sde'][j]:.3g}"
                     f", paper {next(c for c in loss if c['constant'] == max(cs) and c['sde'] == 'paper')['floor_sde'][j]:.3g}")
        ax = axes.pop(0)
        palette = series_colors(len(cs))
        for c in loss:
            plot_curve(ax, c, style={"color": palette[cs.index(c["constant"])], "marker": SDE_STYLE[c["sde"]]["marker"],
                                     "ls": {"matched": "-", "paper": "-.", "matched_2": ":"}.get(c["sde"], "-")},
                       label=f"c={c['constant']:g}, {c['sde']}: {fit_text(c)}")
        finish(ax, loss, "(b) floor(discrete) - floor(SDE) vs $\\eta$, exact (marker and line = SDE, colour = c)",
                slopes=(1.0, 2.0))
        ax.set_ylabel("|floor difference|")
    for ax, p in zip(axes, mc):
        curves = [c for c in p["items"] if c["g"] == "loss"]
        palette = series_colors(len(curves))
        for i, c in enumerate(curves):
            plot_curve(ax, c, style={"color": palette[i], "marker": SDE_STYLE[c["sde"]]["marker"],
                                     "ls": "-" if c["sde"] == "matched" else "-."},
                       label=f"{mult_text(c)}, {c['sde']}: {fit_text(c)}")
        burns = sorted({round(c["burn_in"], 1) for c in curves})
        finish(ax, curves, f"{p['spec']['problem']}: floor difference (coupled MC, time average over "
                            f"{p['spec']['window']:g} after a burn-in of {'/'.join(f'{b:g}' for b in burns)})",
                slopes=(1.0, 2.0))
        ax.set_ylabel("|floor difference|")
    allc = [c for p in panels for c in p["items"] if c["g"] == "loss" and (c.get("constant") or 0) != 1]

    def tally(sde):
        vs = [c["verdict"] for c in allc if c["sde"] == sde]
        return ", ".join(f"{v} {vs.count(v)}" for v in sorted(set(vs))) + f" of {len(vs)}" if vs else "n/a"
    fig.suptitle("Stationary floors ($g = L$, $m \\neq 1$), verdicts on floor(discrete) - floor(SDE):\n"
                 f"matched SDE: {tally('matched')}; paper SDE: {tally('paper')}; order-2 drift: {tally('matched_2')}\n"
                 + "; ".join(lines) + f"\n({MARKER_NOTE})", fontsize=9.5)
    save_figure(fig, out_dir, "fig8_stationary", written, top_inches=0.9)
