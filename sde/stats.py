"""Monte Carlo error bars and log-log slope fits for weak-error curves.

- `RunningMoments`: streaming mean/variance over chunks of paths (Chan et al. merge, no cancellation).
- `fit_slope`: weighted least squares of log|error| on log(eta), using only points whose error exceeds
  `min_snr` standard errors (a point inside its own noise says nothing about the slope). The slope's
  95 % interval comes from the delta-method variances of log|error|, inflated by the reduced chi-square
  when the points scatter more than their error bars (curvature, higher-order terms); exact points
  (zero standard error) therefore get an interval from their residual scatter alone.
- `fit_error_model` and `VERDICT_RULE`: the verdict. The error is fitted as B + C1 eta + C2 eta^2 and the verdict
  read from which coefficients are non-zero, zero or undetermined (VERDICT_RULE; the slope is reported beside it,
  never decides).
- `paths_for_precision`: the path count that makes the 95 % half-width a fraction rho of the error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from scipy.linalg import solve_triangular

Z95 = 1.959963984540054


def chan_merge(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """(n, mean, m2) of two independent samples' moments combined (Chan et al.; scalars or arrays elementwise)."""
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * n_b / n, m2_a + (m2_b + delta * delta * n_a * n_b / n)


@dataclass
class RunningMoments:
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @classmethod
    def of(cls, values: np.ndarray) -> "RunningMoments":
        """The moments of one block of values."""
        m = cls()
        m.add(values)
        return m

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=float)
        nb = values.size
        if nb == 0:
            return
        mb = float(values.mean())
        m2b = float(((values - mb) ** 2).sum())
        n = self.n + nb
        delta = mb - self.mean
        self.mean += delta * nb / n
        self.m2 += m2b + delta * delta * self.n * nb / n
        self.n = n

    def merge(self, other: "RunningMoments") -> None:
        """Combine with independent moments of other paths (Chan et al.)."""
        if other.n == 0:
            return
        self.n, self.mean, self.m2 = chan_merge(self.n, self.mean, self.m2, other.n, other.mean, other.m2)

    @property
    def var(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else float("nan")

    @property
    def stderr(self) -> float:
        return math.sqrt(self.var / self.n) if self.n > 1 else float("nan")


@dataclass
class SeriesMoments:
    """RunningMoments of a series of quantities over the same paths (one per time step), merged the same way."""

    n: int = 0
    mean: np.ndarray | None = None
    m2: np.ndarray | None = None

    @classmethod
    def of(cls, means: np.ndarray, m2s: np.ndarray, n: int) -> "SeriesMoments":
        """From one block's per-step means and sums of squared deviations over its n paths."""
        return cls(int(n), np.asarray(means, float).copy(), np.asarray(m2s, float).copy())

    def merge(self, other: "SeriesMoments") -> None:
        if other.n == 0:
            return
        if self.n == 0:
            self.n, self.mean, self.m2 = other.n, other.mean.copy(), other.m2.copy()
            return
        self.n, self.mean, self.m2 = chan_merge(self.n, self.mean, self.m2, other.n, other.mean, other.m2)

    @property
    def stderr(self) -> np.ndarray:
        if self.n < 2:
            return np.full(np.shape(self.mean), np.nan)
        return np.sqrt(self.m2 / (self.n - 1) / self.n)

    def max_abs(self) -> tuple[float, float, int]:
        """(signed value, standard error, index) of the entry with the largest |mean|. The maximum of noisy entries
        is biased up (by about sqrt(2 ln K) standard errors when all K entries are pure noise): see max_band."""
        k = int(np.argmax(np.abs(self.mean)))
        return float(self.mean[k]), float(self.stderr[k]), k

    def max_band(self, level: float = 0.95) -> list[float]:
        """A simultaneous `level` interval for max_k |E D_k|: [max_k (|mean_k| - z se_k)^+, max_k (|mean_k| + z se_k)]
        with the Sidak quantile z for K entries (each |E D_k| lies in its own band with joint probability >= level
        for independent entries; the entries of one path are positively correlated, which makes it conservative)."""
        k = len(self.mean)
        z = float(sps.norm.ppf(0.5 + 0.5 * level ** (1.0 / k)))
        a, se = np.abs(self.mean), self.stderr
        return [float(np.maximum(a - z * se, 0.0).max()), float((a + z * se).max())]


def local_slopes(eta, err) -> list[float | None]:
    """Slopes between consecutive points, log|e_{i+1}/e_i| / log(eta_{i+1}/eta_i) (None where undefined)."""
    eta, err = np.abs(np.asarray(eta, float)), np.abs(np.asarray(err, float))
    out = []
    for i in range(len(eta) - 1):
        if err[i] > 0 and err[i + 1] > 0 and eta[i] != eta[i + 1]:
            out.append(float(np.log(err[i + 1] / err[i]) / np.log(eta[i + 1] / eta[i])))
        else:
            out.append(None)
    return out


def fit_slope(eta, err, stderr, min_snr: float = 3.0, rel_floor: float = 1e-3) -> dict:
    """Fit log|err| = c + p log(eta) on the points with |err| > min_snr * stderr.

    Starting from the smallest eta, points stop being used once the (significant) error changes sign.

    Returns slope p, its 95 % interval, intercept c, the mask of points used, the reduced chi-square
    and the local slopes. With fewer than two usable points the slope is None.
    """
    eta = np.asarray(eta, float)
    err = np.asarray(err, float)
    se = np.nan_to_num(np.asarray(stderr, float), nan=np.inf)
    aerr = np.abs(err)
    use = (aerr > min_snr * se) & (aerr > 0) & np.isfinite(aerr)
    # An error that changes sign between step sizes is a sum of terms of different orders; only the
    # contiguous run of significant points that share the sign of the smallest-eta one is asymptotic.
    order = np.argsort(eta)
    sign = None
    for i in order:
        if not use[i]:
            continue
        if sign is None:
            sign = np.sign(err[i])
        elif np.sign(err[i]) != sign:
            use[order[order.tolist().index(i):]] = False
            break
    result = {"slope": None, "slope_ci": [None, None], "intercept": None, "used": use.tolist(),
              "chi2_red": None, "local_slopes": local_slopes(eta, err), "min_snr": min_snr}
    k = int(use.sum())
    if k < 2:
        return result
    x = np.log(eta[use])
    y = np.log(aerr[use])
    exact = bool((se[use] == 0).all())
    # sd of log|err| by the delta method; exact points (no Monte Carlo) are weighted equally
    sig = np.ones(k) if exact else np.maximum(se[use] / aerr[use], rel_floor)
    w = 1.0 / sig ** 2
    beta, cov, chi2 = weighted_polyfit(x, y, w, 1)
    dof = k - 2
    quantile = Z95
    if exact:  # only the residual scatter (higher-order terms) is uncertain
        cov = cov * (chi2 / dof if dof > 0 else 0.0)      # w = 1: chi2 is the residual sum of squares
        quantile = float(sps.t.ppf(0.975, dof)) if dof > 0 else 0.0
    elif dof > 0:
        chi2_red = chi2 / dof
        result["chi2_red"] = chi2_red
        if chi2_red > 1.0:
            cov = cov * chi2_red
            quantile = float(sps.t.ppf(0.975, dof))
    half = quantile * math.sqrt(cov[1, 1])
    result.update(slope=float(beta[1]), slope_ci=[float(beta[1] - half), float(beta[1] + half)],
                  intercept=float(beta[0]))
    return result


def paths_for_precision(sigma: float, error: float, rho: float = 0.2, z: float = Z95) -> int:
    """N >= (z sigma / (rho |error|))^2: paths so that the 95 % half-width is at most rho |error|."""
    if not (sigma >= 0 and rho > 0):
        raise ValueError("need sigma >= 0 and rho > 0")
    if error == 0:
        raise ValueError("cannot size a run for a zero error")
    return max(2, int(math.ceil((z * sigma / (rho * abs(error))) ** 2)))


VERDICT_RULE = (
    "Fit e(eta) = B + C1 eta + C2 eta^2 by weighted least squares (weights 1 / s.e.^2; closed-form curves: relative "
    "weights, s.e. from the residual scatter); while the chi^2 misfit has p < 0.05 the largest eta is dropped, and a "
    "fit trimmed to 3 points (no degree of freedom left to check it) gives no verdict. Each coefficient is read from "
    "its 95 % interval and its share of the fitted error at the smallest eta (B; C1 eta; C2 always counts): non-zero "
    "when it exceeds 3 s.e. and its share is at least 5 %; zero when its interval contains 0 or its share is under "
    "5 % (smaller terms cannot be told from the higher orders the model leaves out); undetermined otherwise. "
    "*order 1*: B zero, C1 non-zero; *order 2*: B and C1 zero, C2 non-zero; *converges elsewhere*: B non-zero (B is "
    "the limit of the error as eta -> 0, the plateau); *inconclusive*: anything else (an undetermined coefficient "
    "on the way), or fewer than 3 points above 3 s.e. (no fit).")
VERDICTS = ("order 1", "order 2", "converges elsewhere", "inconclusive")
MISFIT_P = 0.05
NONZERO_Z = 3.0
MATERIAL_FRACTION = 0.05


def weighted_polyfit(x, y, w, degree: int):
    """Weighted least squares of y on 1, x, ..., x^degree: (coefficients, their covariance (X^T W X)^-1, chi^2).

    Solved by QR of the weighted design with each column scaled to unit maximum (x^j / max|x|^j), never through the
    normal equations, whose condition number is the square of the design's (1e16 and more for eta grids spanning two
    decades): the digits of the fit then do not depend on the machine's BLAS path. A fit with as many points as
    coefficients interpolates: its chi^2 is exactly 0."""
    x, y, w = (np.asarray(a, float) for a in (x, y, w))
    scale = float(np.abs(x).max()) or 1.0
    powers = np.arange(degree + 1)
    design = (x[:, None] / scale) ** powers                        # columns in [-1, 1]
    root_w = np.sqrt(w)
    q, r = np.linalg.qr(design * root_w[:, None])
    z = solve_triangular(r, q.T @ (root_w * y))
    r_inv = solve_triangular(r, np.eye(degree + 1))
    unscale = scale ** -powers
    beta = z * unscale
    cov = (r_inv @ r_inv.T) * np.outer(unscale, unscale)
    chi2 = 0.0 if x.size <= degree + 1 else float((w * (y - design @ z) ** 2).sum())
    return beta, cov, chi2


def fit_error_model(eta, err, stderr, min_snr: float = 3.0) -> dict:
    """Fit e(eta) = B + C1 eta + C2 eta^2 and decide the verdict by VERDICT_RULE.

    Monte Carlo points are weighted by 1 / s.e.^2 with known-variance intervals (z quantile). Closed-form points
    (all s.e. 0) have no sampling error: they are weighted by 1 / e^2 and the standard errors come from the residual
    scatter (t quantile for the intervals), i.e. from the truncated higher-order terms. While the chi^2 misfit has
    p-value < MISFIT_P the largest eta is dropped (the expansion is asymptotic), keeping at least 3 points above
    noise; closed forms are never trimmed.
    With fewer than 3 points whose |error| exceeds min_snr s.e. (non-zero, for closed forms) there is no fit.

    Returns {"B", "B_se", "B_ci", "C1", ..., "C2", ..., "chi2", "dof", "p_value", "used", "n_above_noise",
    "verdict", "reason"}; coefficients are None without a fit.
    """
    eta = np.asarray(eta, float)
    err = np.asarray(err, float)
    se = np.nan_to_num(np.asarray(stderr, float), nan=np.inf)
    ok = np.isfinite(err) & np.isfinite(eta)
    exact = bool(ok.any() and (se[ok] == 0).all())
    above = ok & (np.abs(err) > 0) & (np.abs(err) > min_snr * se)
    out = {"B": None, "B_se": None, "B_ci": [None, None], "C1": None, "C1_se": None, "C1_ci": [None, None],
           "C2": None, "C2_se": None, "C2_ci": [None, None], "chi2": None, "dof": None, "p_value": None,
           "used": [False] * len(eta), "n_above_noise": int(above.sum()), "exact": exact, "min_snr": min_snr,
           "error_at_min_eta": None,
           "verdict": "inconclusive", "reason": ""}
    use = ok & (above if exact else (np.isfinite(se) & (se > 0)))       # a Monte Carlo point needs an error bar
    if out["n_above_noise"] < 3 or use.sum() < 3:
        out["reason"] = f"{out['n_above_noise']} point(s) above {min_snr:g} s.e.: no fit"
        return out
    trimmed = 0
    while True:
        x, y = eta[use], err[use]
        w = 1.0 / (np.abs(y) if exact else se[use]) ** 2
        beta, cov, chi2 = weighted_polyfit(x, y, w, 2)
        dof = int(use.sum()) - 3
        p = None if (exact or dof == 0) else float(sps.chi2.sf(chi2, dof))
        if p is None or p >= MISFIT_P or int((use & above).sum()) <= 3 or use.sum() <= 3:
            break
        use[np.flatnonzero(use)[np.argmax(x)]] = False           # drop the largest eta and refit
        trimmed += 1
    out.update(chi2=chi2, dof=dof, p_value=p, used=use.tolist(), n_above_noise=int((use & above).sum()))
    if out["n_above_noise"] < 3:
        out["reason"] = f"{out['n_above_noise']} point(s) above {min_snr:g} s.e. in the fitted range: no fit"
        return out
    if exact:
        if dof == 0:
            out["reason"] = "3 closed-form points: no residual to size the intervals"
            return out
        cov = cov * chi2 / dof
        q = float(sps.t.ppf(0.975, dof))
    else:
        q = Z95
    sd = np.sqrt(np.diag(cov))
    for name, b, s in zip(("B", "C1", "C2"), beta, sd):
        out[name], out[name + "_se"] = float(b), float(s)
        out[name + "_ci"] = [float(b - q * s), float(b + q * s)]
    # each coefficient: non-zero (beyond 3 s.e. and beyond rounding - a closed form the model fits exactly has s.e.
    # ~ 1e-17 - with a share of at least MATERIAL_FRACTION of the fitted error at the smallest eta), zero (interval
    # contains 0, or share under MATERIAL_FRACTION: what the left-out higher orders, or a non-smooth m's eta^1.5
    # terms, leave behind on a finite grid), or undetermined
    note = f" (largest {trimmed} eta dropped for misfit)" if trimmed else ""
    eta_min = float(x.min())
    e_fit = out["B"] + out["C1"] * eta_min + out["C2"] * eta_min ** 2
    out["error_at_min_eta"] = e_fit
    scale = 1e-10 * float(np.abs(y).max())
    reach = {"B": 1.0, "C1": float(x.max()), "C2": float(x.max()) ** 2}
    share = {"B": abs(out["B"]), "C1": abs(out["C1"]) * eta_min, "C2": np.inf}
    state = {}
    for name in ("B", "C1", "C2"):
        v, lo, hi = out[name], *out[name + "_ci"]
        significant = abs(v) > NONZERO_Z * out[name + "_se"] and abs(v) * reach[name] > scale
        material = share[name] >= MATERIAL_FRACTION * abs(e_fit)
        state[name] = ("non-zero" if significant and material else
                       "zero" if (lo <= 0 <= hi) or not material else "undetermined")
    out["coefficients"] = state
    if p is not None and p < MISFIT_P:
        out["reason"] = f"misfit: chi^2 = {chi2:.1f} on {dof} dof (p = {p:.2g})"
    elif trimmed and dof == 0:
        out["reason"] = f"misfit trimmed the fit to 3 points: no degree of freedom left to check it{note}"
    elif state["B"] == "non-zero":
        out["verdict"], out["reason"] = "converges elsewhere", "B non-zero" + note
    elif state["B"] == "undetermined":
        out["reason"] = "B undetermined (interval excludes 0, under 3 s.e.)" + note
    elif state["C1"] == "non-zero":
        out["verdict"], out["reason"] = "order 1", "B zero, C1 non-zero" + note
    elif state["C1"] == "undetermined":
        out["reason"] = "B zero, C1 undetermined (interval excludes 0, under 3 s.e.)" + note
    elif state["C2"] == "non-zero":
        out["verdict"], out["reason"] = "order 2", "B and C1 zero, C2 non-zero" + note
    else:
        out["reason"] = "B and C1 zero, C2 not non-zero" + note
    return out
