"""Figures and the verdict table of the weak-convergence study, from saved results only (no simulation).

    python paper_figures/weak_convergence.py --results results/weak_convergence --out paper_figures/weak_convergence
    (or `make_all(results_dir, out_dir)` from Python; experiments/weak_convergence/run.py calls it)

Writes fig1_theorem_sgd, fig2_theorem_pgpo, fig3_noise, fig4_multiplier, fig5_trajectories, fig6_batch_gap,
fig7_modified_equation, fig8_stationary, fig9_escape, fig10_variants (PNG and PDF), weak_convergence_table.md and
weak_convergence_table.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from runtools.figures import save_figure
from runtools.files import atomic_write_text
from runtools.progress import Progress
from sde.plotting import (G_TITLE, LEGEND_FONTSIZE, MARKER_NOTE, SDE_LABEL, SDE_STYLE, curve_style, eta_axis,
                           fit_text, fmt_ci, fmt_num, legend_below, plot_curve, series_colors, slope_guide)
from sde.results import refit, study_curves, write_json
from sde.stats import Z95
from sde.panels import STUDIES
from sde.verdicts import VERDICT_RULE, assign

G_ORDER = ["sq_norm", "loss", "cross", "linear", "fluctuation"]
NOISE_LABEL = {("gaussian", "exact"): "Gaussian noise (coupled)",
               ("minibatch", "exact"): "minibatch, exact I",
               ("minibatch", "independent_batch"): "minibatch, I from an independent batch",
               ("minibatch", "same_batch"): "minibatch, I from the same batch"}


def load(results_dir: str) -> dict:
    docs = {}
    for name in STUDIES:
        path = os.path.join(results_dir, f"{name}.json")
        if os.path.exists(path):
            with open(path) as f:
                docs[name] = refit(json.load(f))
    if not docs:
        raise FileNotFoundError(f"no study results in {results_dir}")
    assign([c for doc in docs.values() for c in study_curves(doc)])     # one family: the whole table (Holm)
    return docs


def load_calibration(results_dir: str) -> dict | None:
    """The verdict rule's measured error rates for these results (sde.calibration), when measured."""
    from sde.calibration import CALIBRATION_NAME
    path = os.path.join(results_dir, CALIBRATION_NAME)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _at_T(items):
    """The endpoint curves of a panel (not Definition A.1's max over time, which only the table lists)."""
    return [c for c in items if c.get("error_at", "T") == "T"]


def _panel(doc, pid):
    for p in doc["panels"]:
        if p["id"] == pid:
            return p
    raise KeyError(pid)




def _finish(ax, curves, title, slopes=(1.0,)):
    etas = [e for c in curves for e in c["eta"]]
    errs = [abs(e) for c in curves for e in c["error"] if e is not None]
    for slope in slopes:
        slope_guide(ax, etas, errs, slope=slope)
    eta_axis(ax, etas)
    ax.set_yscale("log")
    ax.set_ylabel(r"$|E\,g(\theta_N) - E\,g(\Theta_T)|$")
    ax.set_title(title, fontsize=9.5)
    ax.grid(True, which="both", alpha=0.25)
    legend_below(ax)


def fig_theorem_sgd(doc, out_dir, written):
    panels = [p for p in doc["panels"] if p["kind"] == "weak_error"]
    n_cols = min(len(panels), 2)
    n_rows = math.ceil(len(panels) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(6.2 * n_cols, 5.4 * n_rows), squeeze=False)
    axes = [ax for row in axes for ax in row]
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    colors = {"sq_norm": "#1f77b4", "linear": "#ff7f0e", "fluctuation": "#2ca02c"}
    for ax, p in zip(axes, panels):
        curves = [c for c in _at_T(p["items"]) if c["sde"] == "sgd_sde"]
        for c in curves:
            plot_curve(ax, c, style={"color": colors[c["g"]]}, label=f"{G_TITLE[c['g']]}: {fit_text(c)}")
        how = "exact moments" if curves[0]["method"] == "closed_form" else \
            f"coupled Monte Carlo, {min(curves[0]['n_paths_per_eta'])}-{max(curves[0]['n_paths_per_eta'])} paths"
        _finish(ax, curves, f"SGD vs SGD-SDE, {p['spec']['problem']}, T={p['spec']['T']:g} ({how})")
    verdicts = [c["verdict"] for p in panels for c in _at_T(p["items"]) if c["sde"] == "sgd_sde"]
    fig.suptitle(f"Theorem A.2 (i): SGD vs the SGD-SDE - {verdicts.count('order 1')} of {len(verdicts)} curves "
                 f"order 1 at T (the max over k <= N: table)\n({MARKER_NOTE})", fontsize=10)
    save_figure(fig, out_dir, "fig1_theorem_sgd", written, top_inches=0.6)


