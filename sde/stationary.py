"""The stationary regime: the floor E_inf L - L* and the covariance of discrete PGPO and of its SDEs.

Closed forms (quadratic L = x^T A x / 2, constant multiplier m = c, gradient covariance Sigma; mean 0 at
stationarity, so floor = tr(A P) / 2 and E|theta|^2 = tr P):

    discrete PGPO     P = M P M^T + eta^2 c^2 Sigma,  M = I - eta c A        (discrete Lyapunov; needs eta c a_max < 2)
    SDE (OU)          K P + P K^T = s^2 eta Sigma                           (continuous Lyapunov)

with K = d A or d A + eta d^2 A^2 / 2 (order-2 drift) and s the member's drift and diffusion factors at m = c
(sde.family: d = c except sgd_sde's d = 1; s = c for matched, matched_2, s = 1 for paper, paper_2, sgd_sde). Taking
the trace of A P1 + P1 A = Sigma gives tr(A P1) = tr(Sigma) / 2, so to leading order floor = eta s^2 tr(Sigma) / (4 d):

    matched:  floor = eta c tr(Sigma) / 4        paper:  floor = eta tr(Sigma) / (4 c)        sgd_sde: eta tr(Sigma) / 4

and the discrete floor is the matched one times 1 + O(eta c a) (in 1-d: eta c sigma^2 / (4 (1 - eta c a / 2)), against
eta c sigma^2 / 4). The discrete floor grows with c; the matched SDE predicts that growth, the paper's SDE predicts a
floor that *falls* as 1/c, off by the factor c^2 (`leading_floor`). The order-2 drift does not help here: in 1-d its
floor is eta c sigma^2 / (4 (1 + eta c a / 2)), as far below the discrete floor as the matched SDE's is, and on the
other side -- a finite-horizon modified equation is not a stationary one.

Elsewhere (softmax, a state-dependent m) the floors come from coupled Monte Carlo: discrete process and SDEs share
their Brownian paths, run for `burn_in` (SDE time), then each path's g is averaged over a `window`
(sde.weak_error.estimate_weak_errors with average_from), one number per path, so the standard errors need no
autocorrelation model. The burn-in must outlast the start: the mean's transient decays like exp(-rate t) at the
slowest rate of the linearised drift at the minimum (`slowest_rate`: m at the minimum times the smallest non-zero
Hessian eigenvalue), and while it lasts the discrete and the continuous transients differ at O(eta) - an offset
that the time average would carry into the floors' difference. `burn_in_for` sizes it to BURN_IN_DECAYS e-folds
(a transient of e^-12 = 6e-6 of the start), which a panel uses when it gives no burn_in of its own.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from sde.exact import drift_rates
from sde.family import FAMILY, member
from sde.problems import Quadratic

STATIONARY_SDES = tuple(k for k, m in FAMILY.items() if m.noisy)   # gradient flow has no noise floor
BURN_IN_DECAYS = 12.0


def minimum(problem, steps: int = 200_000, tol: float = 1e-13) -> np.ndarray:
    """The minimiser reached from theta0 by gradient descent (step 1 / the largest Hessian eigenvalue at theta0)."""
    x = np.array(problem.theta0, float)[None, :]
    g = np.empty_like(x)
    lr = 1.0 / max(float(np.linalg.eigvalsh(problem.hessian(x[0])).max()), 1e-12)
    for _ in range(steps):
        problem.grad(x, g)
        x -= lr * g
        if float(np.abs(g).max()) < tol:
            break
    return x[0]


def slowest_rate(problem, mult) -> float:
    """m(theta*) times the smallest non-zero Hessian eigenvalue at the minimum: the slowest decay of the start."""
    x = minimum(problem)
    eig = np.linalg.eigvalsh(problem.hessian(x))
    lam = float(eig[eig > 1e-9 * eig.max()].min())
    info = np.empty(1)
    problem.info(x[None, :], info)
    return float(mult(info)[0]) * lam


def burn_in_for(problem, mult, decays: float = BURN_IN_DECAYS) -> tuple[float, float]:
    """(burn-in in SDE time, the slowest rate): `decays` e-folds of the slowest transient."""
    rate = slowest_rate(problem, mult)
    return decays / rate, rate


def discrete_stationary_covariance(problem: Quadratic, eta: float, c: float) -> np.ndarray:
    """P with P = M P M^T + eta^2 c^2 Sigma, M = I - eta c A (the stationary covariance of the linear recursion)."""
    a = problem.A
    if eta * c * float(problem.curvatures.max()) >= 2.0:
        raise ValueError(f"the discrete process is unstable: eta c a_max = {eta * c * problem.curvatures.max():.3g} >= 2")
    m = np.eye(problem.dim) - eta * c * a
    return linalg.solve_discrete_lyapunov(m, (eta * c) ** 2 * problem.noise_cov)


def sde_stationary_covariance(problem: Quadratic, eta: float, c: float, sde: str) -> np.ndarray:
    """P with K P + P K^T = s^2 eta Sigma for the SDE kind `sde` (module docstring)."""
    if sde not in STATIONARY_SDES:
        raise ValueError(f"no stationary closed form for SDE kind {sde!r}; choose from {list(STATIONARY_SDES)}")
    kind = member(sde)
    r = problem.eigenbasis                       # K = R diag(kappa) R^T, kappa as in sde.exact
    k = (r * drift_rates(problem, eta, kind.drift_factor(c), kind.order2)) @ r.T
    return linalg.solve_continuous_lyapunov(-k, -(kind.diffusion_factor(c) ** 2) * eta * problem.noise_cov)


def floor(problem: Quadratic, cov: np.ndarray) -> float:
    """E L - L* = tr(A P) / 2 for a zero-mean state with covariance P."""
    return 0.5 * float(np.trace(problem.A @ cov))


def leading_floor(problem: Quadratic, eta: float, c: float, sde: str) -> float:
    """The leading-order floor eta s^2 tr(Sigma) / (4 d) of SDE kind `sde` at m = c (module docstring): eta c tr(Sigma)
    / 4 (matched, matched_2), eta tr(Sigma) / (4 c) (paper, paper_2), eta tr(Sigma) / 4 (sgd_sde), 0 (gradient flow)."""
    kind = member(sde)
    s, d = kind.diffusion_factor(c), kind.drift_factor(c)
    base = eta * float(np.trace(problem.noise_cov)) / 4.0
    return base * (s / d * s)          # s / d first: exactly c (matched) or 1 / c (paper), as c and 1.0 / c


def closed_form_floors(problem: Quadratic, eta: float, c: float, sdes) -> dict:
    """{"discrete": {...}, sde: {...}} with each model's floor, E|theta|^2 = tr P and covariance P."""
    out = {}
    for name in ["discrete", *sdes]:
        p = (discrete_stationary_covariance(problem, eta, c) if name == "discrete"
             else sde_stationary_covariance(problem, eta, c, name))
        out[name] = {"loss": floor(problem, p), "sq_norm": float(np.trace(p)), "covariance": p.tolist()}
    return out
