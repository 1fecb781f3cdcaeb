"""What the figure families share: the endpoint curves of a panel, and the weak-error axes' finish (slope guides,
log axes, title, legend below). A figure takes `res` (sde.report.StudyResults: the results of each study, their
panels found by kind or by role as the study files declare them), the output folder and the list of written paths."""

from __future__ import annotations

from sde.plotting import eta_axis, legend_below, slope_guide

G_ORDER = ["sq_norm", "loss", "cross", "linear", "fluctuation"]


def at_T(items):
    """The endpoint curves of a panel (not Definition A.1's max over time, which only the table lists)."""
    return [c for c in items if c.get("error_at", "T") == "T"]


def finish(ax, curves, title, slopes=(1.0,)):
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
