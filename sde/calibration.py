"""Error rates of the verdict rule, measured by parametric bootstrap on the study's own curves.

    python -m sde calibrate --results results/weak_convergence [--reps 500] [--seed 0]
    (writes results/weak_convergence/calibration.json; the table's header quotes it)

The whole rule is calibrated at once - the fit, the misfit trimming, Holm over the table, the bounds, the stability
check - on the grids and standard errors of the committed Monte Carlo curves:

1. each curve with a theoretical limit (its `prediction`, B_true) gets a *true* curve: B_true plus the polynomial
   in eta (degree 2, or 3 with five or more points) fitted to its data with B held at B_true;
2. a replicate draws every curve anew, e* = true + s.e. Z with independent normal Z (curves of one panel share
   paths in the study, which makes their errors correlated: the per-curve rates below do not depend on that, the
   spread of the table-wide counts does; Holm is valid under any dependence), and applies the rule to all of them
   together;
3. over the replicates, per curve: the fraction of each verdict; a *false plateau* is "converges elsewhere" when
   B_true = 0, a *false order claim* is an order verdict whose bound |B| < delta excludes a non-zero B_true.
   Over the table: the expected number of each, the probability of at least one, and where the committed table's
   own count falls.

`stress()` adds synthetic curves that the study's curves do not contain: an order-1 curve bent by an unmodelled
eta^3 term, and a small true plateau (0.3 e(eta_min)) - the cases where a rule without the stability check and the
bound reads a plateau that is not there, or an order that hides one.
"""

from __future__ import annotations

import time

import numpy as np

from sde.stats import weighted_polyfit
from sde.verdicts import VERDICT_RULE, decide, family_rejections, fit_curve

ORDERS = ("order 1", "order 2")
CALIBRATION_NAME = "calibration.json"       # beside the study results it was measured on


def true_curve(curve: dict) -> tuple[np.ndarray, dict] | None:
    """The curve's errors under its theory, and how they were modelled: B_true (the prediction) plus the lowest-order
    polynomial C1 eta (+ C2 eta^2 (+ C3 eta^3)) whose fit to the curve's points with B held at B_true passes the
    chi^2 test (p >= 0.05); when none does, the cubic, marked `adequate: False`. None without a prediction."""
    from scipy import stats as sps
    b_true = curve.get("prediction")
    if b_true is None or curve.get("exact_coefficients") is not None or curve.get("method") == "closed_form":
        return None
    eta = np.asarray(curve["eta"], float)
    err = np.asarray([np.nan if e is None else e for e in curve["error"]], float)
    se = np.asarray([np.nan if s is None else s for s in curve["stderr"]], float)
    ok = np.isfinite(err) & np.isfinite(se) & (se > 0)
    if ok.sum() < 3:
        return None
    for order in range(1, 4):                    # C1 eta, + C2 eta^2, + C3 eta^3
        if order >= ok.sum():
            break
        coef, _, chi2 = weighted_polyfit(eta[ok], (err[ok] - b_true) / eta[ok], eta[ok] ** 2 / se[ok] ** 2,
                                         order - 1)
        p = float(sps.chi2.sf(chi2, int(ok.sum()) - order))
        if p >= 0.05:
            break
    model = {"order": order, "chi2_p": p, "adequate": p >= 0.05}
    return b_true + eta * np.polyval(coef[::-1], eta), model


def _classify(verdict: str, fit: dict, b_true: float) -> str | None:
    if verdict == "converges elsewhere" and b_true == 0:
        return "false_plateau"
    if verdict in ORDERS and b_true != 0 and fit["bound"]["B"] <= abs(b_true):
        return "false_order"
    return None


def calibrate(curves: list[dict], reps: int = 500, seed: int = 0, progress=None) -> dict:
    """Parametric bootstrap of the rule over `curves` (the table's curves, all studies together)."""
    rng = np.random.default_rng(seed)
    sim, models = [], []
    for c in curves:
        tm = true_curve(c)
        if tm is not None:
            se = np.asarray([np.nan if s is None else s for s in c["stderr"]], float)
            sim.append((c, tm[0], se))
            models.append(tm[1])
    n = len(sim)
    counts = np.zeros((n, 4), int)                 # verdict counts per curve, VERDICT order below
    errors = {"false_plateau": np.zeros(n, int), "false_order": np.zeros(n, int)}
    per_rep = {"false_plateau": [], "false_order": []}
    names = ("order 1", "order 2", "converges elsewhere", "inconclusive")
    t0 = time.perf_counter()
    for r in range(reps):
        fits = []
        for c, t, se in sim:
            e = t + np.nan_to_num(se, nan=0.0) * rng.standard_normal(t.size)
            fits.append(fit_curve(c["eta"], e, se))
        rej = family_rejections(fits)
        tally = {"false_plateau": 0, "false_order": 0}
        for i, ((c, _, _), fit, rj) in enumerate(zip(sim, fits, rej)):
            v, _ = decide(fit, rj)
            counts[i, names.index(v)] += 1
            kind = _classify(v, fit, float(c["prediction"]))
            if kind:
                errors[kind][i] += 1
                tally[kind] += 1
        for k in tally:
            per_rep[k].append(tally[k])
        if progress is not None:
            progress(r + 1, reps, time.perf_counter() - t0)
    zero = np.array([float(c["prediction"]) == 0 for c, _, _ in sim])
    out = {"rule": VERDICT_RULE, "reps": reps, "seed": seed, "curves": n,
           "curves_B_zero": int(zero.sum()), "curves_B_nonzero": int((~zero).sum()),
           "per_curve": [{"study": c.get("study"), "panel": c.get("panel"), "sde": c["sde"], "g": c["g"],
                          "error_at": c.get("error_at"), "info": c.get("info"), "prediction": c["prediction"],
                          **{v: counts[i, j] / reps for j, v in enumerate(names)},
                          "false_plateau": errors["false_plateau"][i] / reps,
                          "false_order": errors["false_order"][i] / reps, "truth_model": models[i]}
                         for i, (c, _, _) in enumerate(sim)]}
    adequate = np.array([m["adequate"] for m in models])
    out["curves_truth_inadequate"] = int((~adequate).sum())
    rates = {}
    for kind, mask in (("false_plateau", zero), ("false_order", ~zero)):
        per = errors[kind][mask] / reps
        per_ok = errors[kind][mask & adequate] / reps
        counts_rep = np.asarray(per_rep[kind])
        rates[kind] = {"per_curve_mean": float(per.mean()) if per.size else None,
                       "per_curve_max": float(per.max()) if per.size else None,
                       "per_curve_mean_adequate": float(per_ok.mean()) if per_ok.size else None,
                       "per_curve_max_adequate": float(per_ok.max()) if per_ok.size else None,
                       "table_expected": float(counts_rep.mean()), "table_p_at_least_one": float((counts_rep > 0).mean()),
                       "table_expected_adequate": float(per_ok.sum())}
    incl = counts[:, names.index("inconclusive")] / reps
    rates["inconclusive"] = {"B_zero_mean": float(incl[zero].mean()) if zero.any() else None,
                             "B_nonzero_mean": float(incl[~zero].mean()) if (~zero).any() else None}
    rates["per_rep"] = {k: [int(x) for x in v] for k, v in per_rep.items()}
    out["rates"] = rates
    return out


