"""The noise figures: Gaussian vs minibatch noise with I from each source (fig3, every minibatch panel of the noise
study) and the minibatch I's drift bias over batch sizes (fig6, every batch_gap panel)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from runtools.figures import save_figure
from sde.figures.common import finish
from sde.plotting import G_TITLE, MARKER_NOTE, fit_text, plot_curve

NOISE_LABEL = {("gaussian", "exact"): "Gaussian noise (coupled)",
               ("minibatch", "exact"): "minibatch, exact I",
               ("minibatch", "independent_batch"): "minibatch, I from an independent batch",
               ("minibatch", "same_batch"): "minibatch, I from the same batch"}


def fig_noise(res, study, out_dir, written):
    panels = res.of_kind(study, "minibatch")
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
            finish(ax, curves, f"{p['spec']['problem']}, {disc}, B={curves[0]['batch_size']}: {G_TITLE[g]}")
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


def fig_batch_gap(res, study, out_dir, written):
    panels = res.of_kind(study, "batch_gap")
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
