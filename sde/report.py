"""Figures and the slopes table of the weak-convergence study, from saved results only (no simulation).

    python paper_figures/weak_convergence.py --results results/weak_convergence --out paper_figures/weak_convergence
    (or `make_all(results_dir, out_dir)` from Python; experiments/weak_convergence/run.py calls it)

Writes fig1_theorem_sgd, fig2_theorem_pgpo, fig3_noise, fig4_multiplier, fig5_trajectories (PNG and PDF),
weak_convergence_table.md and weak_convergence_table.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from pgpo.fileio import save_figure
from sde.plotting import G_TITLE, SDE_LABEL, curve_style, plot_curve, slope_guide

STUDIES = ("theorem_sgd", "theorem_pgpo", "noise", "multiplier", "trajectories")
NOISE_LABEL = {("gaussian", "exact"): "Gaussian noise (coupled)",
               ("minibatch", "exact"): "minibatch noise",
               ("minibatch", "independent_batch"): "minibatch, I from an independent batch",
               ("minibatch", "same_batch"): "minibatch, I from the same batch"}


def load(results_dir: str) -> dict:
    docs = {}
    for name in STUDIES:
        path = os.path.join(results_dir, f"{name}.json")
        if os.path.exists(path):
            with open(path) as f:
                docs[name] = json.load(f)
    if not docs:
        raise FileNotFoundError(f"no study results in {results_dir}")
    return docs


def _panel(doc, pid):
    for p in doc["panels"]:
        if p["id"] == pid:
            return p
    raise KeyError(pid)


def _slope_text(c):
    if c["slope"] is None:
        return "slope n/a"
    lo, hi = c["slope_ci"]
    return f"slope {c['slope']:.2f} [{lo:.2f}, {hi:.2f}]"


def _finish(ax, curves, title):
    etas = [e for c in curves for e in c["eta"]]
    errs = [abs(e) for c in curves for e in c["error"] if e is not None]
    slope_guide(ax, etas, errs)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(r"step size $\eta$")
    ax.set_ylabel(r"$|E\,g(\theta_N) - E\,g(\Theta_T)|$")
    ax.set_title(title, fontsize=9.5)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=6.8, loc="upper center", bbox_to_anchor=(0.5, -0.17), frameon=False)


def fig_theorem_sgd(doc, out_dir, written):
    panels = [p for p in doc["panels"] if p["kind"] == "weak_error"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 5.0), squeeze=False)
    colors = {"sq_norm": "#1f77b4", "linear": "#ff7f0e", "fluctuation": "#2ca02c"}
    for ax, p in zip(axes[0], panels):
        curves = [c for c in p["items"] if c["sde"] == "sgd_sde"]
        for c in curves:
            plot_curve(ax, c, style={"color": colors[c["g"]]}, label=f"{G_TITLE[c['g']]}: {_slope_text(c)}")
        how = "exact moments" if curves[0]["method"] == "closed_form" else \
            f"coupled Monte Carlo, {min(curves[0]['n_paths_per_eta'])}-{max(curves[0]['n_paths_per_eta'])} paths"
        _finish(ax, curves, f"SGD vs SGD-SDE, {p['spec']['problem']} ({how})")
    fig.suptitle("Theorem A.2 (i): SGD is tracked by the SGD-SDE to order 1 (95 % CI)", fontsize=11)
    save_figure(fig, out_dir, "fig1_theorem_sgd", written)


def fig_theorem_pgpo(doc, out_dir, written):
    panels = [p for p in doc["panels"] if p["kind"] == "weak_error"]
    tests = ["sq_norm", "fluctuation"]
    fig, axes = plt.subplots(len(panels), 2, figsize=(11.5, 4.9 * len(panels)), squeeze=False)
    for row, p in zip(axes, panels):
        for ax, g in zip(row, tests):
            curves = [c for c in p["items"] if c["g"] == g]
            for c in curves:
                plot_curve(ax, c, label=f"PGPO vs {SDE_LABEL[c['sde']]}: {_slope_text(c)}")
            m = curves[0]["multiplier_spec"]
            _finish(ax, curves, f"{p['spec']['problem']}: {G_TITLE[g]}  (m = min(1 + {m['alpha']:.3g} I, "
                                f"{m['m_max']:g}))")
    fig.suptitle("Theorem A.2 (ii): which SDE models PGPO? Only the moment-matched diffusion "
                 r"$m\sqrt{\eta\Sigma}$ tracks the fluctuation (95 % CI)", fontsize=11)
    save_figure(fig, out_dir, "fig2_theorem_pgpo", written)


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
                plot_curve(ax, c, style={"color": col},
                           label=f"{NOISE_LABEL[(c['noise'], c['info'])]}: {_slope_text(c)}")
            disc = p["spec"].get("discrete", "pgpo").upper()
            _finish(ax, curves, f"{p['spec']['problem']}, {disc} vs {SDE_LABEL[curves[0]['sde']]}: {G_TITLE[g]}")
    fig.suptitle("Genuine minibatch noise keeps SGD order 1. A noisy I_k - from the gradient's own batch or an "
                 "independent one - biases PGPO's drift, E[m(I_B) grad L_B] != m(I) grad L (O(1/B), not O(eta)), "
                 "so the error stops shrinking", fontsize=10)
    save_figure(fig, out_dir, "fig3_noise", written)


def fig_multiplier(doc, traj_doc, pgpo_doc, out_dir, written):
    fig, axes = plt.subplots(2, 2, figsize=(11.5, 9.6))
    # (a) smooth vs clipped shape on the fluctuation
    ax = axes[0][0]
    smooth = [c for c in _panel(doc, "smooth_shape")["items"] if c["g"] == "fluctuation"]
    curves = list(smooth)
    for c in smooth:
        plot_curve(ax, c, label=f"smooth m, vs {SDE_LABEL[c['sde']]}: {_slope_text(c)}")
    if pgpo_doc is not None:
        for c in _panel(pgpo_doc, "quadratic")["items"]:
            if c["g"] == "fluctuation" and c["sde"] in ("matched", "paper"):
                plot_curve(ax, c, style=dict(curve_style(c), ls="--"),
                           label=f"clipped m, vs {SDE_LABEL[c['sde']]}: {_slope_text(c)}")
                curves.append(c)
    _finish(ax, curves, "(a) quadratic, " + G_TITLE["fluctuation"] + ": clipped (dashed) vs smooth m(I)")
    # (b) I and m along one path
    ax = axes[0][1]
    if traj_doc is not None:
        tr = _panel(traj_doc, "quadratic")["items"][0]
        t = np.asarray(tr["t"][:-1])
        ax.plot(t, tr["info_path"], color="#1f77b4", label=r"$I_k$ (excess loss)")
        ax.set_xlabel("time t = k eta")
        ax.set_ylabel(r"$I_k$", color="#1f77b4")
        ax2 = ax.twinx()
        ax2.plot(t, tr["multiplier_path"], color="#d62728", label=r"$m_k$")
        ax2.axhline(tr["multiplier_spec"]["m_max"], color="#d62728", ls=":", lw=0.8)
        ax2.set_ylabel(r"$m_k$", color="#d62728")
        ax.set_title(f"(b) one PGPO path (quadratic, eta={tr['eta']:g}); steps at the cap: "
                     f"{100 * tr['cap_fraction']:.0f} % (all paths)", fontsize=9.5)
        ax.grid(True, alpha=0.25)
    # (c) weak-error constants vs alpha; (d) cap fraction vs alpha
    rows = _panel(doc, "alpha_mmax")["items"]
    mmaxes = sorted({r["m_max"] for r in rows})
    cmap = plt.get_cmap("viridis")
    for k, mm in enumerate(mmaxes):
        col = cmap(k / max(len(mmaxes) - 1, 1))
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
    for ax, title, ylab in ((axes[1][0], f"(c) weak-error size at eta={eta_small:g}: constant C = error/eta "
                             "(matched) and plateau (paper)", "|C|  /  plateau"),
                            (axes[1][1], "(d) fraction of PGPO steps with m at the cap", "fraction at cap")):
        ax.set_xscale("log")
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel(r"sensitivity $\alpha \cdot I(\theta_0)$")
        ax.set_ylabel(ylab)
        ax.set_title(title, fontsize=9.5)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=6.5)
    axes[1][0].set_yscale("log")
    fig.suptitle("The multiplier: shape, cap and sensitivity (quadratic)", fontsize=11)
    save_figure(fig, out_dir, "fig4_multiplier", written)


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
        ax.set_title(f"{p['id']}: eta={tr['eta']:g}, {tr['n_paths']} paths", fontsize=9.5)
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=6.5)
    fig.suptitle("Mean trajectories: the paper's SDE under-disperses (its sd band is too narrow where m > 1)",
                 fontsize=11)
    save_figure(fig, out_dir, "fig5_trajectories", written)


def table_rows(docs: dict) -> list[dict]:
    rows = []
    for name in STUDIES:
        doc = docs.get(name)
        if doc is None:
            continue
        for p in doc["panels"]:
            if p["kind"] not in ("weak_error", "minibatch"):
                continue
            for c in p["items"]:
                rows.append({"study": name, "panel": p["id"], "problem": c["problem"], "discrete": c["discrete"],
                             "sde": c["sde"], "g": c["g"], "noise": c["noise"], "info": c["info"],
                             "method": c["method"], "slope": c["slope"], "slope_ci": c["slope_ci"],
                             "verdict": c["verdict"], "n_paths": c["n_paths"],
                             "n_paths_max": max(c["n_paths_per_eta"]) if c["n_paths_per_eta"] else 0,
                             "eta_min": min(c["eta"]), "eta_max": max(c["eta"]),
                             "wall_time_s": c.get("wall_time_s")})
    return rows


def write_table(docs: dict, out_dir: str, written: list) -> None:
    rows = table_rows(docs)
    with open(os.path.join(out_dir, "weak_convergence_table.json"), "w") as f:
        json.dump(rows, f, indent=1)
    lines = ["# Weak-convergence slopes",
             "",
             "Generated by `paper_figures/weak_convergence.py` from the study results; do not edit by hand.",
             "Slope = fitted exponent p in |error| ~ C eta^p on the points with |error| > 3 s.e.; 95 % CI;",
             "verdict: *order 1* when the interval meets [0.85, 1.15], *levels off* when it lies below.",
             "Paths: Monte Carlo paths per eta (min-max over the grid; 0 = exact moments). Time: wall seconds",
             "of the curve's share of its panel on a 2-core machine.",
             "",
             "| study | problem | discrete | SDE | g | noise / I | slope | 95 % CI | verdict | paths | time s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = "n/a" if r["slope"] is None else f"[{r['slope_ci'][0]:.2f}, {r['slope_ci'][1]:.2f}]"
        slope = "n/a" if r["slope"] is None else f"{r['slope']:.2f}"
        noise = r["noise"] if r["info"] == "exact" else f"{r['noise']} / {r['info'].replace('_batch', ' batch')}"
        paths = "exact" if r["method"] == "closed_form" else (
            f"{r['n_paths']}" if r["n_paths"] == r["n_paths_max"] else f"{r['n_paths']}-{r['n_paths_max']}")
        t = "" if r["wall_time_s"] is None else f"{r['wall_time_s']:.1f}"
        lines.append(f"| {r['study']} | {r['problem']} | {r['discrete']} | {r['sde']} | {r['g']} | {noise} | "
                     f"{slope} | {ci} | {r['verdict']} | {paths} | {t} |")
    path = os.path.join(out_dir, "weak_convergence_table.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    written += [path, os.path.join(out_dir, "weak_convergence_table.json")]


def make_all(results_dir: str, out_dir: str) -> list[str]:
    matplotlib.use("Agg", force=True)
    docs = load(results_dir)
    os.makedirs(out_dir, exist_ok=True)
    written: list[str] = []
    if "theorem_sgd" in docs:
        fig_theorem_sgd(docs["theorem_sgd"], out_dir, written)
    if "theorem_pgpo" in docs:
        fig_theorem_pgpo(docs["theorem_pgpo"], out_dir, written)
    if "noise" in docs:
        fig_noise(docs["noise"], out_dir, written)
    if "multiplier" in docs:
        fig_multiplier(docs["multiplier"], docs.get("trajectories"), docs.get("theorem_pgpo"), out_dir, written)
    if "trajectories" in docs:
        fig_trajectories(docs["trajectories"], out_dir, written)
    write_table(docs, out_dir, written)
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results/weak_convergence")
    ap.add_argument("--out", default="paper_figures/weak_convergence")
    args = ap.parse_args(argv)
    files = make_all(args.results, args.out)
    print(f"wrote {len(files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
