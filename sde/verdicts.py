"""The verdict rule: what a weak-error curve e(eta) shows as eta -> 0, decided for a whole table of curves at once.

Each curve is modelled as e(eta) = B + C1 eta + C2 eta^2 (B: the limit, a plateau when non-zero).

Monte Carlo curves (`fit_curve`): weighted least squares with weights 1 / s.e.^2 (sde.stats.weighted_polyfit);
while the chi^2 misfit has p < MISFIT_P the largest eta is dropped (the expansion is asymptotic), and a fit trimmed
to 3 points, with no degree of freedom left to check it, gives no verdict. Each coefficient X gets a two-sided
p-value from z = X / s.e.(X).

- *Multiplicity.* Every "X is non-zero" claim of the table (B, C1 and C2 of every Monte Carlo curve) is one test of
  one family, and the family is controlled by Holm's step-down procedure at a family-wise error rate FAMILY_LEVEL:
  with a few hundred claims read one by one, the whole table's non-zero claims then hold jointly at 95 %. Holm and
  not Benjamini-Hochberg: the claims are read individually (a false plateau in any row is an error in the text), and
  Holm needs no assumption on the dependence between tests - curves of one panel share their paths.
- *Non-zero* (X): Holm rejects X = 0, and X matters (its share of the fitted error at the smallest fitted eta is at
  least MATERIAL_FRACTION; C2 always counts).
- *Bounded* (B, C1): a one-sided 95 % upper bound on |X| (|X| + 1.645 s.e.), reported as "|B| < delta"; X is
  bounded small when that bound's share of the fitted error at the smallest eta is under EQUIVALENCE_FRACTION
  (the bound on |C1| is scaled by that eta). An order verdict therefore bounds the plateau it rules out.
- *Stable* (B): the same fit without its largest eta, and (with five or more points) the fit with an eta^3 term
  added, give B of the same sign beyond STABILITY_Z s.e.: a plateau must not be an artefact of an unmodelled
  eta^3 term at the coarse steps.

Verdicts: *converges elsewhere* (B non-zero and stable: the plateau B is the limit of the error); *order 1* (B
bounded small, C1 non-zero); *order 2* (B and C1 bounded small, C2 non-zero); *inconclusive* otherwise (the reason
says which condition failed), or with fewer than 3 points above 3 s.e. (no fit).

Closed-form curves (`exact` coefficients from sde.asymptotics): the coefficients are computed, not estimated; X is
zero when |X| is within EXACT_ZERO_FACTOR times its extrapolation tolerance, non-zero otherwise, and the verdict is
the first non-zero coefficient (B: converges elsewhere; C1: order 1; C2: order 2).

The rule's error rates - false plateaus, wrong orders, inconclusive - are measured by parametric bootstrap on the
study's own eta grids and standard errors (sde.calibration) and printed in the table's header.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from sde.stats import Z95, weighted_polyfit

FAMILY_LEVEL = 0.05
MATERIAL_FRACTION = 0.05
EQUIVALENCE_FRACTION = 1.0
STABILITY_Z = 2.0
MISFIT_P = 0.05
EXACT_ZERO_FACTOR = 10.0
MIN_SNR = 3.0
Z_ONE_SIDED_95 = 1.6448536269514722
COEFFICIENTS = ("B", "C1", "C2")

VERDICT_RULE = (
    "Fit e(eta) = B + C1 eta + C2 eta^2 (Monte Carlo: weights 1 / s.e.^2; while the chi^2 misfit has p < 0.05 the "
    "largest eta is dropped, and a fit trimmed to 3 points gives no verdict). Non-zero: Holm's procedure rejects "
    "X = 0 at a family-wise error rate of 5 % over every B, C1 and C2 test of the table, and X is at least 5 % of the "
    "fitted error at the smallest eta (C2 always counts). Bounded small: the one-sided 95 % bound |X| + 1.645 s.e. "
    "(times eta_min for C1) is under the fitted error at the smallest eta; an order verdict prints that bound "
    "as |B| < delta. A plateau must be stable: the fit without the largest eta and (five or more points) the fit "
    "with an eta^3 term give B of the same sign beyond 2 s.e. *converges elsewhere*: B non-zero and stable; *order 1*: B bounded small, C1 non-zero; *order 2*: B "
    "and C1 bounded small, C2 non-zero; *inconclusive*: anything else, or fewer than 3 points above 3 s.e. "
    "Closed forms: B, C1, C2 are computed by polynomial extrapolation of the exact e(eta) to eta -> 0 "
    "(sde.asymptotics), zero within 10 times their extrapolation tolerance; the verdict is the first non-zero one.")


def _p_two_sided(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0))


def fit_curve(eta, err, stderr, exact: dict | None = None, min_snr: float = MIN_SNR) -> dict:
    """The fit of one curve and everything the verdict needs (no verdict: `assign` decides for a family).

    Returns {"B", "B_se", "B_ci", "C1", ..., "C2", ..., "chi2", "dof", "p_value", "used", "n_above_noise", "exact",
    "error_at_min_eta", "fit_eta_min", "p": {X: p-value}, "bound": {"B", "C1"}, "share": {X: share},
    "stable": {"B", "B_se"} or None, "status"}; status is "fit", "exact", "no fit", "misfit" or "trimmed"."""
    eta = np.asarray(eta, float)
    err = np.asarray(err, float)
    se = np.nan_to_num(np.asarray(stderr, float), nan=np.inf)
    ok = np.isfinite(err) & np.isfinite(eta)
    out = {name: None for name in ("B", "B_se", "C1", "C1_se", "C2", "C2_se", "chi2", "dof", "p_value",
                                   "error_at_min_eta", "fit_eta_min", "stable")}
    out.update({f"{x}_ci": [None, None] for x in COEFFICIENTS})
    out.update(used=[False] * len(eta), min_snr=min_snr, p={}, bound={}, share={}, status="no fit",
               exact=exact is not None)
    if exact is not None:
        return _exact_fit(out, eta, err, exact)
    above = ok & (np.abs(err) > 0) & (np.abs(err) > min_snr * se)
    out["n_above_noise"] = int(above.sum())
    use = ok & np.isfinite(se) & (se > 0)                      # a Monte Carlo point needs an error bar
    if out["n_above_noise"] < 3 or use.sum() < 3:
        return out
    trimmed = 0
    while True:
        x, y, s = eta[use], err[use], se[use]
        beta, cov, chi2 = weighted_polyfit(x, y, 1.0 / s ** 2, 2)
        dof = int(use.sum()) - 3
        p = None if dof == 0 else float(sps.chi2.sf(chi2, dof))
        if p is None or p >= MISFIT_P or int((use & above).sum()) <= 3 or use.sum() <= 3:
            break
        use[np.flatnonzero(use)[np.argmax(x)]] = False           # drop the largest eta and refit
        trimmed += 1
    out.update(chi2=chi2, dof=dof, p_value=p, used=use.tolist(), n_above_noise=int((use & above).sum()),
               trimmed=trimmed)
    if out["n_above_noise"] < 3:
        return out
    out["status"] = "misfit" if (p is not None and p < MISFIT_P) else ("trimmed" if trimmed and dof == 0 else "fit")
    sd = np.sqrt(np.diag(cov))
    for name, b, s_ in zip(COEFFICIENTS, beta, sd):
        out[name], out[name + "_se"] = float(b), float(s_)
        out[name + "_ci"] = [float(b - Z95 * s_), float(b + Z95 * s_)]
        out["p"][name] = _p_two_sided(b / s_) if s_ > 0 else 0.0
    eta_min = float(x.min())
    e_min = out["B"] + out["C1"] * eta_min + out["C2"] * eta_min ** 2
    out.update(error_at_min_eta=e_min, fit_eta_min=eta_min)
    out["share"] = {"B": abs(out["B"]) / abs(e_min), "C1": abs(out["C1"]) * eta_min / abs(e_min), "C2": math.inf} \
        if e_min != 0 else {"B": math.inf, "C1": math.inf, "C2": math.inf}
    out["bound"] = {"B": abs(out["B"]) + Z_ONE_SIDED_95 * out["B_se"],
                    "C1": abs(out["C1"]) + Z_ONE_SIDED_95 * out["C1_se"]}
    checks = []
    if use.sum() >= 4:                                            # the same fit without the largest eta
        keep = use.copy()
        keep[np.flatnonzero(keep)[np.argmax(eta[keep])]] = False
        b2, c2, _ = weighted_polyfit(eta[keep], err[keep], 1.0 / se[keep] ** 2, 2)
        checks.append({"check": "largest eta dropped", "B": float(b2[0]), "B_se": float(math.sqrt(c2[0, 0]))})
    if use.sum() >= 5:                                            # and with an eta^3 term
        b3, c3, _ = weighted_polyfit(x, y, 1.0 / s ** 2, 3)
        checks.append({"check": "eta^3 term added", "B": float(b3[0]), "B_se": float(math.sqrt(c3[0, 0]))})
    out["stable"] = checks or None
    return out


def _exact_fit(out: dict, eta, err, exact: dict) -> dict:
    tol = exact["tolerance"]
    for name in COEFFICIENTS:
        v, t = float(exact[name]), float(tol[name])
        out[name], out[name + "_se"], out[name + "_ci"] = v, t, [v - t, v + t]
    eta_min = float(np.min(eta))
    out.update(status="exact", used=[True] * len(eta), n_above_noise=int(np.sum(np.abs(err) > 0)), dof=None,
               error_at_min_eta=out["B"] + out["C1"] * eta_min + out["C2"] * eta_min ** 2, fit_eta_min=eta_min,
               exact_etas=[min(exact["etas"]), max(exact["etas"])])
    return out


def holm(pvalues: list[float], level: float = FAMILY_LEVEL) -> list[bool]:
    """Holm's step-down procedure: which hypotheses are rejected at family-wise error rate `level`."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    reject = [False] * len(pvalues)
    m = len(pvalues)
    for rank, i in enumerate(order):
        if pvalues[i] > level / (m - rank):
            break
        reject[i] = True
    return reject