def fig_theorem_pgpo(doc, out_dir, written):
    panels = [p for p in doc["panels"] if p["kind"] == "weak_error"]
    tests = ["sq_norm", "fluctuation"]
    fig, axes = plt.subplots(len(panels), 2, figsize=(11.5, 4.9 * len(panels)), squeeze=False)
    for row, p in zip(axes, panels):
        for ax, g in zip(row, tests):
            curves = [c for c in _at_T(p["items"]) if c["g"] == g]
            for c in curves:
                plot_curve(ax, c, label=f"PGPO vs {SDE_LABEL[c['sde']]}: {fit_text(c)}")
            m = curves[0]["multiplier_spec"]
            _finish(ax, curves, f"{p['spec']['problem']}, T={p['spec']['T']:g}: {G_TITLE[g]}  (m = min(1 + "
                                f"{m['alpha']:.3g} I, {m['m_max']:g}))")
    fluct = [c for p in panels for c in _at_T(p["items"]) if c["g"] == "fluctuation"]
    tracked = sorted({SDE_LABEL[c["sde"]] for c in fluct if c["verdict"] in ("order 1", "order 2")})
    plateau = sorted({SDE_LABEL[c["sde"]] for c in fluct if c["verdict"] == "converges elsewhere"})
    fig.suptitle(f"Theorem A.2 (ii): which SDE models PGPO? On the fluctuation, order 1 or 2: "
                 f"{', '.join(tracked) or 'none'}; plateau: {', '.join(plateau) or 'none'}\n({MARKER_NOTE})",
                 fontsize=10)
    save_figure(fig, out_dir, "fig2_theorem_pgpo", written, top_inches=0.6)


def fig_noise(doc, out_dir, written):
    panels = [p for p in doc["panels"] if p["kind"] == "minibatch"]
    tests = sorted({c["g"] for p in panels for c in p["items"]}, key=["sq_norm", "linear", "fluctuation"].index)
    fig, axes = plt.subplots(len(tests), len(panels), figsize=(5.4 * len(panels), 4.6 * len(tests)), squeeze=False)
    colors = {"exact": "#1f77b4", "independent_batch": "#2ca02c", "same_batch": "#d62728"}
    for j, p in enumerate(panels):
        for i, g in enumerate(tests):
            ax = axes[i][j]
            curves = [c for c in p["items"] if c["g"] == g]
            for c in curves:
                col = "#7f7f7f" if c["noise"] == "gaussian" else colors[c["info"]]
                style = {"color": col}
                label = NOISE_LABEL[(c["noise"], c["info"])]
                if c["sde"] == "averaged":
                    style.update(ls=":", marker="P")
                    label += ", vs averaged-drift SDE"
                plot_curve(ax, c, style=style, label=f"{label}: {fit_text(c)}")
            disc = p["spec"].get("discrete", "pgpo").upper()
            _finish(ax, curves, f"{p['spec']['problem']}, {disc}, B={curves[0]['batch_size']}: {G_TITLE[g]}")
    curves = [c for p in panels for c in p["items"]]
    noisy = [c for c in curves if c["info"] in ("independent_batch", "same_batch")]
    vs_exact = [c for c in noisy if c["sde"] != "averaged"]
    vs_avg = [c for c in noisy if c["sde"] == "averaged"]
    line2 = (f"against the averaged-drift SDE: {sum(c['verdict'] == 'order 1' for c in vs_avg)} of {len(vs_avg)} "
             f"order 1" if vs_avg else "")
    fig.suptitle(f"Noisy I_k (fixed batch B): against exact-I SDEs, {sum(c['verdict'] == 'converges elsewhere' for c in vs_exact)} "
                 f"of {len(vs_exact)} curves converge elsewhere (plateau B, predicted by exact minibatch enumeration); "
                 f"{line2}\n({MARKER_NOTE})", fontsize=9.5)
    save_figure(fig, out_dir, "fig3_noise", written)


