"""Closed-form moments for the quadratic problems (no Monte Carlo).

With L = 1/2 x^T A x, A = R diag(a) R^T, constant gradient covariance Sigma and a *constant* multiplier c (c = 1 is
SGD), discrete SGD/PGPO is the linear recursion

    theta_{k+1} = (I - eta c A) theta_k - eta c S Z_k,
    mean_{k+1} = M mean_k,   P_{k+1} = M P_k M^T + eta^2 c^2 Sigma,   M = I - eta c A,

and every SDE of the family is an Ornstein-Uhlenbeck process dTheta = -K Theta dt + s sqrt(eta) S dW. In A's
eigenbasis (y = R^T x, Sigma' = R^T Sigma R) K is diagonal, kappa_i = c a_i, or c a_i + eta c^2 a_i^2 / 2 for the
order-2 modified equations (b = -c A x, (grad b) b = c^2 A^2 x), and

    mean'(t) = exp(-kappa t) theta_0',   P'_ij(t) = s^2 eta Sigma'_ij (1 - exp(-(kappa_i + kappa_j) t)) / (kappa_i + kappa_j),

with the drift factor d(c) in place of c in kappa (c, or 1 for sgd_sde) and s = s(c) the diffusion factor, both read
from the family's declaration (sde.family: s = 1 for sgd_sde, paper, paper_2; c for matched, matched_2; 0 for
gradient flow; `sde_ou_moments`). Mean and covariance are rotated back, x = R y. Every test function here is
quadratic or linear, so its expectation follows from (mean, P) exactly; `exact_error_series` gives the error at every
step k <= N, for Definition A.1's maximum over time.
"""

from __future__ import annotations

import numpy as np

from sde.family import member
from sde.problems import Quadratic
from sde.simulate import n_steps_for


