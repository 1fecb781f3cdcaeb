"""Metastable escape: mean first-passage times (MFPT) of discrete PGPO and of its SDEs over a barrier.

Setting (sde.problems.DoubleWell, 1-d): start at the right well's bottom x*, stop at the first time theta <= a with
a = -x*/2, past the barrier top at 0 (every target beyond the saddle gives the same MFPT to leading order).

Exact MFPT of a 1-d diffusion dX = mu(X) dt + s(X) dW, X_0 = x0 > a, +inf a natural boundary: T solves
mu T' + s^2 T'' / 2 = -1, T(a) = 0, T' -> 0 at +inf, i.e.

    T(x0) = int_a^x0 exp(U(y)) int_y^inf 2 exp(-U(z)) / s(z)^2 dz dy,    U(y) = -int^y 2 mu / s^2,

evaluated by quadrature on a fine grid (`exact_mfpt`). For PGPO's SDEs mu = -d(m) V'(x) and s^2 = s(m)^2 eta sigma^2
with m = m(I(x)) and the member's drift and diffusion factors d, s (sde.family): mu = -m V' for both, s^2 =
eta m^2 sigma^2 (matched) or eta sigma^2 (paper): state-dependent m included, nothing asymptotic.

Kramers / Eyring (constant m = c): in the time t' = c t the SDE reads dX = -V' dt' + sqrt(2 T_eff) dW' with the
effective temperature T_eff = s^2 / (2 c) -- eta c sigma^2 / 2 (matched), eta sigma^2 / (2 c) (paper) -- so

    tau ~ 2 pi / (c sqrt(V''(x*) |V''(0)|)) exp(dV / T_eff),    dV = V(0) - V(x*)     (`kramers_mfpt`).

The two SDEs' temperatures differ by the factor c^2: their escape times differ exponentially.

Monte Carlo (`first_passage_mc`): n paths of the discrete process (or of an SDE by Euler-Maruyama) until passage or
a horizon. Censored paths (not passed by the horizon) are counted and reported; the mean uses min(tau, horizon), a
lower bound that is exact when nothing is censored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.integrate import cumulative_trapezoid, trapezoid

from sde.family import member
from sde.problems import DoubleWell

SDES = ("matched", "paper")


def diffusion_sq(problem: DoubleWell, mult, eta: float, sde: str, x: np.ndarray) -> np.ndarray:
    """s(x)^2 of the SDE kind at the states x (1-d array): eta sigma^2 times the square of the member's diffusion
    factor at m(I(x))."""
    kind = _kind(sde)
    base = eta * problem.sigma ** 2 * np.ones_like(x)
    return base * kind.diffusion_factor(_m(problem, mult, x)) ** 2


def drift(problem: DoubleWell, mult, sde: str, x: np.ndarray) -> np.ndarray:
    """mu(x) = -d(m(I(x))) V'(x) of the SDE kind at the states x (1-d array)."""
    return -_kind(sde).drift_factor(_m(problem, mult, x)) * _v_prime(problem, x)


def _kind(sde: str):
    if sde not in SDES:
        raise ValueError(f"unknown SDE kind {sde!r} for escape; choose from {SDES}")
    return member(sde)


def _m(problem: DoubleWell, mult, x: np.ndarray) -> np.ndarray:
    info = problem.loss(x[:, None]) - problem.loss_min
    return np.asarray(mult(np.ascontiguousarray(info)), float)


def _v_prime(problem: DoubleWell, x: np.ndarray) -> np.ndarray:
    return problem.grad(x[:, None], np.empty((x.size, 1)))[:, 0]


def exact_mfpt_1d(mu: Callable, s2: Callable, x0: float, a: float, x_hi: float, n_grid: int = 200_001) -> float:
    """The exact MFPT from x0 down to a < x0 of dX = mu dt + s dW (vectorised mu, s2 = s^2), reflecting (natural)
    above: the double integral of the module docstring by the trapezoid rule on n_grid points of [a, x_hi]. x_hi must
    lie where exp(-U) is negligible (the caller checks)."""
    if not a < x0 < x_hi:
        raise ValueError(f"need a < x0 < x_hi, got {a}, {x0}, {x_hi}")
    y = np.linspace(a, x_hi, n_grid)
    q = 2.0 * mu(y) / s2(y)
    u = -cumulative_trapezoid(q, y, initial=0.0)
    u_min = u.min()
    w = 2.0 * np.exp(-(u - u_min)) / s2(y)
    inner = cumulative_trapezoid(w[::-1], -y[::-1], initial=0.0)[::-1]       # int_y^x_hi
    j = int(np.searchsorted(y, x0, side="right"))           # y[:j] <= x0 < y[j]
    outer = np.exp(u[:j + 1] - u_min) * inner[:j + 1]
    total = float(trapezoid(outer[:j], y[:j]))
    if y[j - 1] < x0:                                       # the last partial cell up to x0, linearly interpolated
        frac = (x0 - y[j - 1]) / (y[j] - y[j - 1])
        total += 0.5 * (2.0 * outer[j - 1] + frac * (outer[j] - outer[j - 1])) * (x0 - y[j - 1])
    return total


def escape_target(problem: DoubleWell) -> float:
    """a = -x*/2: past the barrier top at 0, halfway down to the other well."""
    return -0.5 * problem.well