def fig_multiplier(doc, traj_doc, pgpo_doc, out_dir, written):
    fig, axes = plt.subplots(2, 2, figsize=(12.5, 11.5))
    # (a) smooth vs clipped shape on the fluctuation
    ax = axes[0][0]
    smooth = [c for c in _panel(doc, "smooth_shape")["items"] if c["g"] == "fluctuation"]
    curves = list(smooth)
    for c in smooth:
        plot_curve(ax, c, label=f"smooth m, vs {SDE_LABEL[c['sde']]}: {fit_text(c)}")
    if pgpo_doc is not None:
        for c in _panel(pgpo_doc, "quadratic")["items"]:
            if c["g"] == "fluctuation" and c["sde"] in ("matched", "paper"):
                plot_curve(ax, c, style=dict(curve_style(c), ls="-.", marker="d"),
                           label=f"clipped m, vs {SDE_LABEL[c['sde']]}: {fit_text(c)}")
                curves.append(c)
    _finish(ax, curves, "(a) quadratic, " + G_TITLE["fluctuation"] + ": clipped (dash-dot) vs smooth m(I)")
    # (b) I and m along one path, on axes of their own (m - 1 is alpha I below the cap: one axis would overlay them)
    axes[0][1].set_visible(False)
    if traj_doc is not None:
        tr = _panel(traj_doc, "quadratic")["items"][0]
        t = np.asarray(tr["t"][:-1])
        top, bottom = axes[0][1].get_subplotspec().subgridspec(2, 1, hspace=0.08).subplots(sharex=True)
        top.plot(t, tr["info_path"], color="#1f77b4")
        top.set_yscale("log")
        top.set_ylabel(r"$I_k$ (excess loss)")
        top.set_title(f"(b) one PGPO path (quadratic, $\\eta$ = {tr['eta']:g}); steps at the cap: "
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
    rows = _panel(doc, "alpha_mmax")["items"]
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
    fig.suptitle(f"The multiplier: shape, cap and sensitivity (quadratic)\n(a): {MARKER_NOTE}", fontsize=10)
    save_figure(fig, out_dir, "fig4_multiplier", written, top_inches=0.5)


def fig_trajectories(doc, out_dir, written):
    panels = doc["panels"]
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


def fig_batch_gap(doc, out_dir, written):
    panels = [p for p in doc["panels"] if p["kind"] == "batch_gap"]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(max(9.0, 6.2 * len(panels)), 5.4), squeeze=False)
    series = (("kink", "independent", r"$|E_B\,m(I_B) - m(I)|$ at the kink", "#2ca02c", "o"),
              ("kink", "same_batch", r"$|E_B[m(I_B)\nabla L_B] - m\nabla L|$ at the kink", "#d62728", "s"),
              ("linear", "same_batch", r"$|E_B[m(I_B)\nabla L_B] - m\nabla L|$, m linear (no cap)", "#9467bd", "^"))
    for ax, p in zip(axes[0], panels):
        it = p["items"][0]
        b = np.array([r["batch_size"] for r in it["rows"]], float)
        for where, key, lab, col, mk in series:
            fit = it["slopes"][f"{where}|{key}"]
            ax.plot(b, [abs(r[where][key]) for r in it["rows"]], marker=mk, color=col,
                    label=f"{lab}: slope {fit['slope']:.3f}")
        for slope, ls in ((-0.5, (0, (1, 2))), (-1.0, (0, (4, 2)))):
            y0 = abs(it["rows"][0]["kink"]["independent"] if slope == -0.5 else it["rows"][0]["linear"]["same_batch"])
            ax.plot(b, y0 * (b / b[0]) ** slope, color="k", lw=0.8, ls=ls, label=f"B^{slope:g} guide")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(b, [f"{int(x)}" for x in b])
        ax.minorticks_off()
        ax.set_xlabel("batch size B of the I estimate")
        ax.set_ylabel("gap (exact enumeration over minibatches)")
        ax.set_title(f"{p['spec']['problem']}: at $\\bar\\theta(t$ = {it['t_kink']:.3f}), where $1 + \\alpha I = m_{{max}}$",
                     fontsize=9.5)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7)
    sl = panels[0]["items"][0]["slopes"]
    fig.suptitle(f"Drift bias of a minibatch I vs its batch size B (log-log slopes of the exact values):\n"
                 f"independent batch at the clipped m's kink {sl['kink|independent']['slope']:.2f} (B^-1/2); same batch "
                 f"where m is linear {sl['linear|same_batch']['slope']:.2f} (1/B);\nsame batch at the kink "
                 f"{sl['kink|same_batch']['slope']:.2f} (both terms)", fontsize=10)
    save_figure(fig, out_dir, "fig6_batch_gap", written)


def _mult_text(c) -> str:
    if c.get("m_text"):                           # the variants name their rule themselves
        return c["m_text"]
    m = c.get("multiplier_spec")
    if m is None:
        return "m = 1"
    if m["shape"] == "constant":
        return f"m = {m['m_max']:g}"
    return f"{'clipped' if m['shape'] == 'clipped_linear' else 'smooth'} m, alpha={m['alpha']:.3g}, m_max={m['m_max']:g}"


