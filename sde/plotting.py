"""Figures from results.json (never from a re-simulation): log-log weak error with 95 % error bars; the styles,
labels and number formats the study's figures (sde.figures) and its verdict table (sde.table) share."""

from __future__ import annotations

import math
import os

import numpy as np

from runtools.figures import save_figure
from sde.stats import Z95

SDE_STYLE = {
    "sgd_sde": dict(color="#1f77b4", marker="o"),
    "paper": dict(color="#d62728", marker="s"),
    "matched": dict(color="#2ca02c", marker="^"),
    "gradient_flow": dict(color="#7f7f7f", marker="v"),
    "averaged": dict(color="#8c564b", marker="P"),
    "matched_2": dict(color="#17becf", marker="*"),
    "paper_2": dict(color="#e377c2", marker="X"),
    "augmented": dict(color="#9467bd", marker="D"),
    "per_sample": dict(color="#ff7f0e", marker="h"),
    "exact-I process": dict(color="#8c564b", marker="p"),
}
G_TITLE = {"sq_norm": r"$g=|\theta|^2$", "linear": r"$g=\theta_1$", "loss": r"$g=L(\theta)$",
           "cross": r"$g=\theta_1\theta_2$",
           "fluctuation": r"$g=|\theta-\bar\theta(T)|^2/\eta$"}
SDE_LABEL = {"sgd_sde": "SGD-SDE (Eq. 7)", "paper": "paper SDE", "matched": "moment-matched SDE",
             "gradient_flow": "gradient flow", "averaged": "averaged-drift SDE",
             "matched_2": "order-2 drift, matched diffusion", "paper_2": "order-2 drift, paper's diffusion",
             "augmented": "augmented SDE (Theta, Ibar)", "per_sample": "per-sample SDE",
             "exact-I process": "the same process with the exact I (paired)"}
MARKER_NOTE = ("95 % CI (a bar ending in a caret reaches 0); filled = in the fit, hollow = dropped (misfit); thin "
               "dashed level = predicted plateau")
LEGEND_FONTSIZE = 7.5
PLATEAU_LS = (0, (6, 3))                # the predicted plateau: the only dashed lines in the curve panels
SLOPE_STYLE = {1.0: dict(color="0.25", ls=(0, (1, 2)), lw=0.9), 2.0: dict(color="0.55", ls=(0, (3, 1, 1, 1)), lw=0.9)}
def eta_label(e: float) -> str:
    """A step size as a tick label: 2^-k for powers of two, otherwise 3 significant digits in scientific form below
    0.01 (never 0.000244141)."""
    k = math.log2(e)
    if abs(k - round(k)) < 1e-9:
        return rf"$2^{{{int(round(k))}}}$"
    if e >= 0.01:
        return f"{e:g}"
    exp = math.floor(math.log10(e))
    return rf"${e / 10 ** exp:.3g}\times10^{{{exp}}}$"


def eta_axis(ax, etas) -> None:
    """Log step-size axis with one labelled tick per step size of the grid."""
    from matplotlib.ticker import NullLocator
    grid = sorted(set(float(e) for e in etas))
    ax.set_xscale("log")
    ax.set_xticks(grid, [eta_label(e) for e in grid], fontsize=7.5, rotation=35 if len(grid) > 6 else 0,
                  ha="right" if len(grid) > 6 else "center")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(r"step size $\eta$", labelpad=2)


def wrap_label(text: str, width: int = 64) -> str:
    """A legend label folded onto lines of about `width` characters, never inside a $...$ math span."""
    words, lines, line, in_math = text.split(" "), [], "", False
    for w in words:
        if line and not in_math and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
        in_math ^= w.count("$") % 2 == 1
    return "\n".join(lines + [line])


def legend_below(ax, width: int = 64, **kw) -> None:
    """The legend under the axes, clear of the x label, its labels folded to the axes' width."""
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, [wrap_label(lab, width) for lab in labels], fontsize=LEGEND_FONTSIZE, loc="upper center",
              bbox_to_anchor=(0.5, -0.2), frameon=False, **kw)


def fmt_num(v: float | None) -> str:
    """A coefficient as the figures and the table print it (n/a for None)."""
    return "n/a" if v is None else (f"{v:.2g}" if abs(v) < 1e-2 else f"{v:.3g}")


def fmt_ci(v: float | None, ci) -> str:
    """'v [lo, hi]' (n/a for None)."""
    return "n/a" if v is None else f"{fmt_num(v)} [{fmt_num(ci[0])}, {fmt_num(ci[1])}]"


def fit_text(c: dict) -> str:
    """The verdict with the coefficient that decided it: 'order 1, C1 0.29 [0.27, 0.31]', 'plateau B 0.475
    [0.473, 0.477] (predicted 0.477)', 'order 2, C2 ...' or 'inconclusive'."""
    f, v = c.get("fit") or {}, c["verdict"]
    pred = c.get("prediction")
    if v == "converges elsewhere":
        text = f"plateau B {fmt_ci(f['B'], f['B_ci'])}"
        return text + (f" (predicted {fmt_num(pred)})" if pred is not None else "")
    if v == "order 1":
        return f"order 1, C1 {fmt_ci(f['C1'], f['C1_ci'])}"
    if v == "order 2":
        return f"order 2, C2 {fmt_ci(f['C2'], f['C2_ci'])}"
    return "inconclusive"