def observed_tail(calib: dict, kind: str, observed: int) -> float:
    """P(count >= observed) under the bootstrap (the committed table's count against the rule's error model)."""
    reps = calib["rates"]["per_rep"][kind]
    return sum(x >= observed for x in reps) / len(reps)


def stress(reps: int = 400, seed: int = 1) -> dict:
    """Synthetic single curves (a family of one, so Holm is the nominal test) on a six-point grid
    eta = 0.1 / 2^k with s.e. a fraction `noise` of e(eta_min):
    - bent: e = C1 eta (1 + b (eta / eta_max)^2), an order-1 curve whose eta^3 term is a fraction b of the linear
      one at the largest eta: the rate of false plateaus, with and without the stability check;
    - small plateau: e = 0.3 e1(eta_min) + C1 eta: the rate of order verdicts whose bound excludes the plateau."""
    rng = np.random.default_rng(seed)
    eta = 0.1 * 0.5 ** np.arange(6)
    out = {"grid": eta.tolist(), "bent": [], "small_plateau": []}
    for noise in (0.3, 0.1, 0.03):
        for bend in (0.1, 0.3, 1.0):
            truth = eta * (1 + bend * (eta / eta.max()) ** 2)
            se = np.full(eta.size, noise * truth.min())
            plateau = no_check = 0
            for _ in range(reps):
                fit = fit_curve(eta, truth + se * rng.standard_normal(eta.size), se)
                rej = family_rejections([fit])[0]
                v, _ = decide(fit, rej)
                plateau += v == "converges elsewhere"
                nz = rej.get("B", False) and fit["share"].get("B", 0) >= 0.05
                no_check += bool(nz)
            out["bent"].append({"noise": noise, "bend": bend, "false_plateau": plateau / reps,
                                "false_plateau_without_stability": no_check / reps})
        b = 0.3 * eta.min()
        truth = b + eta
        se = np.full(eta.size, noise * truth.min())
        wrong = orders = 0
        for _ in range(reps):
            fit = fit_curve(eta, truth + se * rng.standard_normal(eta.size), se)
            v, _ = decide(fit, family_rejections([fit])[0])
            orders += v in ORDERS
            wrong += v in ORDERS and fit["bound"]["B"] <= b
        out["small_plateau"].append({"noise": noise, "order_verdicts": orders / reps, "false_order": wrong / reps})
    return out


def summary_line(calib: dict, observed: dict | None = None) -> str:
    """The header sentence of the table."""
    r = calib["rates"]
    fp, fo, inc = r["false_plateau"], r["false_order"], r["inconclusive"]

    def pct(x):
        return "n/a" if x is None else f"{100 * x:.2g} %"
    text = (f"Measured error rates (sde.calibration: parametric bootstrap, {calib['reps']} replicates of the "
            f"{calib['curves']} Monte Carlo curves with a predicted limit, on their own eta grids and s.e.): "
            f"false plateau {pct(fp['per_curve_mean'])} per curve (at most {pct(fp['per_curve_max'])}), "
            f"{fp['table_expected']:.2g} expected over the table's {calib['curves_B_zero']} curves with B = 0, "
            f"P(at least one) = {pct(fp['table_p_at_least_one'])}; false order claim (a bound |B| < delta that "
            f"excludes the true plateau) {pct(fo['per_curve_mean'])} per curve, {fo['table_expected']:.2g} expected "
            f"over {calib['curves_B_nonzero']} curves; inconclusive {pct(inc['B_zero_mean'])} of the B = 0 curves "
            f"and {pct(inc['B_nonzero_mean'])} of the plateaus.")
    if observed is not None:
        text += (f" The table itself: {observed['false_plateau']} false plateau(s) (P(>= that many) = "
                 f"{observed_tail(calib, 'false_plateau', observed['false_plateau']):.2g} under the bootstrap).")
    return text
