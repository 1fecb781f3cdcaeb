"""Monte Carlo error bars and log-log slope fits for weak-error curves.

- `RunningMoments`: streaming mean/variance over chunks of paths (Chan et al. merge, no cancellation).
- `fit_slope`: weighted least squares of log|error| on log(eta), using only points whose error exceeds
  `min_snr` standard errors (a point inside its own noise says nothing about the slope). The slope's
  95 % interval comes from the delta-method variances of log|error|, inflated by the reduced chi-square
  when the points scatter more than their error bars (curvature, higher-order terms); exact points
  (zero standard error) therefore get an interval from their residual scatter alone.
- `weighted_polyfit`: weighted least squares by QR (the verdict's fit, sde.verdicts, and the slope fit use it).
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