def mult_text(c) -> str:
    """The curve's multiplier as the figures and the table print it."""
    if c.get("m_text"):                           # the variants name their rule themselves
        return c["m_text"]
    m = c.get("multiplier_spec")
    if m is None:
        return "m = 1"
    if m["shape"] == "constant":
        return f"m = {m['m_max']:g}"
    return f"{'clipped' if m['shape'] == 'clipped_linear' else 'smooth'} m, alpha={m['alpha']:.3g}, m_max={m['m_max']:g}"


def _use_agg():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def curve_label(c: dict) -> str:
    name = f"{c['discrete'].upper()} vs {SDE_LABEL.get(c['sde'], c['sde'])}"
    if c.get("method") == "closed_form":
        name += " (exact)"
    if c.get("noise") == "minibatch":
        name += f", minibatch, I: {c['info'].replace('_batch', '')}"
    return f"{name}: {fit_text(c)}"


PGPO_STYLE = {"sgd_sde": dict(color="#9467bd", marker="D"), "gradient_flow": dict(color="#222222", marker="v")}


def curve_style(c: dict) -> dict:
    """Colour and marker by SDE; PGPO's gradient flow / SGD-SDE controls differ from SGD's."""
    if c["discrete"] == "pgpo" and c["sde"] in PGPO_STYLE:
        return dict(PGPO_STYLE[c["sde"]])
    return dict(SDE_STYLE.get(c["sde"], {}))


def plot_curve(ax, c: dict, style: dict | None = None, label: str | None = None) -> None:
    """|error| vs eta with 95 % bars; filled markers were used in the fit, hollow ones were not; the predicted
    plateau |B| (when non-zero) as a dashed level in the curve's colour."""
    style = dict(curve_style(c), **(style or {}))
    eta = np.asarray(c["eta"], float)
    err = np.abs(np.asarray([np.nan if e is None else e for e in c["error"]], float))
    se = np.asarray([0.0 if s is None else s for s in c["stderr"]], float)
    used = np.asarray((c.get("fit") or {}).get("used") or [True] * len(eta), bool)
    half = Z95 * se
    # on a log axis a bar that reaches 0 would stretch the axis to 1e-7: it stops at |e| / 4 with a caret
    reaches_zero = half >= err
    lower = np.where(reaches_zero, 0.75 * err, half)
    ls = "-." if c.get("info") == "same_batch" else "-"
    ls = style.get("ls", ls)
    color, marker = style.get("color"), style.get("marker", "o")
    ax.plot(eta, err, ls=ls, color=color, lw=1.2, label=label if label is not None else curve_label(c))
    ax.errorbar(eta[used], err[used], yerr=[lower[used], half[used]], fmt=marker, color=color, ms=4, lw=0.8,
                capsize=2)
    if (~used).any():
        ax.errorbar(eta[~used], err[~used], yerr=[lower[~used], half[~used]], fmt=marker, color=color, ms=4,
                    mfc="none", lw=0.8, capsize=2)
    if reaches_zero.any():
        ax.plot(eta[reaches_zero], 0.25 * err[reaches_zero], ls="none", marker="v", color=color, ms=3.5)
    pred = c.get("prediction")
    if pred:
        ax.axhline(abs(pred), color=color, ls=PLATEAU_LS, lw=0.8, alpha=0.8)


def slope_guide(ax, etas, errs, slope=1.0) -> None:
    """A dotted eta^slope line through the geometric middle of the plotted data."""
    etas = np.asarray(etas, float)
    errs = np.asarray([e for e in errs if e is not None and e > 0 and math.isfinite(e)], float)
    if errs.size == 0:
        return
    e_mid = math.exp(np.log(errs).mean())
    x = np.array([etas.min(), etas.max()])
    x_mid = math.exp(np.log(x).mean())
    ax.plot(x, e_mid * (x / x_mid) ** slope, **SLOPE_STYLE.get(slope, SLOPE_STYLE[1.0]),
            label=rf"slope {slope:g} guide")


def plot_weak_error(results: dict, path: str, curves: list[dict] | None = None, title: str | None = None) -> str:
    """One panel per test function; every curve of the study document `results` (or the given subset)."""
    plt = _use_agg()
    if curves is None:
        from sde.results import study_curves
        curves = study_curves(results)
    tests = [g for g in ("sq_norm", "linear", "fluctuation") if any(c["g"] == g for c in curves)]
    n_leg = max(sum(c["g"] == g for c in curves) for g in tests) + 1
    fig, axes = plt.subplots(1, len(tests), figsize=(5.6 * len(tests), 4.4 + 0.19 * n_leg), squeeze=False)
    for ax, g in zip(axes[0], tests):
        sub = [c for c in curves if c["g"] == g]
        all_eta, all_err = [], []
        for c in sub:
            plot_curve(ax, c)
            all_eta += c["eta"]
            all_err += [abs(e) for e in c["error"] if e is not None]
        slope_guide(ax, all_eta, all_err)
        eta_axis(ax, all_eta)
        ax.set_yscale("log")
        ax.set_ylabel(r"weak error $|E\,g(\theta_N)-E\,g(\Theta_T)|$")
        ax.set_title(G_TITLE.get(g, g))
        ax.grid(True, which="both", alpha=0.25)
        legend_below(ax)
    fig.suptitle(title or f"{curves[0]['problem']}: weak error at T={curves[0].get('T', 1.0):g} ({MARKER_NOTE})",
                 fontsize=10)
    if path.endswith(".png"):                                  # and the PDF beside it
        save_figure(fig, os.path.dirname(path) or ".", os.path.basename(path)[:-4], dpi=130)
    else:
        fig.tight_layout()
        fig.savefig(path, dpi=130)
        plt.close(fig)
    return path