def decide(fit: dict, rejected: dict) -> tuple[str, str]:
    """(verdict, reason) of one curve, given which of its coefficients the family's Holm procedure rejected."""
    st = fit["status"]
    if st == "no fit":
        return "inconclusive", f"{fit.get('n_above_noise', 0)} point(s) above {fit['min_snr']:g} s.e.: no fit"
    if st == "misfit":
        return "inconclusive", f"misfit: chi^2 = {fit['chi2']:.1f} on {fit['dof']} dof (p = {fit['p_value']:.2g})"
    if st == "trimmed":
        return "inconclusive", "misfit trimmed the fit to 3 points: no degree of freedom left to check it"
    note = f" (largest {fit['trimmed']} eta dropped for misfit)" if fit.get("trimmed") else ""
    if st == "exact":
        zero = {x: abs(fit[x]) <= EXACT_ZERO_FACTOR * fit[x + "_se"] for x in COEFFICIENTS}
        if not zero["B"]:
            return "converges elsewhere", "B non-zero (exact)"
        if not zero["C1"]:
            return "order 1", "B zero, C1 non-zero (exact)"
        if not zero["C2"]:
            return "order 2", "B and C1 zero, C2 non-zero (exact)"
        return "inconclusive", "B, C1 and C2 zero to the computed precision"
    nonzero = {x: rejected.get(x, False) and fit["share"][x] >= MATERIAL_FRACTION for x in COEFFICIENTS}
    small_b = fit["bound"]["B"] < EQUIVALENCE_FRACTION * abs(fit["error_at_min_eta"])
    small_c1 = fit["bound"]["C1"] * fit["fit_eta_min"] < EQUIVALENCE_FRACTION * abs(fit["error_at_min_eta"])
    delta = f"|B| < {fit['bound']['B']:.2g}"
    if nonzero["B"]:
        if not fit["stable"]:
            return "inconclusive", "B non-zero, but too few points to check it against the next order" + note
        for s in fit["stable"]:
            if np.sign(s["B"]) != np.sign(fit["B"]) or abs(s["B"]) < STABILITY_Z * s["B_se"]:
                return "inconclusive", (f"B non-zero, but not stable with the {s['check']} (B' = {s['B']:.3g} +- "
                                        f"{s['B_se']:.2g})" + note)
        return "converges elsewhere", "B non-zero and stable" + note
    if not small_b:
        return "inconclusive", (f"B not shown zero: {delta} is not under the error at the smallest eta "
                                f"({abs(fit['error_at_min_eta']):.2g})" + note)
    if nonzero["C1"]:
        return "order 1", f"{delta}, C1 non-zero" + note
    if not small_c1:
        return "inconclusive", f"{delta}, C1 neither non-zero nor bounded small" + note
    if nonzero["C2"]:
        return "order 2", f"{delta}, C1 bounded small, C2 non-zero" + note
    return "inconclusive", f"{delta}, C1 bounded small, C2 not non-zero" + note