def _rotate(problem: Quadratic, mean_e: np.ndarray, cov_e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From A's eigenbasis back to the problem's coordinates (mean (..., d), cov (..., d, d))."""
    r = problem.eigenbasis
    return mean_e @ r.T, r @ cov_e @ r.T


def discrete_moments_series(problem: Quadratic, eta: float, n_steps: int, c: float = 1.0, steps=None
                            ) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of theta_k for k = 0..n_steps (or for the given `steps`), shapes (K, d) and (K, d, d).

    In A's eigenbasis M = diag(mu), mu_i = 1 - eta c a_i, so the recursion sums in closed form:
    mean_k = mu^k y_0 and P_k,ij = Q_ij (1 - (mu_i mu_j)^k) / (1 - mu_i mu_j), Q = eta^2 c^2 Sigma'. With
    delta_ij = mu_i mu_j - 1 = -eta c (a_i + a_j) + (eta c)^2 a_i a_j formed without cancellation, the fraction is
    expm1(k log1p(delta)) / delta: no loop over steps, and no loss of digits as eta -> 0."""
    r = problem.eigenbasis
    a = problem.curvatures
    h = eta * c
    k = np.arange(n_steps + 1, dtype=float) if steps is None else np.asarray(steps, float)
    q = h ** 2 * (r.T @ problem.noise_cov @ r)
    delta = -h * (a[:, None] + a[None, :]) + h ** 2 * np.outer(a, a)
    log_mu = np.log1p(-h * a)
    means = np.exp(k[:, None] * log_mu[None, :]) * (r.T @ problem.theta0)[None, :]
    covs = q[None] * np.expm1(k[:, None, None] * np.log1p(delta)[None]) / delta[None]
    return _rotate(problem, means, covs)


def discrete_moments(problem: Quadratic, eta: float, n_steps: int, c: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of theta_{n_steps} for the linear recursion, in closed form."""
    means, covs = discrete_moments_series(problem, eta, n_steps, c, steps=[n_steps])
    return means[-1], covs[-1]


def drift_rates(problem: Quadratic, eta: float, c: float, order2: bool) -> np.ndarray:
    """The eigenvalues kappa of the OU drift matrix K: c a, plus eta c^2 a^2 / 2 for the order-2 drift."""
    a = problem.curvatures
    return c * a + (0.5 * eta * (c * a) ** 2 if order2 else 0.0)


def ou_moments(problem: Quadratic, eta: float, t, c: float = 1.0, diffusion_scale: float = 1.0,
               order2: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) at time t (a number, or an array of times: leading axis) of
    dTheta = -K Theta dt + diffusion_scale sqrt(eta) S dW, K = c A (+ eta c^2 A^2 / 2 with order2)."""
    r = problem.eigenbasis
    kappa = drift_rates(problem, eta, c, order2)
    t = np.asarray(t, float)[..., None]
    mean_e = np.exp(-kappa * t) * (r.T @ problem.theta0)
    ssum = kappa[:, None] + kappa[None, :]
    cov_e = diffusion_scale ** 2 * eta * (r.T @ problem.noise_cov @ r) * (-np.expm1(-ssum * t[..., None])) / ssum
    return _rotate(problem, mean_e, cov_e)


def expectation(test: str, mean: np.ndarray, cov: np.ndarray, eta: float, theta_bar: np.ndarray,
                problem: Quadratic | None = None):
    """E g(theta) for theta with the given mean and covariance (a leading axis of times is allowed)."""
    if test == "sq_norm":
        return np.einsum("...d,...d->...", mean, mean) + np.einsum("...dd->...", cov)
    if test == "linear":
        return mean[..., 0]
    if test == "cross":
        return mean[..., 0] * mean[..., 1] + cov[..., 0, 1]
    if test == "loss":
        a = problem.A
        return 0.5 * (np.einsum("...d,de,...e->...", mean, a, mean) + np.einsum("de,...ed->...", a, cov))
    if test == "fluctuation":
        d = mean - theta_bar
        return (np.einsum("...d,...d->...", d, d) + np.einsum("...dd->...", cov)) / eta
    raise ValueError(f"unknown test function {test!r}")


def sde_ou_moments(problem: Quadratic, eta: float, t, sde_kind: str, c: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) at time t of SDE kind `sde_kind` with constant multiplier c: ou_moments with the drift
    factor, diffusion factor and order of its declaration (sde.family)."""
    sde = member(sde_kind)
    return ou_moments(problem, eta, t, sde.drift_factor(c), sde.diffusion_factor(c), order2=sde.order2)


def exact_error_series(problem: Quadratic, eta: float, t_end: float, sde_kind: str, test: str,
                       c: float = 1.0, endpoint_only: bool = False) -> dict:
    """Exact E g(theta_k) - E g(Theta_{k eta}) for k = 0..N (N eta = t_end; only k = N with endpoint_only), constant
    multiplier c. The fluctuation test function is taken about theta_bar(t_end) at every k (it is meant for the
    endpoint)."""
    if not isinstance(problem, Quadratic):
        raise TypeError("closed forms exist only for the quadratic problems")
    member(sde_kind)                        # an unknown kind fails here, before any work
    n = n_steps_for(t_end, eta)
    steps = np.array([n]) if endpoint_only else np.arange(n + 1)
    theta_bar = ou_moments(problem, eta, t_end, c, 0.0)[0]
    md, pd = discrete_moments_series(problem, eta, n, c, steps=steps)
    ms, ps = sde_ou_moments(problem, eta, eta * steps, sde_kind, c)
    ed = expectation(test, md, pd, eta, theta_bar, problem)
    es = expectation(test, ms, ps, eta, theta_bar, problem)
    return {"error": ed - es, "mean_discrete": ed, "mean_sde": es}


def exact_endpoint_error(problem: Quadratic, eta: float, t_end: float, sde_kind: str, test: str, c: float = 1.0
                         ) -> float:
    """Exact E g(theta_N) - E g(Theta_T) alone (no series over k)."""
    return float(exact_error_series(problem, eta, t_end, sde_kind, test, c, endpoint_only=True)["error"][-1])


def exact_weak_error(problem: Quadratic, eta: float, t_end: float, sde_kind: str, test: str,
                     c: float = 1.0) -> dict:
    """Exact E g(theta_N) - E g(Theta_T) for the quadratic with constant multiplier c, and Definition A.1's
    max_{k <= N} |E g(theta_k) - E g(Theta_{k eta})| (`max_error`, signed, at step `argmax`)."""
    s = exact_error_series(problem, eta, t_end, sde_kind, test, c)
    k = int(np.argmax(np.abs(s["error"])))
    return {"error": float(s["error"][-1]), "mean_discrete": float(s["mean_discrete"][-1]),
            "mean_sde": float(s["mean_sde"][-1]), "max_error": float(s["error"][k]), "argmax": k}
