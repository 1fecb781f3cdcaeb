"""The variants figure (fig10): each variant's weak error against its SDE and how it changes the step along the
run, from every variant panel of the variants study."""

from __future__ import annotations

import matplotlib.pyplot as plt

from runtools.figures import save_figure
from sde.figures.common import finish
from sde.plotting import G_TITLE, LEGEND_FONTSIZE, MARKER_NOTE, SDE_STYLE, fit_text, plot_curve

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


def fig_variants(res, study, out_dir, written):
    """Top: the weak error of each variant against its SDE (and the comparison it changes), g = the panel's first test
    function. Bottom: how the variant changes the step along the run (m_k's 10-90 % band and mean, or the per-sample
    drift's relative distance from m(I) grad L along theta_bar)."""
    panels = res.of_kind(study, "variant")
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
        finish(ax, shown, f"{p['spec']['problem']}, B={shown[0]['batch_size']}, {VARIANT_TITLE[p['spec']['variant']]}"
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
