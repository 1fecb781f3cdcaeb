"""Closed-form moments for the quadratic problem (no Monte Carlo).

With L = 1/2 x^T A x (A diagonal), constant gradient covariance Sigma and a *constant* multiplier c
(c = 1 is SGD), discrete SGD/PGPO is the linear recursion

    theta_{k+1} = (I - eta c A) theta_k - eta c S Z_k,
    mean_{k+1} = M mean_k,   P_{k+1} = M P_k M^T + eta^2 c^2 Sigma,   M = I - eta c A,

and every SDE of the family is an Ornstein-Uhlenbeck process dTheta = -c A Theta dt + s sqrt(eta) S dW
(s = 1 for sgd_sde / paper, s = c for matched, s = 0 for gradient flow) with

    mean(t) = exp(-c A t) theta_0,   P_ij(t) = s^2 eta Sigma_ij (1 - exp(-c (a_i + a_j) t)) / (c (a_i + a_j)).

The test functions are quadratic, so their expectations follow from (mean, P) exactly.
"""

from __future__ import annotations

import numpy as np

from sde.problems import Quadratic
from sde.simulate import n_steps_for


def discrete_moments(problem: Quadratic, eta: float, n_steps: int, c: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of theta_{n_steps} for the linear recursion, by exact iteration."""
    mdiag = 1.0 - eta * c * problem.curvatures
    mean = problem.theta0.copy()
    cov = np.zeros((problem.dim, problem.dim))
    outer = np.outer(mdiag, mdiag)
    q = (eta * c) ** 2 * problem.noise_cov
    for _ in range(n_steps):
        mean *= mdiag
        cov *= outer
        cov += q
    return mean, cov


def ou_moments(problem: Quadratic, eta: float, t: float, c: float = 1.0, diffusion_scale: float = 1.0
               ) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) at time t of dTheta = -c A Theta dt + diffusion_scale sqrt(eta) S dW."""
    a = problem.curvatures
    mean = np.exp(-c * a * t) * problem.theta0
    ssum = c * (a[:, None] + a[None, :])
    cov = diffusion_scale ** 2 * eta * problem.noise_cov * (-np.expm1(-ssum * t)) / ssum
    return mean, cov


def expectation(test: str, mean: np.ndarray, cov: np.ndarray, eta: float, theta_bar: np.ndarray) -> float:
    """E g(theta) for theta with the given mean and covariance."""
    if test == "sq_norm":
        return float(mean @ mean + np.trace(cov))
    if test == "linear":
        return float(mean[0])
    if test == "fluctuation":
        d = mean - theta_bar
        return float((d @ d + np.trace(cov)) / eta)
    raise ValueError(f"unknown test function {test!r}")


_DIFFUSION_SCALE = {"gradient_flow": lambda c: 0.0, "sgd_sde": lambda c: 1.0,
                    "paper": lambda c: 1.0, "matched": lambda c: c}


def exact_weak_error(problem: Quadratic, eta: float, t_end: float, sde_kind: str, test: str,
                     c: float = 1.0) -> dict:
    """Exact E g(theta_N) - E g(Theta_T) for the quadratic with constant multiplier c."""
    if not isinstance(problem, Quadratic):
        raise TypeError("closed forms exist only for the quadratic problem")
    n = n_steps_for(t_end, eta)
    drift_c = 1.0 if sde_kind == "sgd_sde" else c
    theta_bar = np.exp(-c * problem.curvatures * t_end) * problem.theta0
    md, pd = discrete_moments(problem, eta, n, c)
    ms, ps = ou_moments(problem, eta, t_end, drift_c, _DIFFUSION_SCALE[sde_kind](c))
    ed = expectation(test, md, pd, eta, theta_bar)
    es = expectation(test, ms, ps, eta, theta_bar)
    return {"error": ed - es, "mean_discrete": ed, "mean_sde": es}
