"""The multiplier figures: shape, cap and sensitivity (fig4, from the panels with roles smooth_shape,
sensitivity_sweep, and, when their studies' results are present, clipped_shape and multiplier_path) and the mean
trajectories (fig5, every trajectory panel of the trajectories study)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from runtools.figures import save_figure, series_colors
from sde.figures.common import finish
from sde.plotting import G_TITLE, LEGEND_FONTSIZE, MARKER_NOTE, SDE_LABEL, curve_style, fit_text, legend_below, plot_curve


def problems(*panels) -> str:
    """The problems of the panels drawn (the results panels' `spec`), each once, in order: the titles name them."""
    return ", ".join(dict.fromkeys(p["spec"]["problem"] for p in panels if p is not None))


def fig_multiplier(res, study, out_dir, written):
    """fig4: its panels come by role (sde.studyfile.ROLES), from whichever study declares them; `study` (every
    figure's signature) is not needed."""
    fig, axes = plt.subplots(2, 2, figsize=(12.5, 11.5))
    # (a) smooth vs clipped shape on the fluctuation
    ax = axes[0][0]
    smooth_panel = res.with_role("smooth_shape")
    smooth = [c for c in smooth_panel["items"] if c["g"] == "fluctuation"]
    curves = list(smooth)
    for c in smooth:
        plot_curve(ax, c, label=f"smooth m, vs {SDE_LABEL[c['sde']]}: {fit_text(c)}")
    clipped = res.with_role("clipped_shape")                     # None without theorem_pgpo's results
    if clipped is not None:
        for c in clipped["items"]:
            if c["g"] == "fluctuation" and c["sde"] in ("matched", "paper"):
                plot_curve(ax, c, style=dict(curve_style(c), ls="-.", marker="d"),
                           label=f"clipped m, vs {SDE_LABEL[c['sde']]}: {fit_text(c)}")
                curves.append(c)
    finish(ax, curves, f"(a) {problems(smooth_panel, clipped)}, " + G_TITLE["fluctuation"] +
           ": clipped (dash-dot) vs smooth m(I)")
    # (b) I and m along one path, on axes of their own (m - 1 is alpha I below the cap: one axis would overlay them)
    axes[0][1].set_visible(False)
    path = res.with_role("multiplier_path")                      # None without the trajectories' results
    if path is not None:
        tr = path["items"][0]
        t = np.asarray(tr["t"][:-1])
        top, bottom = axes[0][1].get_subplotspec().subgridspec(2, 1, hspace=0.08).subplots(sharex=True)
        top.plot(t, tr["info_path"], color="#1f77b4")
        top.set_yscale("log")
        top.set_ylabel(r"$I_k$ (excess loss)")
        top.set_title(f"(b) one PGPO path ({problems(path)}, $\\eta$ = {tr['eta']:g}); steps at the cap: "
                      f"{100 * tr['cap_fraction']:.0f} % (all paths)", fontsize=9.5)
        bottom.plot(t, tr["multiplier_path"], color="#d62728", label=r"$m_k$")
        bottom.axhline(tr["multiplier_spec"]["m_max"], color="0.4", ls=":", lw=0.9,
                       label=f"cap $m_{{max}}$ = {tr['multiplier_spec']['m_max']:g}")
        bottom.set_ylabel(r"$m_k$")
        bottom.set_xlabel(r"time $t = k\eta$")
        bottom.legend(fontsize=LEGEND_FONTSIZE, loc="upper right")
        for a in (top, bottom):
            a.grid(True, alpha=0.25)
    # (c) weak-error constants vs alpha; (d) cap fraction vs alpha
    sweep = res.with_role("sensitivity_sweep")
    rows = sweep["items"]
    mmaxes = sorted({r["m_max"] for r in rows})
    for mm, col in zip(mmaxes, series_colors(len(mmaxes))):
        for shape, ls in (("clipped_linear", "-"), ("smooth", "--")):
            sub = sorted([r for r in rows if r["m_max"] == mm and r["shape"] == shape], key=lambda r: r["alpha_times_I0"])
            if not sub:
                continue
            a = [r["alpha_times_I0"] for r in sub]
            cm = [r["errors"]["matched|sq_norm"][-1]["constant"] for r in sub]
            pf = [r["errors"]["paper|fluctuation"][-1]["error"] for r in sub]
            lab = f"m_max={mm:g}" + (" (smooth)" if shape == "smooth" else "")
            axes[1][0].plot(a, np.abs(cm), ls=ls, marker="o", color=col, label=f"matched, |θ|²: |C| {lab}")
            axes[1][0].plot(a, np.abs(pf), ls=ls, marker="s", color=col, alpha=0.55,
                            label=f"paper, fluct.: plateau {lab}")
            axes[1][1].plot(a, [r["cap_fraction"] for r in sub], ls=ls, marker="o", color=col, label=lab)
    eta_small = rows[0]["errors"]["matched|sq_norm"][-1]["eta"]
    ticks = sorted({r["alpha_times_I0"] for r in rows})
    for ax, title, ylab in ((axes[1][0], f"(c) weak-error size at $\\eta$ = {eta_small:g}: constant C = error/$\\eta$ "
                             "(matched) and plateau (paper)", "|C|  /  plateau"),
                            (axes[1][1], "(d) fraction of PGPO steps with m at the cap", "fraction at cap")):
        ax.set_xscale("log")
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel(r"sensitivity $\alpha \cdot I(\theta_0)$")
        ax.set_ylabel(ylab)
        ax.set_title(title, fontsize=9.5)
        ax.grid(True, which="both", alpha=0.25)
        legend_below(ax, ncol=2)
    axes[1][0].set_yscale("log")
    fig.suptitle(f"The multiplier: shape, cap and sensitivity ({problems(smooth_panel, clipped, path, sweep)})\n"
                 f"(a): {MARKER_NOTE}", fontsize=10)
    save_figure(fig, out_dir, "fig4_multiplier", written, top_inches=0.5)


def fig_trajectories(res, study, out_dir, written):
    panels = res.of_kind(study, "trajectory")
    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 4.8), squeeze=False)
    colors = {"matched": "#2ca02c", "paper": "#d62728", "gradient_flow": "#222222"}
    for ax, p in zip(axes[0], panels):
        tr = p["items"][0]
        t = np.asarray(tr["t"])
        md, sd = np.asarray(tr["discrete_mean"])[:, 0], np.asarray(tr["discrete_sd"])[:, 0]
        ax.plot(t, md, color="#1f77b4", lw=2, label="discrete PGPO: mean")
        ax.fill_between(t, md - sd, md + sd, color="#1f77b4", alpha=0.15, label="discrete PGPO: +- sd")
        for k, ms in tr["sde_mean"].items():
            m, s = np.asarray(ms)[:, 0], np.asarray(tr["sde_sd"][k])[:, 0]
            ax.plot(t, m, color=colors.get(k), lw=1.2, ls="--", label=f"{SDE_LABEL[k]}: mean")
            if k != "gradient_flow":
                ax.plot(t, m + s, color=colors.get(k), lw=0.8, ls=":")
                ax.plot(t, m - s, color=colors.get(k), lw=0.8, ls=":", label=f"{SDE_LABEL[k]}: +- sd")
        gf = np.asarray(tr["gradient_flow"])[:, 0]
        ax.plot(t, gf, color="#ff7f0e", lw=0.8, label=r"$\bar\theta(t)$ (ODE)")
        ax.set_xlabel("time t = k eta")
        ax.set_ylabel(r"$\theta_1$")
        ax.set_title(f"{tr['problem']}: $\\eta$ = {tr['eta']:g}, {tr['n_paths']} paths", fontsize=9.5)
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=LEGEND_FONTSIZE)
    fig.suptitle("Mean trajectories: the paper's SDE under-disperses (its sd band is too narrow where m > 1)",
                 fontsize=11)
    save_figure(fig, out_dir, "fig5_trajectories", written)