def family_rejections(fits: list[dict], level: float = FAMILY_LEVEL) -> list[dict]:
    """Holm over every coefficient test of the Monte Carlo fits: per fit, {X: rejected}."""
    keys = [(i, x) for i, f in enumerate(fits) if f["status"] in ("fit",) for x in COEFFICIENTS if x in f["p"]]
    rej = holm([fits[i]["p"][x] for i, x in keys], level)
    out = [dict() for _ in fits]
    for (i, x), r in zip(keys, rej):
        out[i][x] = r
    return out


def assign(curves: list[dict]) -> list[dict]:
    """Give every curve (records holding a "fit" from fit_curve) its verdict, deciding the non-zero claims of all
    of them as one family (Holm); in place, returns curves."""
    fits = [c["fit"] for c in curves]
    for c, fit, rejected in zip(curves, fits, family_rejections(fits)):
        c["verdict"], c["verdict_reason"] = decide(fit, rejected)
        fit["rejected"] = rejected
    return curves


def judge(eta, err, stderr, exact: dict | None = None) -> dict:
    """One curve on its own (a family of one: Holm is the nominal 5 % test): the fit with "verdict" and "reason"."""
    fit = fit_curve(eta, err, stderr, exact=exact)
    rejected = family_rejections([fit])[0]
    fit["verdict"], fit["reason"] = decide(fit, rejected)
    return fit