def exact_mfpt(problem: DoubleWell, mult, eta: float, sde: str, n_grid: int = 200_001) -> float:
    """The exact MFPT of PGPO's SDE kind `sde` from x* to escape_target (module docstring)."""
    x0, a = problem.well, escape_target(problem)
    # above the well U grows like (x - x*)^2 V''/ (2 T_eff): 60 effective standard deviations make exp(-U) negligible
    t_hi = diffusion_sq(problem, mult, eta, sde, np.array([x0]))[0] / 2.0 * max(1.0, float(_m(problem, mult, np.array([x0 + 5]))[0]))
    x_hi = x0 + 5.0 + 60.0 * math.sqrt(t_hi)
    return exact_mfpt_1d(lambda y: drift(problem, mult, sde, y),
                         lambda y: diffusion_sq(problem, mult, eta, sde, y), x0, a, x_hi, n_grid)


def barrier(problem: DoubleWell) -> float:
    """dV = V(0) - V(x*)."""
    return float(problem.loss(np.zeros((1, 1)))[0] - problem.loss_min)


def temperature(problem: DoubleWell, c: float, eta: float, sde: str) -> float:
    """The effective temperature T_eff = eta s^2 sigma^2 / (2 d) of PGPO's SDE with constant m = c (s, d: the member's
    diffusion and drift factors at c): eta c sigma^2 / 2 (matched), eta sigma^2 / (2c) (paper)."""
    kind = _kind(sde)
    s, d = kind.diffusion_factor(c), kind.drift_factor(c)
    return eta * problem.sigma ** 2 * (s / d * s / 2.0)     # exactly c / 2 (matched), 1 / (2 c) (paper)


KRAMERS_MIN = 2.0          # Kramers / Eyring is shown where dV / T_eff >= this (it is asymptotic in dV / T_eff)


def kramers_mfpt(problem: DoubleWell, c: float, eta: float, sde: str) -> float:
    """Kramers / Eyring for a constant multiplier c (module docstring)."""
    t_eff = temperature(problem, c, eta, sde)
    curv_well = float(problem.hessian(np.array([problem.well]))[0, 0])
    curv_top = abs(float(problem.hessian(np.array([0.0]))[0, 0]))
    return 2.0 * math.pi / (c * math.sqrt(curv_well * curv_top)) * math.exp(barrier(problem) / t_eff)


def kramers_where_valid(r, sde):
    """A result row's Kramers MFPT for `sde` where it applies (constant m, dV / T_eff >= KRAMERS_MIN), else None."""
    if not r.get("kramers") or r["barrier"] / r["temperature"][sde] < KRAMERS_MIN:
        return None
    return r["kramers"][sde]


@dataclass
class Passage:
    """Monte Carlo first-passage times: mean of min(tau, horizon) with its standard error, the censored count."""

    mean: float
    stderr: float
    n_paths: int
    n_censored: int
    horizon: float

    @property
    def censored_fraction(self) -> float:
        return self.n_censored / self.n_paths


def first_passage_mc(step: Callable[[np.ndarray, np.random.Generator], None], x0: float, a: float, dt: float,
                     n_paths: int, horizon: float, rng: np.random.Generator,
                     progress: Callable[[int], None] | None = None) -> Passage:
    """Advance n_paths copies of a 1-d process from x0 with `step(x, rng)` (in place, one step of time dt) until
    x <= a or the horizon; only the paths still running are stepped."""
    if not x0 > a:
        raise ValueError(f"start {x0} must be above the target {a}")
    max_steps = int(math.ceil(horizon / dt))
    x = np.full((n_paths, 1), float(x0))
    times = np.full(n_paths, max_steps * dt)
    alive = np.arange(n_paths)
    for k in range(1, max_steps + 1):
        step(x, rng)
        hit = x[:, 0] <= a
        if hit.any():
            times[alive[hit]] = k * dt
            keep = ~hit
            x, alive = x[keep], alive[keep]
            if alive.size == 0:
                break
        if progress is not None and k % 20_000 == 0:
            progress(n_paths - alive.size)
    return Passage(mean=float(times.mean()), stderr=float(times.std(ddof=1) / math.sqrt(n_paths)),
                   n_paths=n_paths, n_censored=int(alive.size), horizon=max_steps * dt)


def discrete_step(problem: DoubleWell, mult, eta: float) -> Callable:
    """One step of discrete PGPO with Gaussian noise: theta -= eta m(I) (V'(theta) + sigma Z)."""
    def step(x, rng):
        g = problem.grad(x, np.empty_like(x))
        g += problem.sigma * rng.standard_normal(x.shape)
        g *= eta * _m(problem, mult, x[:, 0])[:, None]
        x -= g
    return step


def sde_step(problem: DoubleWell, mult, eta: float, sde: str, h: float) -> Callable:
    """One Euler-Maruyama step of size h of PGPO's SDE kind `sde` (drift -m V', diffusion s)."""
    def step(x, rng):
        xs = x[:, 0]
        dx = drift(problem, mult, sde, xs) * h
        dx += np.sqrt(diffusion_sq(problem, mult, eta, sde, xs) * h) * rng.standard_normal(xs.size)
        x[:, 0] += dx
    return step
