"""The weak-error curve figures: Theorem A.2 (i) (fig1, SGD vs the SGD-SDE), Theorem A.2 (ii) (fig2, PGPO vs its
candidate SDEs) and the order-2 modified equations (fig7); each draws every weak_error panel of its study."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt

from runtools.figures import save_figure
from sde.figures.common import G_ORDER, at_T, finish
from sde.plotting import G_TITLE, MARKER_NOTE, SDE_LABEL, fit_text, mult_text, plot_curve


def fig_theorem_sgd(res, study, out_dir, written):
    panels = res.of_kind(study, "weak_error")
    n_cols = min(len(panels), 2)
    n_rows = math.ceil(len(panels) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(6.2 * n_cols, 5.4 * n_rows), squeeze=False)
    axes = [ax for row in axes for ax in row]
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    colors = {"sq_norm": "#1f77b4", "linear": "#ff7f0e", "fluctuation": "#2ca02c"}
    for ax, p in zip(axes, panels):
        curves = [c for c in at_T(p["items"]) if c["sde"] == "sgd_sde"]
        for c in curves:
            plot_curve(ax, c, style={"color": colors[c["g"]]}, label=f"{G_TITLE[c['g']]}: {fit_text(c)}")
        how = "exact moments" if curves[0]["method"] == "closed_form" else \
            f"coupled Monte Carlo, {min(curves[0]['n_paths_per_eta'])}-{max(curves[0]['n_paths_per_eta'])} paths"
        finish(ax, curves, f"SGD vs SGD-SDE, {p['spec']['problem']}, T={p['spec']['T']:g} ({how})")
    verdicts = [c["verdict"] for p in panels for c in at_T(p["items"]) if c["sde"] == "sgd_sde"]
    fig.suptitle(f"Theorem A.2 (i): SGD vs the SGD-SDE - {verdicts.count('order 1')} of {len(verdicts)} curves "
                 f"order 1 at T (the max over k <= N: table)\n({MARKER_NOTE})", fontsize=10)
    save_figure(fig, out_dir, "fig1_theorem_sgd", written, top_inches=0.6)


def fig_theorem_pgpo(res, study, out_dir, written):
    panels = res.of_kind(study, "weak_error")
    tests = ["sq_norm", "fluctuation"]
    fig, axes = plt.subplots(len(panels), 2, figsize=(11.5, 4.9 * len(panels)), squeeze=False)
    for row, p in zip(axes, panels):
        for ax, g in zip(row, tests):
            curves = [c for c in at_T(p["items"]) if c["g"] == g]
            for c in curves:
                plot_curve(ax, c, label=f"PGPO vs {SDE_LABEL[c['sde']]}: {fit_text(c)}")
            m = curves[0]["multiplier_spec"]
            finish(ax, curves, f"{p['spec']['problem']}, T={p['spec']['T']:g}: {G_TITLE[g]}  (m = min(1 + "
                                f"{m['alpha']:.3g} I, {m['m_max']:g}))")
    fluct = [c for p in panels for c in at_T(p["items"]) if c["g"] == "fluctuation"]
    tracked = sorted({SDE_LABEL[c["sde"]] for c in fluct if c["verdict"] in ("order 1", "order 2")})
    plateau = sorted({SDE_LABEL[c["sde"]] for c in fluct if c["verdict"] == "converges elsewhere"})
    fig.suptitle(f"Theorem A.2 (ii): which SDE models PGPO? On the fluctuation, order 1 or 2: "
                 f"{', '.join(tracked) or 'none'}; plateau: {', '.join(plateau) or 'none'}\n({MARKER_NOTE})",
                 fontsize=10)
    save_figure(fig, out_dir, "fig2_theorem_pgpo", written, top_inches=0.6)


def fig_modified_equation(res, study, out_dir, written):
    """Rows: panels; columns: the order-2 drift with the matched diffusion, and with the paper's."""
    panels = res.of_kind(study, "weak_error")
    cols = ["matched_2", "paper_2"]
    n_rows = math.ceil(len(panels) / 2)                # two panels (four axes) per row
    fig, grid = plt.subplots(n_rows, 4, figsize=(22.0, 6.2 * n_rows), squeeze=False)
    pairs = [grid[i // 2][2 * (i % 2): 2 * (i % 2) + 2] for i in range(len(panels))]
    for ax in [a for row in grid for a in row][2 * len(panels):]:
        ax.set_visible(False)
    colors = {"sq_norm": "#1f77b4", "loss": "#ff7f0e", "cross": "#2ca02c", "linear": "#9467bd"}
    for row, p in zip(pairs, panels):
        for ax, sde in zip(row, cols):
            curves = [c for c in at_T(p["items"]) if c["sde"] == sde]
            for c in sorted(curves, key=lambda c: G_ORDER.index(c["g"])):
                plot_curve(ax, c, style={"color": colors[c["g"]]}, label=f"{G_TITLE[c['g']]}: {fit_text(c)}")
            base = [c for c in at_T(p["items"]) if c["sde"] == "matched" and c["g"] == "sq_norm"]
            for c in base:                                  # the order-1 matched SDE, for scale
                plot_curve(ax, c, style={"color": "#b0b0b0", "marker": "."},
                           label=f"{G_TITLE['sq_norm']} vs order-1 matched SDE: {fit_text(c)}")
            how = "exact moments" if p["spec"]["method"] == "closed_form" else "coupled Monte Carlo"
            finish(ax, curves + base, f"{p['spec']['problem']}, {mult_text(curves[0])} ({how})\n"
                                       f"PGPO vs {SDE_LABEL[sde]}", slopes=(1.0, 2.0))
    tally = {s: [c["verdict"] for p in panels for c in at_T(p["items"]) if c["sde"] == s] for s in cols}
    fig.suptitle("Order-2 modified equations on fixed test functions (Definition A.1): order 2 on "
                 f"{tally['matched_2'].count('order 2')} of {len(tally['matched_2'])} curves with the matched diffusion, "
                 f"{tally['paper_2'].count('order 2')} of {len(tally['paper_2'])} with the paper's "
                 f"(order 1 on {tally['paper_2'].count('order 1')})\n({MARKER_NOTE})", fontsize=10)
    save_figure(fig, out_dir, "fig7_modified_equation", written, top_inches=0.7)