def fig_modified_equation(doc, out_dir, written):
    """Rows: panels; columns: the order-2 drift with the matched diffusion, and with the paper's."""
    panels = [p for p in doc["panels"] if p["kind"] == "weak_error"]
    cols = ["matched_2", "paper_2"]
    n_rows = math.ceil(len(panels) / 2)                # two panels (four axes) per row
    fig, grid = plt.subplots(n_rows, 4, figsize=(22.0, 6.2 * n_rows), squeeze=False)
    pairs = [grid[i // 2][2 * (i % 2): 2 * (i % 2) + 2] for i in range(len(panels))]
    for ax in [a for row in grid for a in row][2 * len(panels):]:
        ax.set_visible(False)
    colors = {"sq_norm": "#1f77b4", "loss": "#ff7f0e", "cross": "#2ca02c", "linear": "#9467bd"}
    for row, p in zip(pairs, panels):
        for ax, sde in zip(row, cols):
            curves = [c for c in _at_T(p["items"]) if c["sde"] == sde]
            for c in sorted(curves, key=lambda c: G_ORDER.index(c["g"])):
                plot_curve(ax, c, style={"color": colors[c["g"]]}, label=f"{G_TITLE[c['g']]}: {fit_text(c)}")
            base = [c for c in _at_T(p["items"]) if c["sde"] == "matched" and c["g"] == "sq_norm"]
            for c in base:                                  # the order-1 matched SDE, for scale
                plot_curve(ax, c, style={"color": "#b0b0b0", "marker": "."},
                           label=f"{G_TITLE['sq_norm']} vs order-1 matched SDE: {fit_text(c)}")
            how = "exact moments" if p["spec"]["method"] == "closed_form" else "coupled Monte Carlo"
            _finish(ax, curves + base, f"{p['spec']['problem']}, {_mult_text(curves[0])} ({how})\n"
                                       f"PGPO vs {SDE_LABEL[sde]}", slopes=(1.0, 2.0))
    tally = {s: [c["verdict"] for p in panels for c in _at_T(p["items"]) if c["sde"] == s] for s in cols}
    fig.suptitle("Order-2 modified equations on fixed test functions (Definition A.1): order 2 on "
                 f"{tally['matched_2'].count('order 2')} of {len(tally['matched_2'])} curves with the matched diffusion, "
                 f"{tally['paper_2'].count('order 2')} of {len(tally['paper_2'])} with the paper's "
                 f"(order 1 on {tally['paper_2'].count('order 1')})\n({MARKER_NOTE})", fontsize=10)
    save_figure(fig, out_dir, "fig7_modified_equation", written, top_inches=0.7)


def fig_stationary(doc, out_dir, written):
    """(a) the floor vs c at one eta (closed form), with the leading-order lines; (b) the floor difference vs eta for
    every constant c and SDE; (c) Monte Carlo panels: the floor difference vs eta."""
    from sde.stationary import leading_floor
    from sde.problems import get_problem
    exact = [p for p in doc["panels"] if p["spec"]["method"] == "closed_form"]
    mc = [p for p in doc["panels"] if p["spec"]["method"] != "closed_form"]
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
        _finish(ax, loss, "(b) floor(discrete) - floor(SDE) vs $\\eta$, exact (marker and line = SDE, colour = c)",
                slopes=(1.0, 2.0))
        ax.set_ylabel("|floor difference|")
    for ax, p in zip(axes, mc):
        curves = [c for c in p["items"] if c["g"] == "loss"]
        palette = series_colors(len(curves))
        for i, c in enumerate(curves):
            plot_curve(ax, c, style={"color": palette[i], "marker": SDE_STYLE[c["sde"]]["marker"],
                                     "ls": "-" if c["sde"] == "matched" else "-."},
                       label=f"{_mult_text(c)}, {c['sde']}: {fit_text(c)}")
        burns = sorted({round(c["burn_in"], 1) for c in curves})
        _finish(ax, curves, f"{p['spec']['problem']}: floor difference (coupled MC, time average over "
                            f"{p['spec']['window']:g} after a burn-in of {'/'.join(f'{b:g}' for b in burns)})",
                slopes=(1.0, 2.0))
        ax.set_ylabel("|floor difference|")
    allc = [c for p in doc["panels"] for c in p["items"] if c["g"] == "loss" and (c.get("constant") or 0) != 1]

    def tally(sde):
        vs = [c["verdict"] for c in allc if c["sde"] == sde]
        return ", ".join(f"{v} {vs.count(v)}" for v in sorted(set(vs))) + f" of {len(vs)}" if vs else "n/a"
    fig.suptitle("Stationary floors ($g = L$, $m \\neq 1$), verdicts on floor(discrete) - floor(SDE):\n"
                 f"matched SDE: {tally('matched')}; paper SDE: {tally('paper')}; order-2 drift: {tally('matched_2')}\n"
                 + "; ".join(lines) + f"\n({MARKER_NOTE})", fontsize=9.5)
    save_figure(fig, out_dir, "fig8_stationary", written, top_inches=0.9)


def fig_escape(doc, out_dir, written):
    """(a) MFPT vs constant m at each eta; (b) MFPT vs 1/eta; discrete Monte Carlo (95 % CI) against the exact MFPT
    of both SDEs and Kramers."""
    rows = [it for p in doc["panels"] if p["kind"] == "escape" for it in p["items"]]
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
            ax.plot(cs, [_kramers(r, sde) or np.nan for r in sub], ":", color=col, lw=0.8)
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


KRAMERS_MIN = 2.0          # Kramers / Eyring is shown where dV / T_eff >= this (it is asymptotic in dV / T_eff)


def _kramers(r, sde):
    """The row's Kramers MFPT for `sde` where it applies (constant m, dV / T_eff >= KRAMERS_MIN), else None."""
    if not r.get("kramers") or r["barrier"] / r["temperature"][sde] < KRAMERS_MIN:
        return None
    return r["kramers"][sde]


VARIANT_TITLE = {"smoothed": r"smoothed I: $m(\bar I_k)$", "scale_free": r"scale-free: $m_\beta(I_k / \bar I_k)$",
                 "per_sample": r"per-sample weights $m(I_i)$"}


def _variant_label(c) -> str:
    info = {"independent_batch": "I from an independent batch", "exact": "exact I"}.get(c["info"], "")
    if c["sde"] == "exact-I process":
        head = (r"$m(\bar I_k)$" if c["variant"] != "none" else r"paper's $m(I_k)$") + ": noisy I - exact I, paired"
    elif c["variant"] == "per_sample":
        head = ("normalised" if c.get("normalize") else "unnormalised") + \
            (", vs batch PGPO's SDE" if c["sde"] == "matched" else ", vs per-sample SDE")
    elif c["variant"] == "none":
        head = f"paper's $m(I_k)$, {info}, vs exact-I matched SDE"
    else:
        head = f"{info}, vs augmented SDE"
    return f"{head}: {fit_text(c)}"


def fig_variants(doc, out_dir, written):
    """Top: the weak error of each variant against its SDE (and the comparison it changes), g = the panel's first test
    function. Bottom: how the variant changes the step along the run (m_k's 10-90 % band and mean, or the per-sample
    drift's relative distance from m(I) grad L along theta_bar)."""
    panels = [p for p in doc["panels"] if p["kind"] == "variant"]
    fig, axes = plt.subplots(2, len(panels), figsize=(6.4 * len(panels), 11.0), squeeze=False)
    tally = {}
    for j, p in enumerate(panels):
        ax = axes[0][j]
        curves = [c for c in p["items"] if isinstance(c.get("eta"), list)]
        g = p["spec"]["tests"][0]
        shown = [c for c in curves if c["g"] == g]
        for k, c in enumerate(shown):
            style = dict(SDE_STYLE.get(c["sde"], {}))
            if c["info"] == "exact" or c.get("normalize"):
                style.update(ls="-")
            if c["variant"] == "none":
                style.update(color="#2ca02c", marker="^")
            if c["sde"] == "exact-I process":
                style.update(ls="-.", color="#8c564b" if c["variant"] != "none" else "#bcbd22")
            plot_curve(ax, c, style=style, label=_variant_label(c))
        for c in curves:
            key = {"augmented": "vs own SDE", "per_sample": "vs own SDE", "exact-I process": "noisy vs exact I (paired)"
                   }.get(c["sde"], "vs the paper's SDE")
            if c["variant"] == "none":
                key = "paper's m(I_k), " + key
            tally.setdefault((p["spec"]["variant"], key), []).append(c["verdict"])
        _finish(ax, shown, f"{p['spec']['problem']}, B={shown[0]['batch_size']}, {VARIANT_TITLE[p['spec']['variant']]}"
                           f": {G_TITLE[g]}")
        ax = axes[1][j]
        dist = next(c for c in p["items"] if "distribution" in c)
        if p["spec"]["variant"] == "per_sample":
            for name, d in dist["distribution"].items():
                ax.plot(d["t"], d["relative_drift_gap"],
                        label=rf"{name}: $|b - m(I)\nabla L| / |m(I)\nabla L|$")
            ax.set_ylabel(r"relative drift gap along $\bar\theta(t)$")
            ax.set_title(r"per-sample drift vs batch PGPO's $m(I)\nabla L$", fontsize=9.5)
        else:
            colors = {"paper": "#2ca02c", "smoothed": "#9467bd", "scale_free": "#9467bd"}
            names = {"paper": r"paper's $m(I_k)$", "smoothed": r"$m(\bar I_k)$", "scale_free": r"$m_\beta(I_k/\bar I_k)$"}
            for name, d in dist["distribution"].items():
                ax.fill_between(d["t"], d["q10"], d["q90"], color=colors[name], alpha=0.2)
                ax.plot(d["t"], d["mean"], color=colors[name], label=f"{names[name]}: mean, 10-90 % band")
            src = {"independent_batch": "I from an independent batch", "exact": "exact I"}[dist["info"]]
            ax.set_ylabel(r"$m_k$")
            ax.set_title(f"$m_k$ over {p['spec']['distribution_paths']} discrete paths, $\\eta$ = {dist['eta']:g}, {src}",
                         fontsize=9.5)
        ax.set_xlabel(r"$t = k\eta$")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=LEGEND_FONTSIZE)
    own = [v for (variant, key), vs in tally.items() if key == "vs own SDE" for v in vs]
    fig.suptitle("PGPO's variants against their SDEs (every test function's verdict: the table): against their own SDE "
                 f"{own.count('order 1')} of {len(own)} curves order 1\n({MARKER_NOTE})", fontsize=9.5)
    save_figure(fig, out_dir, "fig10_variants", written, top_inches=0.45)


def escape_rows(doc) -> list[dict]:
    out = []
    for p in doc["panels"]:
        if p["kind"] != "escape":
            continue
        for r in p["items"]:
            d = r["discrete"]
            out.append({"panel": p["id"], "multiplier": _mult_text(r), "eta": r["eta"], "discrete": d["mean"],
                        "discrete_ci": d["ci95"], "n_paths": d["n_paths"], "censored": d["n_censored"],
                        "matched": r["exact"]["matched"], "paper": r["exact"]["paper"],
                        "kramers_matched": _kramers(r, "matched"), "kramers_paper": _kramers(r, "paper"),
                        "horizon_factor": r.get("horizon_factor"),
                        "ratio_matched": d["mean"] / r["exact"]["matched"], "ratio_paper": d["mean"] / r["exact"]["paper"]})
    return out


def _same(a, b, rel: float = 1e-9) -> bool:
    """Equal JSON documents, numbers to `rel` (what another BLAS or SIMD path changes in the last digits)."""
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(_same(a[k], b[k], rel) for k in a)
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(_same(x, y, rel) for x, y in zip(a, b))
        return a == b
    return a == b or abs(a - b) <= rel * max(abs(a), abs(b))


def write_json_unless_same(path: str, doc) -> str:
    """Write `doc` unless the file already holds the same content to rounding: a redraw from unchanged results
    leaves a committed file untouched on any machine."""
    from sde.results import finite_or_none
    if os.path.exists(path):
        with open(path) as f:
            try:
                if _same(json.load(f), json.loads(json.dumps(finite_or_none(doc), default=float))):
                    return path
            except json.JSONDecodeError:
                pass
    return write_json(path, doc)


def table_curves(docs: dict) -> list[dict]:
    """The curves of the verdict table, in table order, each with its study's name under "study"."""
    out = []
    for name in STUDIES:
        doc = docs.get(name)
        if doc is None:
            continue
        for p in doc["panels"]:
            if p["kind"] not in ("weak_error", "minibatch", "stationary", "variant"):
                continue
            for c in p["items"]:
                if isinstance(c.get("eta"), list):              # not a variant panel's distribution record
                    c["study"] = name
                    out.append(c)
    return out


def table_rows(docs: dict) -> list[dict]:
    rows = []
    for c in table_curves(docs):
        f = c.get("fit") or {}
        rows.append({"study": c["study"], "panel": c["panel"], "problem": c["problem"], "discrete": c["discrete"],
                     "sde": c["sde"], "g": c["g"], "noise": c["noise"], "info": c["info"],
                     "error_at": c.get("error_at", "T"), "T": c.get("T"), "multiplier": _mult_text(c),
                     "method": c["method"], "verdict": c["verdict"], "verdict_reason": c.get("verdict_reason"),
                     "B": f.get("B"), "B_ci": f.get("B_ci"), "C1": f.get("C1"), "C1_ci": f.get("C1_ci"),
                     "C2": f.get("C2"), "C2_ci": f.get("C2_ci"), "B_bound": (f.get("bound") or {}).get("B"),
                     "exact": bool(f.get("exact")), "status": f.get("status"), "trimmed": f.get("trimmed", 0),
                     "share": f.get("share"), "stable": f.get("stable"), "chi2": f.get("chi2"), "dof": f.get("dof"),
                     "error_at_min_eta": f.get("error_at_min_eta"), "fit_eta_min": f.get("fit_eta_min"),
                     "used": f.get("used"),
                     "prediction": c.get("prediction"), "prediction_method": c.get("prediction_method"),
                     "slope": c["slope"], "slope_ci": c["slope_ci"], "n_paths": c["n_paths"],
                     "n_paths_max": max(c["n_paths_per_eta"]) if c["n_paths_per_eta"] else 0,
                     "eta_min": min(c["eta"]), "eta_max": max(c["eta"]),
                     "wall_time_s": c.get("wall_time_s")})
    return rows


TABLE_NOTES = [
    "g: `sq_norm` |theta|^2, `linear` theta_1, `loss` L(theta), `cross` theta_1 theta_2 (fixed test functions, as in",
    "Definition A.1), `fluctuation` g_eta = |theta - theta_bar(T)|^2 / eta with theta_bar the",
    "modulated gradient-flow path. Order 1 on g_eta means an O(eta^2) error on the fixed quadratic |theta - theta_bar(T)|^2,",
    "and a plateau B on g_eta an O(eta) error there: B measures the mismatch of the O(sqrt(eta)) fluctuations.",
    "Predicted B (sde.theory): 0 for SDEs with the discrete process's drift on sq_norm / linear; the linear-noise",
    "(Lyapunov) ODE along theta_bar for the fluctuation; for a minibatch I, g(averaged-drift flow) - g(theta_bar) by",
    "exact enumeration of minibatches. `averaged`: the averaged-drift SDE, the limit noisy-I PGPO converges to.",
    "SDEs `matched_2` / `paper_2`: the order-2 drift b - (eta/2)(grad b) b with the matched / the paper's diffusion.",
    "Error at: `T` the endpoint; `max_k` Definition A.1 as written, max over k <= N of |E g(theta_k) - E g(Theta_k eta)|",
    "(signed value at the maximising step; a maximum of noisy per-step estimates is biased up, so its s.e. is the larger",
    "of its step's and the half-width / 1.96 of a simultaneous 95 % band, `max_band` in the JSON); `stationary`",
    "floor(discrete) - floor(SDE), the",
    "stationary E g of each model (closed form, or a time average over a window after a burn-in).",
    "Slope: the log-log slope on the points above 3 s.e. (secondary; it does not decide the verdict).",
    "Paths: Monte Carlo paths per eta (min-max over the grid). Time: wall seconds of the curve's share of its panel.",
    "Study `variants` (sde.variants): discrete and SDE paths simulated independently (paths = discrete paths; the SDE's",
    "count is `sde_paths` in the JSON). `augmented`: the SDE of (Theta, Ibar) for the smoothed / scale-free rules;",
    "`per_sample`: the per-sample-weighted step's matched SDE (exact batch law); `matched` beside a variant: the paper's",
    "m(I_k) with the same noisy I against the exact-I matched SDE, or the per-sample process against batch PGPO's SDE.",
    "`exact-I process`: E g(noisy-I process) - E g(the same process with the exact I), both driven by the same gradient",
    "minibatches (paired paths: a control variate that resolves whether the noisy I changes the limit).",
]


def _coef(r: dict, name: str) -> str:
    """A coefficient as the table prints it: exact value +- its extrapolation tolerance, or value [95 % CI]."""
    v, ci = r[name], r[name + "_ci"]
    if v is None:
        return "n/a"
    if r["exact"]:
        return f"{fmt_num(v)} ± {(ci[1] - ci[0]) / 2:.1g}"
    return fmt_ci(v, ci)


def calibration_header(calib: dict | None, rows: list[dict]) -> str:
    """The table header's sentence on the rule's measured error rates (or why there is none)."""
    from sde.calibration import summary_line
    if calib is None:
        return ("Error rates: not measured for these results (run `python -m sde calibrate --results <results "
                "folder>`).")
    if calib.get("rule") != VERDICT_RULE:
        return "Error rates: the calibration on file was measured for another verdict rule; re-run sde calibrate."
    observed = {"false_plateau": sum(r["verdict"] == "converges elsewhere" and r["prediction"] == 0
                                     and not r["exact"] for r in rows)}
    return summary_line(calib, observed)


def write_table(docs: dict, out_dir: str, written: list, calib: dict | None = None) -> None:
    rows = table_rows(docs)
    write_json_unless_same(os.path.join(out_dir, "weak_convergence_table.json"), rows)
    lines = ["# Weak-convergence verdicts",
             "",
             "Generated by `paper_figures/weak_convergence.py` from the study results; do not edit by hand.",
             "",
             f"**Verdict rule** (sde.verdicts.VERDICT_RULE): {VERDICT_RULE}",
             "",
             f"**{calibration_header(calib, rows)}**",
             "",
             *TABLE_NOTES,
             "",
             "| study | problem | m | SDE | g | error at | noise / I | verdict | B [95 % CI] | |B| < (95 %) | "
             "predicted B | C1 [95 % CI] | C2 [95 % CI] | chi2 / dof | slope [95 % CI] | paths | time s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        noise = r["noise"] if r["info"] == "exact" else f"{r['noise']} / {r['info'].replace('_batch', ' batch')}"
        paths = "exact" if r["exact"] else (
            f"{r['n_paths']}" if r["n_paths"] == r["n_paths_max"] else f"{r['n_paths']}-{r['n_paths_max']}")
        t = "" if r["wall_time_s"] is None else f"{r['wall_time_s']:.1f}"
        chi = "exact" if r["exact"] else ("n/a" if r["chi2"] is None else f"{r['chi2']:.1f} / {r['dof']}")
        slope = "n/a" if r["slope"] is None else f"{r['slope']:.2f} [{r['slope_ci'][0]:.2f}, {r['slope_ci'][1]:.2f}]"
        at = "stationary" if r["error_at"] == "stationary" else (
            f"T={r['T']:g}" if r["error_at"] == "T" else f"max k, T={r['T']:g}")
        m = "SGD" if r["discrete"] == "sgd" else r["multiplier"]
        bound = fmt_num(r["B_bound"]) if r["B_bound"] is not None else "n/a"
        lines.append(f"| {r['study']} | {r['problem']} | {m} | {r['sde']} | {r['g']} | {at} | {noise} | "
                     f"{r['verdict']} | {_coef(r, 'B')} | {bound} | {fmt_num(r['prediction'])} | "
                     f"{_coef(r, 'C1')} | {_coef(r, 'C2')} | {chi} | {slope} | {paths} | {t} |")
    if "escape" in docs:
        erows = escape_rows(docs["escape"])
        factors = sorted({r["horizon_factor"] for r in erows if r["horizon_factor"] is not None})
        lines += ["", "## Metastable escape (study `escape`)", "",
                  "Mean first-passage time from the right well's bottom x* to x <= -x*/2 (SDE time). Discrete PGPO: Monte "
                  "Carlo, mean of min(tau, horizon) with its 95 % CI and the number of censored paths (horizon = "
                  f"{'/'.join(f'{f:g}' for f in factors) or 'n/a'} x the matched SDE's exact MFPT). SDEs: exact, by "
                  "quadrature of the 1-d first-passage ODE. Kramers / Eyring for constant m where dV / T_eff >= "
                  f"{KRAMERS_MIN:g} (sde.escape). No fit: the quantities are compared directly.", "",
                  "| m | eta | discrete [95 % CI] | censored / paths | matched SDE | paper SDE | Kramers matched | "
                  "Kramers paper | discrete / matched | discrete / paper |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in erows:
            lines.append(f"| {r['multiplier']} | {r['eta']:g} | {fmt_ci(r['discrete'], r['discrete_ci'])} | "
                         f"{r['censored']} / {r['n_paths']} | {r['matched']:.4g} | {r['paper']:.4g} | "
                         f"{fmt_num(r['kramers_matched'])} | {fmt_num(r['kramers_paper'])} | "
                         f"{r['ratio_matched']:.3f} | {r['ratio_paper']:.3g} |")
    sweep = sweep_rows(docs.get("multiplier"))
    if sweep:
        inside = sum(r["inside"] for r in sweep if r["inside"] is not None)
        tested = sum(r["inside"] is not None for r in sweep)
        lines += ["", "## The alpha / m_max sweep (study `multiplier`): limits against predictions", "",
                  "Each point's limit B is extrapolated from its two step sizes (Richardson, 2 e(eta/2) - e(eta): the "
                  "O(eta) term removed, an O(eta^2) one left) with a 95 % CI, beside sde.theory's prediction (0 on "
                  "sq_norm and on the matched SDE's fluctuation; the Lyapunov ODE's plateau on the paper SDE's "
                  f"fluctuation). {inside} of {tested} predictions lie inside their intervals.", "",
                  "| shape | alpha I(theta_0) | m_max | SDE | g | steps at cap | limit B [95 % CI] | predicted B | inside |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in sweep:
            lines.append(f"| {r['shape']} | {r['alpha_times_I0']:g} | {r['m_max']:g} | {r['sde']} | {r['g']} | "
                         f"{r['cap_fraction']:.2f} | {fmt_ci(r['B'], r['ci95'])} | {fmt_num(r['prediction'])} | "
                         f"{'n/a' if r['inside'] is None else ('yes' if r['inside'] else 'no')} |")
    path = os.path.join(out_dir, "weak_convergence_table.md")
    atomic_write_text(path, "\n".join(lines) + "\n")
    written += [path, os.path.join(out_dir, "weak_convergence_table.json")]


def sweep_rows(doc: dict | None) -> list[dict]:
    """One row per (sweep point, SDE, test function): the extrapolated limit and its prediction."""
    out = []
    for p in (doc or {}).get("panels", []):
        if p["kind"] != "sweep":
            continue
        for pt in p["items"]:
            for key, lim in (pt.get("limit") or {}).items():
                sde, g = key.split("|")
                pred = lim.get("prediction")
                out.append({"shape": pt["shape"], "alpha_times_I0": pt["alpha_times_I0"], "m_max": pt["m_max"],
                            "sde": sde, "g": g, "cap_fraction": pt["cap_fraction"], "B": lim["B"], "ci95": lim["ci95"],
                            "stderr": lim["stderr"], "prediction": pred,
                            "inside": None if pred is None else bool(lim["ci95"][0] <= pred <= lim["ci95"][1])})
    return out


def make_all(results_dir: str, out_dir: str, progress_stream=None) -> list[str]:
    matplotlib.use("Agg", force=True)
    docs = load(results_dir)
    os.makedirs(out_dir, exist_ok=True)
    written: list[str] = []
    figures = (("theorem_sgd", fig_theorem_sgd), ("theorem_pgpo", fig_theorem_pgpo), ("noise", fig_noise),
               ("noise", fig_batch_gap),
               ("multiplier", lambda doc, out, w: fig_multiplier(doc, docs.get("trajectories"), docs.get("theorem_pgpo"),
                                                                 out, w)),
               ("trajectories", fig_trajectories), ("modified_equation", fig_modified_equation),
               ("stationary", fig_stationary), ("escape", fig_escape), ("variants", fig_variants))
    todo = [(study, draw) for study, draw in figures if study in docs]
    # the ETA weighs each figure by the curves it draws (fig7 draws six times as many as fig6)
    weight = {study: 1 + len(study_curves(docs[study])) for study, _ in todo}
    prog = Progress(sum(weight[s] for s, _ in todo) + 1, label="figures", every_s=0.0, stream=progress_stream)
    done = 0
    for study, draw in todo:                         # fig1 ... fig10, each from the results present
        draw(docs[study], out_dir, written)
        done += weight[study]
        if progress_stream is not None:
            prog.update(done, note=os.path.basename(written[-1]).rsplit(".", 1)[0], force=True)
    write_table(docs, out_dir, written, load_calibration(results_dir))
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results/weak_convergence")
    ap.add_argument("--out", default="paper_figures/weak_convergence")
    args = ap.parse_args(argv)
    files = make_all(args.results, args.out, progress_stream=sys.stderr)
    print(f"wrote {len(files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
