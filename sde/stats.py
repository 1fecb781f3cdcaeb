"""Monte Carlo error bars and log-log slope fits for weak-error curves.

- `RunningMoments`: streaming mean/variance over chunks of paths (Chan et al. merge, no cancellation).
- `fit_slope`: weighted least squares of log|error| on log(eta), using only points whose error exceeds
  `min_snr` standard errors (a point inside its own noise says nothing about the slope). The slope's
  95 % interval comes from the delta-method variances of log|error|, inflated by the reduced chi-square
  when the points scatter more than their error bars (curvature, higher-order terms); exact points
  (zero standard error) therefore get an interval from their residual scatter alone.
- `paths_for_precision`: the path count that makes the 95 % half-width a fraction rho of the error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

Z95 = 1.959963984540054


@dataclass
class RunningMoments:
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

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
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean += delta * other.n / n
        self.m2 += other.m2 + delta * delta * self.n * other.n / n
        self.n = n

    @property
    def var(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else float("nan")

    @property
    def stderr(self) -> float:
        return math.sqrt(self.var / self.n) if self.n > 1 else float("nan")


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
    design = np.stack([np.ones_like(x), x], axis=1)
    cov = np.linalg.inv(design.T @ (design * w[:, None]))
    beta = cov @ (design.T @ (w * y))
    resid = y - design @ beta
    dof = k - 2
    quantile = Z95
    if exact:  # only the residual scatter (higher-order terms) is uncertain
        cov = cov * (float((resid ** 2).sum()) / dof if dof > 0 else 0.0)
        quantile = float(sps.t.ppf(0.975, dof)) if dof > 0 else 0.0
    elif dof > 0:
        chi2_red = float((w * resid ** 2).sum() / dof)
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


def verdict(fit: dict, target: float = 1.0, tol: float = 0.15) -> str:
    """'order 1' when the slope's interval meets [target - tol, target + tol] and the local slope at the
    smallest eta is not collapsing; 'levels off' when the interval lies below; 'steeper' above;
    'inconclusive' with fewer than two usable points or an interval wider than 4 tol."""
    lo, hi = fit["slope_ci"]
    if fit["slope"] is None or hi - lo > 4 * tol:
        return "inconclusive"
    last = [s for s, u1, u2 in zip(fit["local_slopes"], fit["used"][:-1], fit["used"][1:]) if u1 and u2 and s is not None]
    if hi < target - tol or (last and last[-1] < 0.5 * target):
        return "levels off"
    if lo > target + tol:
        return "steeper"
    if lo <= target + tol and hi >= target - tol:
        return "order 1"
    return "inconclusive"
