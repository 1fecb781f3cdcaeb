"""The exact asymptotic coefficients of a closed-form weak-error curve: e(eta) = B + C1 eta + C2 eta^2 + O(eta^3).

A closed-form curve (the quadratics' exact moments, sde.exact; the stationary floors, sde.stationary) is a smooth
function of eta known to rounding, not a sample: its coefficients are numbers to compute, not to estimate from the
scatter of a few residuals. `exact_coefficients(f, eta_max)` evaluates f on eta_j = eta_max / 2^j (j = 0..J) and
extrapolates to eta -> 0 by polynomial least squares (QR, sde.stats.weighted_polyfit): B, C1, C2 are the fitted
polynomial's first three coefficients. Their accuracy is judged, not assumed: the same extrapolation with one
degree more, and on the grid without its largest eta, must agree; the largest difference is the reported
tolerance (with a floor of 1e3 ulp of the values' scale: rounding in f). A coefficient whose magnitude is within its
tolerance is zero to the computed precision.

For Definition A.1's maximum over k <= N the curve is smooth too once the maximising time converges (an interior
maximum moves by O(eta) and the maximum of a smooth function changes only at second order); where it is not, the
extrapolations disagree and the tolerance says so.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from sde.stats import weighted_polyfit

DEGREE = 5            # polynomial degree of the extrapolation (the model B + C1 eta + C2 eta^2 + ... to eta^5)
LEVELS = 9            # eta_max / 2^j, j = 0..8


def exact_coefficients(f: Callable[[float], float], eta_max: float, levels: int = LEVELS,
                       degree: int = DEGREE) -> dict:
    """{"B", "C1", "C2", "tolerance": {"B", "C1", "C2"}, "etas", "values"} for the smooth function f near 0."""
    etas = eta_max * 0.5 ** np.arange(levels)
    vals = np.array([float(f(float(e))) for e in etas])
    ones = np.ones_like(etas)
    fits = [weighted_polyfit(etas, vals, ones, degree)[0],
            weighted_polyfit(etas, vals, ones, degree + 1)[0],
            weighted_polyfit(etas[1:], vals[1:], ones[1:], degree)[0]]
    scale = float(np.abs(vals).max())
    floor = 1e3 * np.finfo(float).eps * scale
    out = {"etas": etas.tolist(), "values": vals.tolist(), "degree": degree, "tolerance": {}}
    for i, name in enumerate(("B", "C1", "C2")):
        est = [float(fit[i]) for fit in fits]
        out[name] = est[0]
        out["tolerance"][name] = max(abs(e - est[0]) for e in est[1:]) + floor / eta_max ** i
    return out
